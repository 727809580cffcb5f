"""Vaccines in transit (issue 18): a cold box's alarm holds the trip's doses at the receiver."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from logistics.models.alerts import Alert, QuarantineReview
from logistics.models.stock import StockBalance
from logistics.services import journeys, stock, transit
from tests.support.alerts_fixtures import ingest, readings
from tests.support.transit_fixtures import (
    freeze_on_the_road,
    frozen_trip_received,
    issue_in_box,
    make_route,
    receive,
)

pytestmark = pytest.mark.integration
UTC = dt.UTC


def _balance(uow, unit_id, lot_id):
    uow.session.expire_all()
    return uow.session.scalars(
        select(StockBalance).where(StockBalance.unit_id == unit_id, StockBalance.lot_id == lot_id)
    ).one()


def _trip_alerts(uow):
    uow.session.expire_all()
    return list(uow.session.scalars(select(Alert).where(Alert.subject_type == "trip")))


def test_a_freeze_on_the_road_alerts_both_stores_and_the_doses_arrive_held(runtime, uow):
    route = make_route(uow, runtime.settings)
    t0 = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=8)
    shipment_id = issue_in_box(uow, route, 300, t0, "issue-1")

    ingest(runtime, freeze_on_the_road(t0), t0 + dt.timedelta(hours=4))

    alerts = _trip_alerts(uow)
    alarms = {a.store_id for a in alerts if a.kind == "transit_cold_alarm"}
    assert alarms == {route.district.id, route.centre.id}
    trip = transit.shipment_trip(uow, runtime.settings, shipment_id=shipment_id)
    assert trip["held"] is True and trip["holds"][0]["applied_at"] is None

    receive(uow, route, shipment_id, t0 + dt.timedelta(hours=4), "receipt-1")

    balance = _balance(uow, route.centre_ilr.id, route.lot.id)
    assert (balance.doses, balance.quarantined_doses) == (300, 300)
    review = uow.session.scalars(select(QuarantineReview)).one()
    assert (review.store_id, review.unit_id, review.doses) == (
        route.centre.id,
        route.centre_ilr.id,
        300,
    )
    assert (review.reason, review.proposed_decision, review.state) == (
        "frozen",
        "discard",
        "pending",
    )
    # Held doses cannot be used at the centre.
    with pytest.raises(Exception, match="usable"):
        stock.record_consumption(
            uow,
            store_id=route.centre.id,
            unit_id=route.centre_ilr.id,
            lot_id=route.lot.id,
            doses=10,
            actor="test",
        )


def test_a_trip_on_time_holds_nothing(runtime, uow):
    route = make_route(uow, runtime.settings)
    t0 = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=8)
    shipment_id = issue_in_box(uow, route, 300, t0, "issue-1")
    ingest(runtime, readings(t0, (240, 5.0), sensor_id="CB-1-LOG"), t0 + dt.timedelta(hours=4))
    receive(uow, route, shipment_id, t0 + dt.timedelta(hours=4), "receipt-1")

    balance = _balance(uow, route.centre_ilr.id, route.lot.id)
    assert (balance.doses, balance.quarantined_doses) == (300, 0)
    assert _trip_alerts(uow) == []


def test_a_logger_uploading_after_the_receipt_holds_what_remains_and_reports_the_rest(runtime, uow):
    route = make_route(uow, runtime.settings)
    t0 = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=10)
    shipment_id = issue_in_box(uow, route, 300, t0, "issue-1")
    receive(uow, route, shipment_id, t0 + dt.timedelta(hours=4), "receipt-1")
    stock.record_consumption(
        uow,
        store_id=route.centre.id,
        unit_id=route.centre_ilr.id,
        lot_id=route.lot.id,
        doses=120,
        actor="vaccinator",
        occurred_at=t0 + dt.timedelta(hours=5),
        client_id="given-1",
    )
    uow.commit()

    # Back in range at the district, the logger uploads its whole trip.
    ingest(runtime, freeze_on_the_road(t0), t0 + dt.timedelta(hours=9))

    balance = _balance(uow, route.centre_ilr.id, route.lot.id)
    assert (balance.doses, balance.quarantined_doses) == (180, 180)
    review = uow.session.scalars(select(QuarantineReview)).one()
    assert (review.store_id, review.doses, review.state) == (route.centre.id, 180, "pending")
    trip = transit.shipment_trip(uow, runtime.settings, shipment_id=shipment_id)
    (hold,) = trip["holds"]
    assert hold["after_receipt"] is True
    assert hold["lots"][0]["doses_received"] == 300
    assert hold["lots"][0]["doses_held"] == 180
    assert hold["lots"][0]["doses_used_before_known"] == 120
    centre_alert = next(
        a for a in _trip_alerts(uow) if a.store_id == route.centre.id and a.kind.endswith("alarm")
    )
    assert "120 doses already used" in centre_alert.message
    # The consumption stands: it is reported, not reversed.
    assert _balance(uow, route.centre_ilr.id, route.lot.id).doses == 180


def test_the_journey_covers_the_stays_and_the_trip_without_a_gap(runtime, uow):
    route, t0, shipment_id = frozen_trip_received(runtime, uow)

    journey = journeys.lot_journey(
        uow,
        runtime.settings,
        lot_id=route.lot.id,
        start=t0 - dt.timedelta(hours=1),
        end=t0 + dt.timedelta(hours=6),
    )
    kinds = [(leg["kind"], leg["unit_code"]) for leg in journey["legs"]]
    assert kinds == [("stay", "DVS-ILR"), ("trip", "CB-1"), ("stay", "ILR-1")]
    trip = journey["legs"][1]
    assert (trip["from"], trip["to"]) == (t0, t0 + dt.timedelta(hours=4))
    # 40 readings at -3 C, one a minute, each standing for its minute.
    assert trip["minutes_outside"] == 40.0
    assert trip["mkt_c"] is not None and trip["mkt_c"] < 5.0
    assert journey["gaps"] == []
    assert journey["totals"]["minutes_outside"] == 40.0


def test_the_lot_thermal_history_and_trace_show_the_trip_in_its_carrier(runtime, uow):
    from logistics.services import thermal, trace

    route, t0, shipment_id = frozen_trip_received(runtime, uow)

    history = thermal.lot_thermal_history(
        uow,
        runtime.settings,
        lot_id=route.lot.id,
        start=t0 - dt.timedelta(hours=1),
        end=t0 + dt.timedelta(hours=6),
    )
    trip = [s for s in history["stays"] if s["unit_code"] == "CB-1"]
    assert [(s["from"], s["to"]) for s in trip] == [(t0, t0 + dt.timedelta(hours=4))]
    assert {e.kind for e in trip[0]["excursions"]} == {"cold_warning", "cold_alarm"}

    found = trace.lot_trace(uow, route.lot.id)
    (row,) = found["trips"]
    assert (row["shipment_id"], row["from_store_id"], row["to_store_id"]) == (
        shipment_id,
        route.district.id,
        route.centre.id,
    )
    assert row["carriers"] == [{"unit_id": route.cold_box.id, "code": "CB-1", "doses": 300}]
    assert row["held"] is True


def test_doses_moved_through_a_carrier_by_transfers_show_as_its_stay(runtime, uow):
    route = make_route(uow, runtime.settings)
    t0 = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=8)
    for client_id, source, target, at in (
        ("out", route.dvs_ilr, route.cold_box, t0),
        ("back", route.cold_box, route.dvs_ilr, t0 + dt.timedelta(hours=2)),
    ):
        stock.transfer_stock(
            uow,
            store_id=route.district.id,
            from_unit_id=source.id,
            to_unit_id=target.id,
            lot_id=route.lot.id,
            doses=100,
            rec=stock.recorded("test", at, client_id),
        )
        uow.commit()

    journey = journeys.lot_journey(
        uow,
        runtime.settings,
        lot_id=route.lot.id,
        start=t0 - dt.timedelta(hours=1),
        end=t0 + dt.timedelta(hours=3),
    )
    legs = [(leg["kind"], leg["unit_code"], leg["from"], leg["to"]) for leg in journey["legs"]]
    assert legs == [
        ("stay", "DVS-ILR", t0 - dt.timedelta(hours=1), t0 + dt.timedelta(hours=3)),
        ("stay", "CB-1", t0, t0 + dt.timedelta(hours=2)),
    ]


def test_a_box_left_warm_before_packing_holds_nothing_when_the_trip_is_in_range(runtime, uow):
    route = make_route(uow, runtime.settings)
    t0 = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=8)
    # Three hours at +25 C on the shelf fire the cumulative heat alarm (120 min in 12 h), which
    # lingers in its window for hours; the box is conditioned and the trip runs at +5 C.
    shelf = t0 - dt.timedelta(hours=3)
    ingest(runtime, readings(shelf, (180, 25.0), sensor_id="CB-1-LOG"), t0)
    shipment_id = issue_in_box(uow, route, 300, t0, "issue-1")
    ingest(runtime, readings(t0, (240, 5.0), sensor_id="CB-1-LOG"), t0 + dt.timedelta(hours=4))
    receive(uow, route, shipment_id, t0 + dt.timedelta(hours=4), "receipt-1")

    assert _balance(uow, route.centre_ilr.id, route.lot.id).quarantined_doses == 0
    assert _trip_alerts(uow) == []


def test_a_lots_trips_are_read_in_the_same_statements_however_many_there_are(runtime, uow):
    # Trips in time order, each with its carriers and hold, and no statement per trip: a
    # national lot travels in thousands of shipments and its trace page lists them.
    from sqlalchemy import event

    from logistics.services import trace

    route, t0, frozen = frozen_trip_received(runtime, uow)

    def trace_and_count() -> tuple[list, int]:
        statements = [0]

        def count(*_args):
            statements[0] += 1

        engine = uow.session.get_bind()
        event.listen(engine, "before_cursor_execute", count)
        try:
            uow.session.expire_all()
            trips = trace.lot_trace(uow, route.lot.id)["trips"]
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return trips, statements[0]

    one_trip, statements_for_one = trace_and_count()
    later = [
        issue_in_box(uow, route, doses, t0 + dt.timedelta(hours=hours), f"issue-more-{hours}")
        for hours, doses in ((5, 40), (6, 60))
    ]
    trips, statements_for_three = trace_and_count()
    assert statements_for_three == statements_for_one
    assert [t["shipment_id"] for t in one_trip] == [frozen]
    assert [(t["shipment_id"], t["doses"], t["status"], t["held"]) for t in trips] == [
        (frozen, 300, "received", True),
        (later[0], 40, "in_transit", False),
        (later[1], 60, "in_transit", False),
    ]
    assert [t["carriers"] for t in trips] == [
        [{"unit_id": route.cold_box.id, "code": "CB-1", "doses": 300}],
        [{"unit_id": route.cold_box.id, "code": "CB-1", "doses": 40}],
        [{"unit_id": route.cold_box.id, "code": "CB-1", "doses": 60}],
    ]
