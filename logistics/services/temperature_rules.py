"""Temperature rules: a product's own rules or the defaults, a unit's override, the rules in force.

A unit without an override follows, per stage, the strictest rules of the products it holds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import cast

from sqlalchemy import select, update

from logistics.config import Settings
from logistics.db import UnitOfWork
from logistics.domain.errors import Invalid, NotFound
from logistics.domain.excursions import Level, Mode, Rule, RuleSet, Side, default_rules
from logistics.models.alerts import TemperatureRule, TemperatureRuleSet, UnitMonitorState
from logistics.models.catalog import Lot, Product, StorageUnit
from logistics.models.stock import StockBalance
from logistics.services.lookup import get_or_404

MINUTE = dt.timedelta(minutes=1)


# --- rules -------------------------------------------------------------------------------------


def _rule_set_from_row(row: TemperatureRuleSet) -> RuleSet:
    # The table's CHECK constraints (side_known, level_known, mode_known) keep these columns to
    # the domain's literals.
    rules = tuple(
        Rule(
            cast(Side, r.side),
            cast(Level, r.level),
            r.limit_c,
            cast(Mode, r.mode),
            r.duration_min * MINUTE,
            r.window_min * MINUTE if r.window_min else None,
        )
        for r in row.rules
    )
    return RuleSet(row.min_temp_c, row.max_temp_c, rules)


def _defaults(settings: Settings, min_c: float, max_c: float) -> RuleSet:
    return default_rules(
        min_c,
        max_c,
        freeze_limit_c=settings.alerts_freeze_limit_c,
        heat_warning_min=settings.alerts_heat_warning_min,
        heat_alarm_min=settings.alerts_heat_alarm_min,
        cold_warning_min=settings.alerts_cold_warning_min,
        cold_alarm_min=settings.alerts_cold_alarm_min,
    )


def product_rules(uow: UnitOfWork, settings: Settings, product: Product) -> RuleSet:
    """A product's rules: its own rule set, else the defaults on its storage range."""
    row = uow.session.scalars(
        select(TemperatureRuleSet).where(TemperatureRuleSet.product_id == product.id)
    ).first()
    return (
        _rule_set_from_row(row)
        if row
        else _defaults(settings, product.min_temp_c, product.max_temp_c)
    )


def _stricter(a: Rule, b: Rule) -> Rule:
    """The rule that fires first: the tighter limit, then the shorter duration."""
    tighter = (a.limit_c < b.limit_c) if a.side == "heat" else (a.limit_c > b.limit_c)
    if a.limit_c != b.limit_c:
        return a if tighter else b
    return a if a.duration <= b.duration else b


def _merge(sets: Sequence[RuleSet]) -> RuleSet:
    by_kind: dict[str, Rule] = {}
    for rule_set in sets:
        for rule in rule_set.rules:
            by_kind[rule.kind] = (
                _stricter(by_kind[rule.kind], rule) if rule.kind in by_kind else rule
            )
    return RuleSet(
        max(s.min_temp_c for s in sets), min(s.max_temp_c for s in sets), tuple(by_kind.values())
    )


def unit_rules(uow: UnitOfWork, settings: Settings, unit: StorageUnit) -> tuple[RuleSet, str]:
    """The rules in force for a unit and where they come from (unit override, products, defaults).

    Without an override, a unit holding several products follows, per stage, the strictest of
    their rules: the most sensitive vaccine in the unit decides.
    """
    row = uow.session.scalars(
        select(TemperatureRuleSet).where(TemperatureRuleSet.unit_id == unit.id)
    ).first()
    if row:
        return _rule_set_from_row(row), "unit"
    products = list(
        uow.session.scalars(
            select(Product)
            .join(Lot, Lot.product_id == Product.id)
            .join(StockBalance, StockBalance.lot_id == Lot.id)
            .where(StockBalance.unit_id == unit.id, StockBalance.doses > 0)
            .distinct()
        )
    )
    if products:
        return _merge([product_rules(uow, settings, p) for p in products]), "products"
    return _defaults(settings, unit.min_temp_c, unit.max_temp_c), "defaults"


@dataclasses.dataclass(frozen=True)
class RuleInput:
    """One stage as sent by a client."""

    side: str
    level: str
    limit_c: float
    mode: str
    duration_min: int
    window_min: int | None = None


def _check_rules(min_c: float, max_c: float, rules: Sequence[RuleInput]) -> None:
    if min_c >= max_c:
        raise Invalid("min_temp_c must be below max_temp_c", field="min_temp_c")
    seen = set()
    for rule in rules:
        if (rule.side, rule.level) in seen:
            raise Invalid(f"two {rule.side} {rule.level} rules", field="rules")
        seen.add((rule.side, rule.level))
        if rule.mode == "cumulative" and (rule.window_min or 0) < rule.duration_min:
            raise Invalid(
                "a cumulative rule needs a window at least as long as its duration", field="rules"
            )


def set_rules(
    uow: UnitOfWork,
    *,
    product_id: int | None = None,
    unit_id: int | None = None,
    min_temp_c: float,
    max_temp_c: float,
    rules: Sequence[RuleInput],
    actor: str,
    now: dt.datetime,
) -> TemperatureRuleSet:
    """Replace the rules of a product, or the override of a unit."""
    model = Product if product_id is not None else StorageUnit
    if uow.session.get(model, product_id if product_id is not None else unit_id) is None:
        raise NotFound(f"{model.__name__.lower()} does not exist")
    _check_rules(min_temp_c, max_temp_c, rules)
    column = TemperatureRuleSet.product_id if product_id is not None else TemperatureRuleSet.unit_id
    row = uow.session.scalars(
        select(TemperatureRuleSet).where(column == (product_id or unit_id))
    ).first()
    if row is None:
        row = TemperatureRuleSet(
            product_id=product_id,
            unit_id=unit_id,
            min_temp_c=min_temp_c,
            max_temp_c=max_temp_c,
            updated_at=now,
            updated_by=actor,
        )
        uow.session.add(row)
    row.min_temp_c, row.max_temp_c, row.updated_at, row.updated_by = (
        min_temp_c,
        max_temp_c,
        now,
        actor,
    )
    # The old stages go first, each deleted explicitly (and so audited), and are flushed before
    # the new ones: otherwise one flush would insert a new (side, level) beside its old twin.
    with uow.session.no_autoflush:
        for old in list(row.rules):
            row.rules.remove(old)
            uow.session.delete(old)
    uow.session.flush()
    row.rules = [TemperatureRule(**dataclasses.asdict(rule)) for rule in rules]
    # Limits learnt under the old rules no longer hold: the next readings get a full evaluation.
    uow.session.execute(update(UnitMonitorState).values(calm_checked_at=None))
    uow.session.flush()
    return row


def delete_unit_rules(uow: UnitOfWork, *, unit_id: int) -> None:
    """Drop a unit's override: it follows its products' rules again."""
    row = uow.session.scalars(
        select(TemperatureRuleSet).where(TemperatureRuleSet.unit_id == unit_id)
    ).first()
    if row is None:
        raise NotFound(f"unit {unit_id} has no rule override")
    uow.session.delete(row)
    uow.session.flush()


def rules_of_product(uow: UnitOfWork, settings: Settings, product_id: int) -> tuple[RuleSet, str]:
    """A product's rules and whether they are its own or the defaults."""
    product = get_or_404(uow, Product, product_id, f"product {product_id} does not exist")
    own = uow.session.scalars(
        select(TemperatureRuleSet.id).where(TemperatureRuleSet.product_id == product_id)
    ).first()
    return product_rules(uow, settings, product), "product" if own else "defaults"


def rules_of_unit(uow: UnitOfWork, settings: Settings, unit_id: int) -> tuple[RuleSet, str]:
    """The rules in force for a unit and their source."""
    return unit_rules(uow, settings, _unit(uow, unit_id))


def _unit(uow: UnitOfWork, unit_id: int) -> StorageUnit:
    unit = get_or_404(uow, StorageUnit, unit_id, f"storage unit {unit_id} does not exist")
    return unit
