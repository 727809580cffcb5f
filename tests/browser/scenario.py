"""The data every journey starts from: the demo network, a person per role, a freeze in Khed."""

from __future__ import annotations

import dataclasses
import datetime as dt

from logistics.domain.readings import SensorReading
from logistics.runtime import Runtime
from logistics.services.auth import create_user
from logistics.services.demo import load_demo
from logistics.services.excursions import evaluate_units
from logistics.services.readings import record_readings
from logistics.services.sensors import register_sensor

PASSWORD = "correct horse battery"
# username -> (role, store code): one person for each role of the card.
PEOPLE = {
    "stella": ("state_officer", "MH-SVS-PUNE"),
    "dev": ("district_officer", "MH-DVS-PUNE"),
    "kiran": ("centre_officer", "PUN-PHC-KHED"),
    "priya": ("planner", "PUN-PHC-BARAMATI"),
}
# Khed's ILR is freezing: -2 C for the last 5 hours (alarm: at or below -0.5 C for 60 min).
FREEZE_FROM_H, FREEZE_TO_H, FREEZE_C = 5.0, 0.0, -2.0


@dataclasses.dataclass(frozen=True)
class Scenario:
    ids: dict
    khed_unit: int
    now: dt.datetime


def _temperature(hours_ago: float) -> float:
    return FREEZE_C if FREEZE_TO_H <= hours_ago <= FREEZE_FROM_H else 4.5


def _khed_freeze(runtime: Runtime, unit_id: int, now: dt.datetime) -> None:
    start = now - dt.timedelta(hours=8)
    with runtime.uow() as uow:
        register_sensor(
            uow,
            sensor_id="KHED-T1",
            unit_id=unit_id,
            valid_from=start,
            actor="setup",
            now=start,
            expected_interval_s=60,
        )
        uow.commit()
    readings = [
        SensorReading(
            "KHED-T1",
            start + dt.timedelta(minutes=i),
            _temperature(8 - i / 60),
            now,
            battery_pct=87.0,
            power="mains",
        )
        for i in range(8 * 60)
    ]
    with runtime.uow() as uow:
        touched = record_readings(uow, readings, now)
        uow.commit()
    evaluate_units(runtime, touched, now)


def build(runtime: Runtime) -> Scenario:
    """Load the demo, add the people and the freeze; return what the journeys need."""
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    with runtime.uow() as uow:
        ids = load_demo(uow, now)
        uow.commit()
    with runtime.uow() as uow:
        for username, (role, store) in PEOPLE.items():
            create_user(uow, username=username, password=PASSWORD, roles=[(role, store)])
            uow.commit()
    unit = ids["units"]["PUN-PHC-KHED/ILR-1"]
    _khed_freeze(runtime, unit, now)
    return Scenario(ids, unit, now)
