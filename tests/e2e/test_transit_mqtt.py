"""End to end (issue 18): a cold box's logger publishes its trip over Mosquitto; the ingestion and
the evaluator hold the travelling doses, which arrive held with a review at the receiver."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
import uuid

import pytest
from sqlalchemy import func, select

from logistics.models.alerts import Alert, QuarantineReview, UnitMonitorState
from logistics.models.readings import Reading
from logistics.models.stock import StockBalance
from logistics.runtime import Runtime
from logistics.services import stock
from logistics.services.evaluation import Evaluator
from sensors.ingest import Ingestor
from sensors.mqtt import parse_broker_url
from sensors.simulate import publish_chunked, publisher
from sensors.trip import Shipment, TripPlan, run_trip, trip_messages
from tests.support.transit_fixtures import issue_in_box, make_route, receive

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
UTC = dt.UTC


def _wait_for(check, timeout_s=30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    return None


@contextlib.contextmanager
def _pipeline(runtime, mqtt_url):
    """Ingestion and a separate evaluator on a private topic prefix, and a publisher."""
    prefix = f"test-{uuid.uuid4().hex[:10]}/sensors"
    settings = runtime.settings.replace(
        mqtt_url=mqtt_url,
        mqtt_client_id=f"ingest-{uuid.uuid4().hex[:10]}",
        mqtt_topic_prefix=prefix,
        ingest_flush_interval_ms=100,
    )
    ingest_runtime = Runtime(settings, runtime.engine, runtime.session_factory)
    evaluator = Evaluator(ingest_runtime).start()
    ingestor = Ingestor(ingest_runtime)
    ingestor.start()
    client = publisher(parse_broker_url(mqtt_url, "", ""))
    try:
        assert ingestor.connection.subscribed.wait(10)
        yield prefix, lambda items: publish_chunked(client, items)
    finally:
        client.loop_stop()
        client.disconnect()
        ingestor.stop()
        evaluator.stop()


def _count(runtime, query):
    with runtime.uow() as uow:
        return uow.session.scalar(query)


def _balance(runtime, unit_id, lot_id):
    with runtime.uow() as uow:
        b = uow.session.scalars(
            select(StockBalance).where(
                StockBalance.unit_id == unit_id, StockBalance.lot_id == lot_id
            )
        ).one()
        return b.doses, b.quarantined_doses


def _reviews(runtime):
    with runtime.uow() as uow:
        return [
            (r.store_id, r.unit_id, r.doses, r.reason, r.state)
            for r in uow.session.scalars(select(QuarantineReview).order_by(QuarantineReview.id))
        ]


def _trip_alarm_stores(runtime):
    query = select(Alert.store_id).where(
        Alert.subject_type == "trip", Alert.kind == "transit_cold_alarm"
    )
    with runtime.uow() as uow:
        return set(uow.session.scalars(query))


def test_a_freeze_on_the_road_published_over_mqtt_arrives_held_at_the_centre(runtime, mqtt_url):
    with runtime.uow() as uow:
        route = make_route(uow, runtime.settings)
    start = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=6)
    with runtime.uow() as uow:
        shipment_id = issue_in_box(uow, route, 300, start, "issue-1")
    plan = TripPlan("CB-1-LOG", start, 240, "freeze")
    with _pipeline(runtime, mqtt_url) as (prefix, publish):
        publish(trip_messages(plan, prefix, live=True))
        stores = _wait_for(lambda: _trip_alarm_stores(runtime) or None)
        # While still on the road, both the district and the centre are told.
        assert stores == {route.district.id, route.centre.id}
        assert _reviews(runtime) == []  # no receiver's review until the doses arrive
        with runtime.uow() as uow:
            receive(uow, route, shipment_id, plan.end, "receipt-1")
    assert _balance(runtime, route.centre_ilr.id, route.lot.id) == (300, 300)
    assert _reviews(runtime) == [(route.centre.id, route.centre_ilr.id, 300, "frozen", "pending")]


def test_a_logger_uploading_after_the_receipt_holds_what_the_centre_still_has(runtime, mqtt_url):
    with runtime.uow() as uow:
        route = make_route(uow, runtime.settings)
    start = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=8)
    plan = TripPlan("CB-1-LOG", start, 240, "freeze")
    with runtime.uow() as uow:
        shipment_id = issue_in_box(uow, route, 300, start, "issue-1")
        receive(uow, route, shipment_id, plan.end, "receipt-1")
        stock.record_consumption(
            uow,
            store_id=route.centre.id,
            unit_id=route.centre_ilr.id,
            lot_id=route.lot.id,
            doses=70,
            actor="vaccinator",
            occurred_at=plan.end + dt.timedelta(hours=1),
            client_id="given-1",
        )
        uow.commit()
    with _pipeline(runtime, mqtt_url) as (prefix, publish):
        # Back at the district, the logger uploads its whole trip as one backlog.
        publish(trip_messages(plan, prefix))
        assert _wait_for(lambda: _reviews(runtime) or None)
    assert _balance(runtime, route.centre_ilr.id, route.lot.id) == (230, 230)
    assert _reviews(runtime) == [(route.centre.id, route.centre_ilr.id, 230, "frozen", "pending")]
    with runtime.uow() as uow:
        messages = list(
            uow.session.scalars(select(Alert.message).where(Alert.subject_type == "trip"))
        )
    assert any("70 doses already used" in m for m in messages)


def test_the_simulator_runs_a_trip_on_time_and_nothing_is_held(runtime, mqtt_url):
    with runtime.uow() as uow:
        route = make_route(uow, runtime.settings)
    start = dt.datetime.now(UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=5)
    plan = TripPlan("CB-1-LOG", start, 240, "on_time")
    shipment = Shipment("AS-CAC", "AS-CAC-SIL", route.lot.id, 300, "ILR-1")
    with _pipeline(runtime, mqtt_url) as (prefix, publish):
        done = run_trip(runtime, publish, plan, shipment, prefix)
        stored = select(func.count()).select_from(Reading).where(Reading.sensor_id == "CB-1-LOG")
        assert _wait_for(lambda: _count(runtime, stored) == 240)
        # ...and the evaluator has seen the last of them (so "nothing held" is a finding).
        last = plan.end - dt.timedelta(minutes=1)
        seen = select(UnitMonitorState.last_reading_ts).where(
            UnitMonitorState.unit_id == route.cold_box.id
        )
        assert _wait_for(lambda: _count(runtime, seen) == last)
    assert done["shipment_id"]
    assert _balance(runtime, route.centre_ilr.id, route.lot.id) == (300, 0)
    assert _reviews(runtime) == [] and _trip_alarm_stores(runtime) == set()
