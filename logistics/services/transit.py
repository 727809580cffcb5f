"""Vaccines in transit (issue 18): carriers, their trips, alarms on the road, the whole journey.

A carrier is a storage unit of a carrier kind with a logger; its readings are stored and evaluated
like an ILR's (sensors/ingest.py, logistics.services.excursions) under its transport rules (a unit
override seeded at registration). This module adds what is particular to a trip:
- `load_carriers` (and `journeys.issue_in_carriers`): which doses of a shipment travel in which
  carrier;
- `after_evaluation` (called by the evaluation of a carrier): an excursion during a trip alerts the
  sending and the receiving store; an alarm holds the trip's doses (a `TransitHold`);
- `after_receipt` (called by the receipt of a shipment): held doses arrive held, with a review at
  the receiver. An alarm whose readings arrive after the receipt holds what remains there then;
  doses used meanwhile are reported, never reversed.
- `shipment_trip`, `lot_trips`, `carrier_stays`: a shipment's trip and a lot's trips, MKT and
  minutes outside the range per leg (services/journeys.py joins them with the stays in units
  into the lot's whole journey).
The held doses are written by logistics.services.holds only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select

from logistics.config import Settings
from logistics.db import UnitOfWork, is_postgres
from logistics.domain import transit as rules
from logistics.domain.errors import Conflict, Invalid, NotFound
from logistics.domain.mkt import mean_kinetic_temperature, reading_weights
from logistics.models.alerts import Alert, Excursion, TemperatureRule, TemperatureRuleSet
from logistics.models.catalog import Lot, StorageUnit, Store
from logistics.models.readings import Reading, Sensor, SensorAssignment
from logistics.models.stock import LedgerEntry, Movement, Shipment, ShipmentLine, StockBalance
from logistics.models.transit import CarrierLoad, TransitHold
from logistics.services import catalog, holds
from logistics.services.alerts import raise_alert

MINUTE = dt.timedelta(minutes=1)
SEVERITY = {"warning": "warning", "alarm": "alarm"}
ALARMS = ("heat_alarm", "cold_alarm")


def transport_defaults(settings: Settings) -> rules.TransportDefaults:
    """The transport rules' numbers from config [transit]."""
    return rules.TransportDefaults(
        freeze_limit_c=settings.transit_freeze_limit_c,
        heat_warning_min=settings.transit_heat_warning_min,
        heat_alarm_min=settings.transit_heat_alarm_min,
        heat_alarm_window_min=settings.transit_heat_alarm_window_min,
        cold_warning_min=settings.transit_cold_warning_min,
        cold_alarm_min=settings.transit_cold_alarm_min,
    )


# --- carriers --------------------------------------------------------------------------------


def register_carrier(
    uow: UnitOfWork,
    settings: Settings,
    *,
    store_id: int,
    code: str,
    kind: str,
    actor: str,
    now: dt.datetime,
    min_temp_c: float = 2.0,
    max_temp_c: float = 8.0,
    sensor_id: str | None = None,
) -> StorageUnit:
    """Add a carrier to a store with its transport rules and, if named, its logger (the edge
    commits)."""
    if not rules.is_carrier(kind):
        raise Invalid(f"a carrier is one of {', '.join(rules.CARRIER_KINDS)}", field="kind")
    catalog.get_store(uow, store_id)
    if min_temp_c >= max_temp_c:
        raise Invalid("the safe range needs min_temp_c < max_temp_c", field="max_temp_c")
    taken = select(StorageUnit.id).where(StorageUnit.store_id == store_id, StorageUnit.code == code)
    if uow.session.scalar(taken) is not None:
        raise Conflict(f"store {store_id} already has a unit {code!r}", field="code")
    if sensor_id is not None and uow.session.get(Sensor, sensor_id) is not None:
        raise Conflict(f"sensor {sensor_id!r} is already registered", field="sensor_id")
    unit = StorageUnit(
        store_id=store_id, code=code, kind=kind, min_temp_c=min_temp_c, max_temp_c=max_temp_c
    )
    uow.session.add(unit)
    uow.session.flush()
    _seed_rules(uow, settings, unit, actor, now)
    if sensor_id is not None:
        _add_logger(uow, settings, unit, sensor_id, actor, now)
    return unit


def _seed_rules(
    uow: UnitOfWork, settings: Settings, unit: StorageUnit, actor: str, now: dt.datetime
) -> None:
    """The carrier's transport rules, stored as its own rule override (data, editable)."""
    rule_set = rules.transport_rules(unit.min_temp_c, unit.max_temp_c, transport_defaults(settings))
    row = TemperatureRuleSet(
        unit_id=unit.id,
        min_temp_c=rule_set.min_temp_c,
        max_temp_c=rule_set.max_temp_c,
        updated_at=now,
        updated_by=actor,
    )
    row.rules = [
        TemperatureRule(
            side=r.side,
            level=r.level,
            limit_c=r.limit_c,
            mode=r.mode,
            duration_min=int(r.duration / MINUTE),
            window_min=int(r.window / MINUTE) if r.window else None,
        )
        for r in rule_set.rules
    ]
    uow.session.add(row)


def _add_logger(
    uow: UnitOfWork,
    settings: Settings,
    unit: StorageUnit,
    sensor_id: str,
    actor: str,
    now: dt.datetime,
) -> None:
    # A carrier logger uploads when back in range: its silence between trips is expected.
    uow.session.add(
        Sensor(
            sensor_id=sensor_id,
            expected_interval_s=settings.transit_logger_interval_s,
            registered_at=now,
        )
    )
    uow.session.flush()
    uow.session.add(
        SensorAssignment(sensor_id=sensor_id, unit_id=unit.id, valid_from=now, actor=actor)
    )


def list_carriers(uow: UnitOfWork, *, store_id: int | None = None) -> list[StorageUnit]:
    """Carriers of one store, or of all."""
    query = select(StorageUnit).where(StorageUnit.kind.in_(rules.CARRIER_KINDS))
    if store_id is not None:
        query = query.where(StorageUnit.store_id == store_id)
    return list(uow.session.scalars(query.order_by(StorageUnit.id)))


# --- loading a shipment into carriers -------------------------------------------------------


def load_carriers(
    uow: UnitOfWork,
    *,
    shipment_id: int,
    carriers: Sequence[Mapping[str, Any]],
    actor: str,
    now: dt.datetime,
) -> Shipment:
    """Name the carriers of a shipment still in transit (issued on paper first); no commit."""
    shipment = _shipment(uow, shipment_id)
    if shipment.status != "in_transit":
        raise Conflict(f"shipment {shipment_id} is {shipment.status}", field="shipment_id")
    if uow.session.scalar(select(CarrierLoad.id).where(CarrierLoad.shipment_id == shipment_id)):
        raise Conflict(f"shipment {shipment_id} already has its carriers", field="carriers")
    pack(uow, shipment, carriers, actor, now)
    # Alarms the carriers' loggers already showed during the trip hold its doses now.
    for carrier_id in {c["unit_id"] for c in carriers}:
        _sync_trip(
            uow,
            shipment,
            _carrier(uow, carrier_id),
            _trip_excursions(uow, shipment, carrier_id),
            now,
        )
    return shipment


def _shipment(uow: UnitOfWork, shipment_id: int) -> Shipment:
    shipment = uow.session.get(Shipment, shipment_id) if 0 < shipment_id < 2**31 else None
    if shipment is None:
        raise NotFound(f"no shipment with id {shipment_id}", field="shipment_id")
    return shipment


def _carrier(uow: UnitOfWork, unit_id: int) -> StorageUnit:
    unit = uow.session.get(StorageUnit, unit_id) if 0 < unit_id < 2**31 else None
    if unit is None:
        raise NotFound(f"storage unit {unit_id} does not exist", field="carriers")
    if not rules.is_carrier(unit.kind):
        raise Invalid(f"unit {unit.code} is a {unit.kind}, not a carrier", field="carriers")
    return unit


def pack(
    uow: UnitOfWork,
    shipment: Shipment,
    carriers: Sequence[Mapping[str, Any]],
    actor: str,
    now: dt.datetime,
) -> None:
    for named in carriers:
        unit = _carrier(uow, named["unit_id"])
        if unit.store_id not in (shipment.from_store_id, shipment.to_store_id):
            raise Invalid(
                f"carrier {unit.code} belongs to neither the sending nor the receiving store",
                field="carriers",
            )
    lines = {line.lot_id: line.doses_issued for line in shipment.lines}
    wanted = [
        (c["unit_id"], {x["lot_id"]: x["doses"] for x in c.get("lines") or ()} or None)
        for c in carriers
    ]
    try:
        loads = rules.plan_loads(lines, wanted)
    except rules.TransitRuleError as exc:
        raise Invalid(str(exc), field="carriers") from exc
    for load in loads:
        uow.session.add(
            CarrierLoad(
                shipment_id=shipment.id,
                carrier_unit_id=load.carrier_id,
                lot_id=load.lot_id,
                doses=load.doses,
                loaded_by=actor,
                loaded_at=now,
            )
        )
    uow.session.flush()


# --- alarms on the road ------------------------------------------------------------------------


def _trips_of_carrier(
    uow: UnitOfWork, carrier_id: int, start: dt.datetime, end: dt.datetime | None
) -> list[Shipment]:
    """Shipments the carrier carried at some time in [start, end) (end None: still going on)."""
    query = (
        select(Shipment)
        .join(CarrierLoad, CarrierLoad.shipment_id == Shipment.id)
        .where(
            CarrierLoad.carrier_unit_id == carrier_id,
            Shipment.status != "cancelled",
            (Shipment.received_at.is_(None)) | (Shipment.received_at > start),
        )
        .distinct()
        .order_by(Shipment.id)
    )
    if end is not None:
        query = query.where(Shipment.issued_at < end)
    return list(uow.session.scalars(query))


def _trip_excursions(uow: UnitOfWork, shipment: Shipment, carrier_id: int) -> list[Excursion]:
    query = select(Excursion).where(
        Excursion.unit_id == carrier_id,
        (Excursion.ended_at.is_(None)) | (Excursion.ended_at > shipment.issued_at),
    )
    if shipment.received_at is not None:
        query = query.where(Excursion.started_at < shipment.received_at)
    return list(uow.session.scalars(query.order_by(Excursion.started_at)))


def after_evaluation(
    uow: UnitOfWork, unit: StorageUnit, excursions: Iterable[Excursion], now: dt.datetime
) -> None:
    """A carrier was evaluated: its excursions during trips alert both stores and hold doses."""
    if not rules.is_carrier(unit.kind):
        return
    for excursion in excursions:
        for shipment in _trips_of_carrier(uow, unit.id, excursion.started_at, excursion.ended_at):
            _sync_trip(uow, shipment, unit, [excursion], now)


def after_receipt(uow: UnitOfWork, shipment: Shipment, now: dt.datetime) -> None:
    """A shipment was received: doses its carriers' alarms held arrive held, with a review."""
    carrier_ids = uow.session.scalars(
        select(CarrierLoad.carrier_unit_id).where(CarrierLoad.shipment_id == shipment.id).distinct()
    )
    for carrier_id in sorted(carrier_ids):
        carrier = uow.session.get(StorageUnit, carrier_id)
        assert carrier is not None
        _sync_trip(uow, shipment, carrier, _trip_excursions(uow, shipment, carrier_id), now)


def _sync_trip(
    uow: UnitOfWork,
    shipment: Shipment,
    carrier: StorageUnit,
    excursions: Iterable[Excursion],
    now: dt.datetime,
) -> None:
    for excursion in excursions:
        if not rules.overlaps_trip(
            excursion.started_at, excursion.ended_at, shipment.issued_at, shipment.received_at
        ):
            continue
        trip = (shipment.issued_at, shipment.received_at)
        # Begun before the issue: it concerns the trip only if the logger saw it on the road.
        seen = excursion.started_at >= shipment.issued_at or _outside_during(uow, excursion, trip)
        if not seen:
            continue
        hold = None
        if excursion.kind in ALARMS and rules.alarm_counts_for_trip(
            excursion.started_at, excursion.triggered_at, excursion.ended_at, trip, seen
        ):
            hold = _hold(uow, shipment, carrier, excursion, now)
        _alert_both(uow, shipment, carrier, excursion, hold, now)


def _outside_during(
    uow: UnitOfWork, excursion: Excursion, trip: tuple[dt.datetime, dt.datetime | None]
) -> bool:
    """Whether the excursion's logger read beyond its rule's limit during the trip."""
    limit = (excursion.thresholds or {}).get("rule", {}).get("limit_c")
    if limit is None:
        return True  # no snapshot of the rule: assume the worst
    heat = excursion.kind.startswith("heat")
    beyond = Reading.temp_c >= limit if heat else Reading.temp_c <= limit
    query = select(Reading.id).where(
        Reading.unit_id == excursion.unit_id, Reading.ts >= trip[0], beyond
    )
    if trip[1] is not None:
        query = query.where(Reading.ts < trip[1])
    if excursion.sensor_id is not None:
        query = query.where(Reading.sensor_id == excursion.sensor_id)
    return uow.session.scalar(query.limit(1)) is not None


def _hold(
    uow: UnitOfWork,
    shipment: Shipment,
    carrier: StorageUnit,
    excursion: Excursion,
    now: dt.datetime,
) -> TransitHold:
    hold = uow.session.scalars(
        select(TransitHold).where(
            TransitHold.shipment_id == shipment.id, TransitHold.excursion_id == excursion.id
        )
    ).first()
    if hold is None:
        hold = TransitHold(
            shipment_id=shipment.id,
            excursion_id=excursion.id,
            carrier_unit_id=carrier.id,
            created_at=now,
            after_receipt=shipment.status == "received",
            outcome=[],
        )
        uow.session.add(hold)
        uow.session.flush()
    if hold.applied_at is None and shipment.status == "received":
        _apply(uow, shipment, hold, excursion, now)
    return hold


def _received_into(uow: UnitOfWork, shipment: Shipment) -> dict[int, tuple[int, int]]:
    """Per lot: the unit the shipment's receipt credited, and the doses it credited there."""
    query = (
        select(LedgerEntry.lot_id, LedgerEntry.unit_id, LedgerEntry.doses)
        .join(Movement, Movement.id == LedgerEntry.movement_id)
        .where(Movement.shipment_id == shipment.id, Movement.kind == "receipt")
        .order_by(LedgerEntry.id)
    )
    return {
        lot: (unit, doses) for lot, unit, doses in uow.session.execute(query).all() if doses > 0
    }


def _locked_balance(uow: UnitOfWork, unit_id: int, lot_id: int) -> StockBalance | None:
    query = select(StockBalance).where(
        StockBalance.unit_id == unit_id, StockBalance.lot_id == lot_id
    )
    if is_postgres(uow.session):
        query = query.with_for_update(of=StockBalance)
    return uow.session.scalars(query.execution_options(populate_existing=True)).first()


def _apply(
    uow: UnitOfWork, shipment: Shipment, hold: TransitHold, excursion: Excursion, now: dt.datetime
) -> None:
    """Open the receiver's reviews: what the carrier brought, as much of it as is still there."""
    received = _received_into(uow, shipment)
    loads = uow.session.scalars(
        select(CarrierLoad).where(
            CarrierLoad.shipment_id == shipment.id,
            CarrierLoad.carrier_unit_id == hold.carrier_unit_id,
        )
    )
    outcome, reviews = [], []
    for load in sorted(loads, key=lambda item: item.lot_id):
        unit_id, credited = received.get(load.lot_id, (None, 0))
        balance = _locked_balance(uow, unit_id, load.lot_id) if unit_id is not None else None
        split = rules.late_hold(min(load.doses, credited), balance.doses if balance else 0)
        review = (
            holds.hold_after_trip(uow.session, excursion, balance, split.held, now)
            if balance is not None
            else None
        )
        reviews.append(review)
        lot = uow.session.get(Lot, load.lot_id)
        outcome.append(
            {
                "lot_id": load.lot_id,
                "lot_number": lot.lot_number if lot else None,
                "unit_id": unit_id,
                "doses_received": split.received,
                "doses_held": min(split.held, review.doses) if review is not None else 0,
                "doses_used_before_known": split.gone,
            }
        )
    uow.session.flush()
    for item, review in zip(outcome, reviews, strict=True):
        item["review_id"] = review.id if review is not None else None
    hold.outcome, hold.applied_at = outcome, now
    from logistics.services.commitments import check_commitments

    # Held doses may no longer cover the receiver's sessions (issue 5, point 4).
    check_commitments(uow, shipment.to_store_id, now)


def _alert_both(
    uow: UnitOfWork,
    shipment: Shipment,
    carrier: StorageUnit,
    excursion: Excursion,
    hold: TransitHold | None,
    now: dt.datetime,
) -> None:
    """One alert to the sending store and one to the receiving store, once per excursion."""
    for store_id in (shipment.from_store_id, shipment.to_store_id):
        subject = f"{shipment.id}/{excursion.id}/{store_id}"
        kind = f"transit_{excursion.kind}"
        known = uow.session.scalar(
            select(Alert.state)
            .where(Alert.kind == kind, Alert.subject_type == "trip", Alert.subject_id == subject)
            .order_by(Alert.id.desc())
        )
        if known == "resolved":
            continue  # an officer closed it; a re-evaluation does not reopen it
        raise_alert(
            uow,
            kind=kind,
            subject_type="trip",
            subject_id=subject,
            store_id=store_id,
            severity=SEVERITY[excursion.kind.split("_")[1]],
            message=_message(shipment, carrier, excursion, hold),
            details=_details(shipment, carrier, excursion, hold),
            now=now,
        )


def _message(
    shipment: Shipment, carrier: StorageUnit, excursion: Excursion, hold: TransitHold | None
) -> str:
    words = excursion.kind.replace("cold_alarm", "freeze alarm").replace("_", " ")
    text = (
        f"{words} in carrier {carrier.code} during shipment {shipment.id}: "
        f"{excursion.minutes_outside:.0f} min outside, peak {excursion.peak_temp_c:.1f} C"
    )
    if hold is None:
        return text
    if hold.applied_at is None:
        return text + "; its doses travel held"
    used = sum(item["doses_used_before_known"] for item in hold.outcome)
    held = sum(item["doses_held"] for item in hold.outcome)
    text += f"; {held} doses held at the receiver for review"
    return text + (f", {used} doses already used before the alarm was known" if used else "")


def _details(
    shipment: Shipment, carrier: StorageUnit, excursion: Excursion, hold: TransitHold | None
) -> dict[str, Any]:
    return {
        "shipment_id": shipment.id,
        "from_store_id": shipment.from_store_id,
        "to_store_id": shipment.to_store_id,
        "carrier_unit_id": carrier.id,
        "carrier_code": carrier.code,
        "excursion_id": excursion.id,
        "sensor_id": excursion.sensor_id,
        "started_at": excursion.started_at.isoformat(),
        "triggered_at": excursion.triggered_at.isoformat(),
        "peak_temp_c": excursion.peak_temp_c,
        "minutes_outside": excursion.minutes_outside,
        "held": hold is not None,
        "known_after_receipt": bool(hold and hold.after_receipt),
        "lots": list(hold.outcome) if hold is not None else [],
    }


# --- the whole journey -------------------------------------------------------------------------


def unit_readings(
    uow: UnitOfWork, unit_id: int, start: dt.datetime, end: dt.datetime
) -> list[tuple[dt.datetime, float]]:
    """The unit's readings in [start, end), with the one just before standing for the start."""
    before = uow.session.scalar(
        select(func.max(Reading.ts)).where(Reading.unit_id == unit_id, Reading.ts < start)
    )
    lower = before if before is not None else start
    rows = uow.session.execute(
        select(Reading.ts, Reading.temp_c)
        .where(Reading.unit_id == unit_id, Reading.ts >= lower, Reading.ts < end)
        .order_by(Reading.ts)
    )
    return [(ts, temp) for ts, temp in rows]


def leg_figures(
    uow: UnitOfWork,
    settings: Settings,
    unit_id: int | None,
    span: tuple[dt.datetime, dt.datetime],
    limits: tuple[float, float],
) -> dict[str, Any]:
    """MKT (USP <1160>), minutes outside the range and covered minutes of one leg."""
    if unit_id is None:
        return {"mkt_c": None, "covered_min": 0.0, "minutes_outside": 0.0, "readings": 0}
    rows = unit_readings(uow, unit_id, *span)
    temps = [temp for _, temp in rows]
    weights = reading_weights(
        [ts for ts, _ in rows], span[0], span[1], settings.alerts_max_gap_min * MINUTE
    )
    mkt = mean_kinetic_temperature(temps, weights)
    return {
        "mkt_c": None if mkt is None else round(mkt, 2),
        "covered_min": round(sum(weights) / 60, 1),
        "minutes_outside": rules.minutes_outside(temps, weights, *limits),
        "readings": len(rows),
    }


def lot_shipments(
    uow: UnitOfWork, lot_id: int, start: dt.datetime, end: dt.datetime
) -> list[tuple[ShipmentLine, Shipment]]:
    query = (
        select(ShipmentLine, Shipment)
        .join(Shipment, Shipment.id == ShipmentLine.shipment_id)
        .where(
            ShipmentLine.lot_id == lot_id,
            Shipment.status != "cancelled",
            Shipment.issued_at < end,
            (Shipment.received_at.is_(None)) | (Shipment.received_at > start),
        )
        .order_by(Shipment.issued_at, Shipment.id)
    )
    return [(line, shipment) for line, shipment in uow.session.execute(query).all()]


def loads_of(uow: UnitOfWork, shipment_id: int, lot_id: int | None = None) -> list[CarrierLoad]:
    query = select(CarrierLoad).where(CarrierLoad.shipment_id == shipment_id)
    if lot_id is not None:
        query = query.where(CarrierLoad.lot_id == lot_id)
    return list(uow.session.scalars(query.order_by(CarrierLoad.carrier_unit_id)))


def store_code(uow: UnitOfWork, store_id: int) -> str:
    store = uow.session.get(Store, store_id)
    return store.code if store else str(store_id)


# --- a shipment's trip, a lot's trips ----------------------------------------------------------


def _holds_of(uow: UnitOfWork, shipment_id: int) -> list[dict[str, Any]]:
    rows = uow.session.execute(
        select(TransitHold, Excursion)
        .join(Excursion, Excursion.id == TransitHold.excursion_id)
        .where(TransitHold.shipment_id == shipment_id)
        .order_by(TransitHold.id)
    )
    return [
        {
            "excursion_id": excursion.id,
            "kind": excursion.kind,
            "carrier_unit_id": hold.carrier_unit_id,
            "started_at": excursion.started_at,
            "triggered_at": excursion.triggered_at,
            "after_receipt": hold.after_receipt,
            "applied_at": hold.applied_at,
            "lots": hold.outcome,
        }
        for hold, excursion in rows
    ]


def shipment_trip(uow: UnitOfWork, settings: Settings, *, shipment_id: int) -> dict[str, Any]:
    """A shipment's trip: its carriers, what each carried, their figures, alarms and holds."""
    shipment = _shipment(uow, shipment_id)
    end = shipment.received_at or dt.datetime.now(dt.UTC)
    carriers: dict[int, dict[str, Any]] = {}
    for load in loads_of(uow, shipment.id):
        unit = uow.session.get(StorageUnit, load.carrier_unit_id)
        assert unit is not None
        entry = carriers.setdefault(
            unit.id,
            {
                "unit_id": unit.id,
                "code": unit.code,
                "kind": unit.kind,
                "store_id": unit.store_id,
                "lots": [],
                **leg_figures(
                    uow,
                    settings,
                    unit.id,
                    (shipment.issued_at, end),
                    (unit.min_temp_c, unit.max_temp_c),
                ),
                "excursions": _trip_excursions(uow, shipment, unit.id),
            },
        )
        entry["lots"].append({"lot_id": load.lot_id, "doses": load.doses})
    trip_holds = _holds_of(uow, shipment.id)
    return {
        **_trip_head(shipment),
        "held": bool(trip_holds),
        "carriers": list(carriers.values()),
        "holds": trip_holds,
    }


def carrier_stays(
    uow: UnitOfWork, lot_id: int, end: dt.datetime
) -> list[tuple[int, dt.datetime, dt.datetime]]:
    """(carrier, issued, received or `end`) of every trip of the lot in a carrier."""
    query = (
        select(CarrierLoad.carrier_unit_id, Shipment.issued_at, Shipment.received_at)
        .join(Shipment, Shipment.id == CarrierLoad.shipment_id)
        .where(CarrierLoad.lot_id == lot_id, Shipment.status != "cancelled")
        .order_by(Shipment.issued_at, CarrierLoad.carrier_unit_id)
    )
    return [(unit, frm, to or end) for unit, frm, to in uow.session.execute(query).all()]


def _trip_head(shipment: Shipment) -> dict[str, Any]:
    """What a trip's row says of its shipment: which, from where to where, its state, when."""
    return {
        "shipment_id": shipment.id,
        "from_store_id": shipment.from_store_id,
        "to_store_id": shipment.to_store_id,
        "status": shipment.status,
        "issued_at": shipment.issued_at,
        "received_at": shipment.received_at,
    }


def lot_trips(
    uow: UnitOfWork, lot_id: int, shipments: Sequence[tuple[ShipmentLine, Shipment]]
) -> list[dict[str, Any]]:
    """Where the lot's doses travelled, and in what: one row per shipment of the lot.

    `shipments`: the lot's shipment lines with their shipments, as its trace has read them (any
    order; cancelled ones are left out here). Carriers and holds are read for all the trips at
    once: a national lot travels in thousands of shipments.
    """
    trips = sorted(
        (pair for pair in shipments if pair[1].status != "cancelled"),
        key=lambda pair: (pair[1].issued_at, pair[1].id),
    )
    if not trips:
        return []
    of_lot = select(ShipmentLine.shipment_id).where(ShipmentLine.lot_id == lot_id)
    carriers: dict[int, list[dict[str, Any]]] = {}
    loads = (
        select(
            CarrierLoad.shipment_id,
            CarrierLoad.carrier_unit_id,
            StorageUnit.code,
            CarrierLoad.doses,
        )
        .join(StorageUnit, StorageUnit.id == CarrierLoad.carrier_unit_id)
        .where(CarrierLoad.lot_id == lot_id)
        .order_by(CarrierLoad.shipment_id, CarrierLoad.carrier_unit_id, CarrierLoad.id)
    )
    for shipment_id, unit_id, code, doses in uow.session.execute(loads).all():
        carriers.setdefault(shipment_id, []).append(
            {"unit_id": unit_id, "code": code, "doses": doses}
        )
    held = set(
        uow.session.scalars(
            select(TransitHold.shipment_id).where(TransitHold.shipment_id.in_(of_lot)).distinct()
        )
    )
    return [
        {
            **_trip_head(shipment),
            "doses": line.doses_issued,
            "carriers": carriers.get(shipment.id, []),
            "held": shipment.id in held,
        }
        for line, shipment in trips
    ]
