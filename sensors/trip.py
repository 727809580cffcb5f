"""A carrier logger's trip (issue 18): readings of a cold box on the road, on time or freezing.

Carrier loggers (like the 30-DTRs packed with a shipment) read every few minutes and upload when
back in range, so a trip arrives as one backlog: `trip_messages` cuts it into batches, oldest
first, each under the ingestion's batch limit. `live=True` sends one reading a message instead
(a logger with a SIM that publishes as it goes).

Scenarios:
- on_time: +4 to +6 C all along (a cold box packed with conditioned ice packs, WHO practice);
- freeze: the same, but from 40% of the trip the vials sit against a frozen (unconditioned) ice
  pack for `freeze_min` minutes at -2 to -3 C, then recover.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

SCENARIOS = ("on_time", "freeze")
BATCH = 500  # readings per message, well under ingest.max_batch_readings


@dataclasses.dataclass(frozen=True)
class TripPlan:
    """One carrier logger's trip."""

    sensor_id: str
    start: dt.datetime
    duration_min: int
    scenario: str = "on_time"
    interval_s: int = 60
    freeze_min: int = 45

    @property
    def end(self) -> dt.datetime:
        return self.start + dt.timedelta(minutes=self.duration_min)

    @property
    def freeze_span(self) -> tuple[dt.datetime, dt.datetime] | None:
        """When the vials sit against a frozen ice pack (freeze scenario only)."""
        if self.scenario != "freeze":
            return None
        begin = self.start + dt.timedelta(minutes=int(self.duration_min * 0.4))
        return begin, begin + dt.timedelta(minutes=self.freeze_min)


def temperature(plan: TripPlan, ts: dt.datetime) -> float:
    """The carrier's temperature at `ts`: a slow wave around +5 C, or the freeze."""
    span = plan.freeze_span
    if span is not None and span[0] <= ts < span[1]:
        minutes = (ts - span[0]).total_seconds() / 60
        return round(-2.5 - 0.5 * math.sin(minutes / 7), 2)
    minutes = (ts - plan.start).total_seconds() / 60
    return round(5.0 + math.sin(minutes / 25), 2)


def trip_readings(plan: TripPlan) -> list[dict[str, object]]:
    """Every reading of the trip, from the issue to the receipt (end excluded)."""
    step = dt.timedelta(seconds=plan.interval_s)
    count = int((plan.end - plan.start) / step)
    return [
        {"ts": (ts := plan.start + k * step).isoformat(), "temp_c": temperature(plan, ts)}
        for k in range(count)
    ]


def trip_messages(
    plan: TripPlan, prefix: str = "coldchain/sensors", live: bool = False
) -> list[tuple[str, bytes, bool]]:
    """(topic, payload, retain) of the trip: batches after the trip, or one reading a message."""
    topic = f"{prefix}/{plan.sensor_id}/readings"
    readings = trip_readings(plan)
    if live:
        return [(topic, json.dumps(r).encode(), False) for r in readings]
    return [
        (topic, json.dumps({"readings": readings[i : i + BATCH]}).encode(), False)
        for i in range(0, len(readings), BATCH)
    ]


@dataclasses.dataclass(frozen=True)
class Shipment:
    """The stock side of a simulated trip: what is issued, in which carrier, received where."""

    from_store_code: str
    to_store_code: str
    lot_id: int
    doses: int
    receive_unit_code: str


def run_trip(
    runtime: object,
    publish: object,
    plan: TripPlan,
    shipment: Shipment | None,
    prefix: str,
    live: bool = False,
) -> dict[str, object]:
    """Issue (in the logger's carrier), publish the logger's trip, receive; return what was done.

    Without a shipment only the logger's readings are published. The issue is dated at the
    trip's start and the receipt at its end, so the readings fall inside the trip.
    """
    from logistics.services import catalog, journeys, sensors, stock

    done: dict[str, object] = {}
    if shipment is not None:
        with runtime.uow() as uow:  # type: ignore[attr-defined]
            carrier_id = sensors.current_unit_id(uow, plan.sensor_id)
            if carrier_id is None:
                raise ValueError(f"logger {plan.sensor_id} is not in a carrier")
            sender = catalog.find_store_by_code(uow, shipment.from_store_code)
            receiver = catalog.find_store_by_code(uow, shipment.to_store_code)
            if sender is None or receiver is None:
                raise ValueError("unknown store code")
            movement = journeys.issue_in_carriers(
                uow,
                carriers=[{"unit_id": carrier_id}],
                issue={
                    "store_id": sender.id,
                    "to_store_id": receiver.id,
                    "doses": shipment.doses,
                    "lot_id": shipment.lot_id,
                },
                rec=stock.recorded("simulator", plan.start, None),
            )
            uow.commit()
            done["shipment_id"] = movement.shipment_id
    done["messages"] = publish(trip_messages(plan, prefix, live))  # type: ignore[operator]
    if shipment is not None:
        with runtime.uow() as uow:  # type: ignore[attr-defined]
            receiver = catalog.find_store_by_code(uow, shipment.to_store_code)
            unit = next(u for u in receiver.units if u.code == shipment.receive_unit_code)  # type: ignore[union-attr]
            stock.receive_shipment(
                uow,
                store_id=unit.store_id,
                unit_id=unit.id,
                shipment_id=done["shipment_id"],  # type: ignore[arg-type]
                rec=stock.recorded("simulator", plan.end, None),
            )
            uow.commit()
    return done
