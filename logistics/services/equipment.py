"""Use cases of the equipment register: what each storage unit is, whether it works, its repair
history, where a broken unit's doses can go, and functional units by district (issue 19.4).

Setting a unit "not working" raises a unit_not_working alarm through the alert service (open,
acknowledge, resolve as any alert) naming the doses that must move and the nearest unit with room
(logistics/domain/equipment.py defines both); setting it back resolves the alarm.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import func, select

from logistics.db import UnitOfWork, is_postgres
from logistics.domain import equipment as rules
from logistics.domain.errors import Invalid
from logistics.models.catalog import StorageUnit, Store
from logistics.models.paperwork import UnitStatusChange
from logistics.models.stock import StockBalance
from logistics.services import catalog
from logistics.services.alerts import clear_alert, raise_alert
from logistics.services.lookup import get_or_404, in_subtree

ALARM_KIND = "unit_not_working"
REGISTER_FIELDS = ("make", "model", "pqs_code", "year_installed", "energy_source", "capacity_doses")
MAX_CANDIDATES = 5


def update_register(uow: UnitOfWork, *, unit_id: int, fields: dict[str, Any]) -> StorageUnit:
    """Record what the unit is: make, model, WHO PQS code, year installed, energy, capacity."""
    unit = catalog.get_unit(uow, unit_id)
    unknown = set(fields) - set(REGISTER_FIELDS)
    if unknown:
        raise Invalid(f"not a field of the register: {sorted(unknown)}", field=sorted(unknown)[0])
    for name, value in fields.items():
        setattr(unit, name, value)
    uow.session.flush()
    return unit


@dataclasses.dataclass(frozen=True)
class Evacuation:
    """The doses a broken unit holds and the nearest units with room for all of them."""

    lots: list[dict[str, Any]]
    doses: int
    destinations: list[dict[str, Any]]


@dataclasses.dataclass(frozen=True)
class StatusChange:
    """A unit's new working status, the history row, and (when not working) its evacuation."""

    unit: StorageUnit
    change: UnitStatusChange
    evacuation: Evacuation | None


def _lots_in(uow: UnitOfWork, unit_id: int) -> list[dict[str, Any]]:
    query = select(StockBalance).where(StockBalance.unit_id == unit_id, StockBalance.doses > 0)
    return [
        {
            "lot_id": b.lot_id,
            "lot_number": b.lot.lot_number,
            "product_id": b.lot.product_id,
            "product_code": b.lot.product.code,
            "doses": b.doses,
            "range": (b.lot.product.min_temp_c, b.lot.product.max_temp_c),
        }
        for b in uow.session.scalars(query.order_by(StockBalance.lot_id))
    ]


def _spaces(uow: UnitOfWork) -> list[rules.UnitSpace]:
    held = (
        select(StockBalance.unit_id, func.sum(StockBalance.doses).label("doses"))
        .group_by(StockBalance.unit_id)
        .subquery()
    )
    query = (
        select(StorageUnit, Store.path, func.coalesce(held.c.doses, 0))
        .join(Store, Store.id == StorageUnit.store_id)
        .outerjoin(held, held.c.unit_id == StorageUnit.id)
        .where(StorageUnit.active.is_(True), StorageUnit.capacity_doses.is_not(None))
    )
    return [
        rules.UnitSpace(
            u.id,
            u.store_id,
            path,
            u.working_status,
            u.active,
            u.min_temp_c,
            u.max_temp_c,
            u.capacity_doses,
            int(doses),
        )
        for u, path, doses in uow.session.execute(query).tuples().all()
    ]


def _destination(uow: UnitOfWork, space: rules.UnitSpace, origin: str) -> dict[str, Any]:
    unit = catalog.get_unit(uow, space.unit_id)
    return {
        "unit_id": unit.id,
        "unit_code": unit.code,
        "store_id": unit.store_id,
        "store_code": unit.store.code,
        "store_name": unit.store.name,
        "free_doses": space.free_doses,
        "steps": rules.tree_distance(origin, space.store_path),
    }


def evacuation_of(uow: UnitOfWork, unit: StorageUnit) -> Evacuation:
    """What must leave the unit and the nearest units that can take all of it."""
    lots = _lots_in(uow, unit.id)
    doses = sum(lot["doses"] for lot in lots)
    ranges = [lot.pop("range") for lot in lots]
    if not doses:
        return Evacuation(lots, 0, [])
    origin = unit.store.path
    found = rules.nearest_with_room(origin, _spaces(uow), doses, ranges, exclude_unit=unit.id)
    return Evacuation(lots, doses, [_destination(uow, s, origin) for s in found[:MAX_CANDIDATES]])


def _alarm_message(unit: StorageUnit, evacuation: Evacuation) -> str:
    where = f"unit {unit.code} at {unit.store.code} is not working"
    if not evacuation.doses:
        return f"{where}; it holds no doses"
    if not evacuation.destinations:
        return f"{where}: {evacuation.doses} doses must move; no unit with room is known"
    to = evacuation.destinations[0]
    return (
        f"{where}: {evacuation.doses} doses must move; nearest with room: unit "
        f"{to['unit_code']} at {to['store_code']} ({to['free_doses']} doses free)"
    )


def _lock_unit(uow: UnitOfWork, unit_id: int) -> StorageUnit:
    catalog.get_unit(uow, unit_id)
    query = select(StorageUnit).where(StorageUnit.id == unit_id)
    if is_postgres(uow.session):
        query = query.with_for_update(of=StorageUnit)
    return uow.session.scalars(query.execution_options(populate_existing=True)).one()


def set_working_status(
    uow: UnitOfWork, *, unit_id: int, status: str, note: str | None, actor: str, now: dt.datetime
) -> StatusChange:
    """Record a unit's working status (kept in its repair history); not working raises the alarm."""
    if status not in rules.WORKING_STATUSES:
        raise Invalid(f"status must be one of {', '.join(rules.WORKING_STATUSES)}", field="status")
    unit = _lock_unit(uow, unit_id)
    change = UnitStatusChange(
        unit_id=unit.id,
        from_status=unit.working_status,
        to_status=status,
        note=note,
        actor=actor,
        at=now,
    )
    unit.working_status = status
    uow.session.add(change)
    evacuation = None
    if status == rules.NOT_WORKING:
        evacuation = evacuation_of(uow, unit)
        raise_alert(
            uow,
            kind=ALARM_KIND,
            subject_type="unit",
            subject_id=unit.id,
            store_id=unit.store_id,
            severity="alarm",
            message=_alarm_message(unit, evacuation),
            details={
                "unit_id": unit.id,
                "doses": evacuation.doses,
                "lots": evacuation.lots,
                "destinations": evacuation.destinations,
            },
            now=now,
        )
    else:
        clear_alert(
            uow,
            kind=ALARM_KIND,
            subject_type="unit",
            subject_id=unit.id,
            now=now,
            comment=f"unit {unit.code} is {status.replace('_', ' ')}",
        )
    uow.session.flush()
    return StatusChange(unit, change, evacuation)


def repair_history(uow: UnitOfWork, unit_id: int) -> list[UnitStatusChange]:
    """Every change of the unit's working status, oldest first."""
    catalog.get_unit(uow, unit_id)
    query = select(UnitStatusChange).where(UnitStatusChange.unit_id == unit_id)
    return list(uow.session.scalars(query.order_by(UnitStatusChange.id)))


@dataclasses.dataclass(frozen=True)
class DistrictCount:
    """Functional storage units of one district's subtree (the district store and below)."""

    district: Store
    counts: rules.FunctionalCount


def functional_by_district(
    uow: UnitOfWork, *, within_id: int | None = None, level_code: str = "district"
) -> list[DistrictCount]:
    """Active units by working status for every district (of a subtree, if given)."""
    query = select(Store).where(Store.level_code == level_code).order_by(Store.path)
    if within_id is not None:
        within = catalog.get_store(uow, within_id, "within_id")
        query = query.where(in_subtree(Store.path, within.path))
    districts = list(uow.session.scalars(query))
    units = list(
        uow.session.execute(
            select(Store.path, StorageUnit.working_status)
            .join(Store, Store.id == StorageUnit.store_id)
            .where(StorageUnit.active.is_(True))
        )
    )
    return [
        DistrictCount(
            d, rules.count_statuses(status for path, status in units if path.startswith(d.path))
        )
        for d in districts
    ]


def get_unit_register(uow: UnitOfWork, unit_id: int) -> StorageUnit:
    """A unit with its register fields."""
    unit = get_or_404(
        uow, StorageUnit, unit_id, f"storage unit {unit_id} does not exist", field="unit_id"
    )
    return unit
