"""A small store tree with one ILR and a lot of Covishield, for alert and excursion tests."""

from __future__ import annotations

import dataclasses
import datetime as dt

from logistics.db import UnitOfWork
from logistics.models.catalog import Lot, Product, StorageUnit, Store
from logistics.models.stock import StockBalance
from tests.support.sessions_fixtures import add_store


@dataclasses.dataclass
class Tree:
    state: Store
    district: Store
    centre: Store
    other_district: Store
    other_centre: Store
    ilr: StorageUnit
    product: Product
    lot: Lot


def make_tree(uow: UnitOfWork, doses: int = 500) -> Tree:
    """State -> two districts -> one centre each; an ILR at the first centre holding one lot."""
    state = add_store(uow, "AS", "state", None)
    district = add_store(uow, "AS-CAC", "district", state)
    centre = add_store(uow, "AS-CAC-SIL", "centre", district)
    other_district = add_store(uow, "AS-KAM", "district", state)
    other_centre = add_store(uow, "AS-KAM-1", "centre", other_district)
    ilr = StorageUnit(store_id=centre.id, code="ILR-1", kind="ilr", min_temp_c=2.0, max_temp_c=8.0)
    product = Product(
        code="COVISHIELD",
        name="Covishield",
        doses_per_vial=10,
        min_temp_c=2.0,
        max_temp_c=8.0,
        freeze_sensitive=True,
        open_vial_life_min=240,
    )
    uow.session.add_all([ilr, product])
    uow.session.flush()
    lot = Lot(
        product_id=product.id,
        lot_number="4121Z001",
        manufacturer="Serum Institute of India",
        expiry_date=dt.date(2021, 6, 30),
    )
    uow.session.add(lot)
    uow.session.flush()
    uow.session.add(
        StockBalance(
            store_id=centre.id,
            unit_id=ilr.id,
            lot_id=lot.id,
            doses=doses,
            updated_at=dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
        )
    )
    uow.session.flush()
    return Tree(state, district, centre, other_district, other_centre, ilr, product, lot)


def add_sensor(
    uow: UnitOfWork,
    unit_id: int,
    sensor_id: str = "S-1",
    interval_s: int = 60,
    since: dt.datetime = dt.datetime(2021, 1, 1, tzinfo=dt.UTC),
) -> None:
    """Register a sensor reading into a unit from `since`."""
    from logistics.models.readings import Sensor, SensorAssignment

    uow.session.add(
        Sensor(sensor_id=sensor_id, expected_interval_s=interval_s, registered_at=since)
    )
    uow.session.flush()
    uow.session.add(SensorAssignment(sensor_id=sensor_id, unit_id=unit_id, valid_from=since))
    uow.session.flush()


def add_ilr(uow: UnitOfWork, store_id: int, code: str, sensor_id: str) -> StorageUnit:
    """Another ILR (+2..+8 C) at a store, with a sensor of its own."""
    unit = StorageUnit(store_id=store_id, code=code, kind="ilr", min_temp_c=2.0, max_temp_c=8.0)
    uow.session.add(unit)
    uow.session.flush()
    add_sensor(uow, unit.id, sensor_id=sensor_id)
    return unit


def readings(
    start: dt.datetime,
    *segments: tuple[int, float],
    sensor_id: str = "S-1",
    step_min: int = 1,
    battery_pct: float | None = None,
    power: str | None = None,
) -> list:
    """SensorReadings every `step_min` minutes; each segment is (minutes, temp_c)."""
    from logistics.domain.readings import SensorReading

    out, t = [], start
    for minutes, temp in segments:
        for _ in range(minutes // step_min):
            out.append(
                SensorReading(
                    sensor_id=sensor_id,
                    ts=t,
                    temp_c=temp,
                    received_at=t,
                    battery_pct=battery_pct,
                    power=power,
                )
            )
            t += dt.timedelta(minutes=step_min)
    return out


def ingest(runtime, batch: list, now: dt.datetime) -> list:
    """Store a batch the way the ingestion does, then evaluate the touched units."""
    from logistics.services.excursions import evaluate_units
    from logistics.services.readings import record_readings

    with runtime.uow() as uow:
        touched = record_readings(uow, batch, now)
        uow.commit()
    evaluate_units(runtime, touched, now)
    return touched
