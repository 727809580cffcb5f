"""Use cases of sensors: register one to a unit, move it to another unit from a time, retire it."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from logistics.db import UnitOfWork
from logistics.domain.errors import Conflict, Invalid, NotFound
from logistics.domain.readings import SENSOR_ID
from logistics.models.catalog import StorageUnit
from logistics.models.readings import (
    SENSOR_ACTIVE,
    SENSOR_RETIRED,
    Reading,
    Sensor,
    SensorAssignment,
)
from logistics.services.lookup import get_or_404
from logistics.services.readings import rebuild_hours


def register_sensor(
    uow: UnitOfWork,
    *,
    sensor_id: str,
    unit_id: int,
    valid_from: dt.datetime,
    actor: str,
    now: dt.datetime,
    expected_interval_s: int = 600,
) -> Sensor:
    """Register a new sensor as reading in a unit from `valid_from`; the caller commits."""
    if not SENSOR_ID.match(sensor_id):
        raise Invalid("a sensor id is 1-64 of A-Z a-z 0-9 _ . : -", field="sensor_id")
    if uow.session.get(Sensor, sensor_id) is not None:
        raise Conflict(
            f"sensor {sensor_id!r} is already registered; move it instead", field="sensor_id"
        )
    _require_unit(uow, unit_id)
    sensor = Sensor(
        sensor_id=sensor_id,
        expected_interval_s=expected_interval_s,
        status=SENSOR_ACTIVE,
        registered_at=now,
    )
    uow.session.add(sensor)
    uow.session.flush()
    uow.session.add(
        SensorAssignment(sensor_id=sensor_id, unit_id=unit_id, valid_from=valid_from, actor=actor)
    )
    uow.session.flush()
    return sensor


def move_sensor(
    uow: UnitOfWork, *, sensor_id: str, unit_id: int, valid_from: dt.datetime, actor: str
) -> Sensor:
    """Move a sensor to another unit from `valid_from`; stored readings from then on follow it."""
    sensor = _require_active(uow, sensor_id)
    _require_unit(uow, unit_id)
    current = _current_assignment(uow, sensor_id)
    if current is not None:
        if valid_from <= current.valid_from:
            raise Conflict(
                f"the sensor is in unit {current.unit_id} since {current.valid_from.isoformat()}; "
                "a move must start later",
                field="valid_from",
            )
        current.valid_to = valid_from
    uow.session.add(
        SensorAssignment(sensor_id=sensor_id, unit_id=unit_id, valid_from=valid_from, actor=actor)
    )
    # A reading belongs to the unit the sensor was in at its ts, also if stored before the move.
    moved = uow.session.scalars(
        select(Reading.unit_id)
        .where(Reading.sensor_id == sensor_id, Reading.ts >= valid_from)
        .distinct()
    ).all()
    uow.session.execute(
        update(Reading)
        .where(Reading.sensor_id == sensor_id, Reading.ts >= valid_from)
        .values(unit_id=unit_id)
    )
    if moved:  # the hourly aggregates of the units they left and joined (issue 16)
        rebuild_hours(uow, [*moved, unit_id], valid_from)
    uow.session.flush()
    return sensor


def retire_sensor(uow: UnitOfWork, *, sensor_id: str, actor: str, now: dt.datetime) -> Sensor:
    """Retire a sensor: it leaves its unit now and its further messages go to the dead letters."""
    sensor = _require_active(uow, sensor_id)
    current = _current_assignment(uow, sensor_id)
    if current is not None:
        current.valid_to = max(now, current.valid_from)
    sensor.status = SENSOR_RETIRED
    sensor.retired_at = now
    uow.session.flush()
    return sensor


def get_sensor(uow: UnitOfWork, sensor_id: str) -> Sensor:
    """A sensor by id."""
    sensor = uow.session.get(Sensor, sensor_id) if SENSOR_ID.match(sensor_id) else None
    if sensor is None:
        raise NotFound(f"sensor {sensor_id!r} is not registered", field="sensor_id")
    return sensor


def sensor_detail(uow: UnitOfWork, sensor_id: str) -> tuple[Sensor, list[SensorAssignment]]:
    """A sensor and the units it has been in (oldest first), usable after the unit of work."""
    sensor = get_sensor(uow, sensor_id)
    query = select(SensorAssignment).where(SensorAssignment.sensor_id == sensor_id)
    history = list(uow.session.scalars(query.order_by(SensorAssignment.valid_from)))
    uow.session.expunge_all()
    return sensor, history


def current_unit_id(uow: UnitOfWork, sensor_id: str) -> int | None:
    """The unit a sensor is in now (its open assignment), if any."""
    current = _current_assignment(uow, sensor_id)
    return current.unit_id if current else None


def _require_active(uow: UnitOfWork, sensor_id: str) -> Sensor:
    sensor = get_sensor(uow, sensor_id)
    if sensor.status == SENSOR_RETIRED:
        raise Conflict(f"sensor {sensor_id!r} is retired", field="sensor_id")
    return sensor


def _require_unit(uow: UnitOfWork, unit_id: int) -> StorageUnit:
    unit = get_or_404(
        uow, StorageUnit, unit_id, f"storage unit {unit_id} does not exist", field="unit_id"
    )
    if not unit.active:
        raise Invalid(f"storage unit {unit_id} is not active", field="unit_id")
    return unit


def _current_assignment(uow: UnitOfWork, sensor_id: str) -> SensorAssignment | None:
    query = select(SensorAssignment).where(
        SensorAssignment.sensor_id == sensor_id, SensorAssignment.valid_to.is_(None)
    )
    return uow.session.scalars(query.order_by(SensorAssignment.valid_from.desc()).limit(1)).first()
