"""Monthly paperwork, free of any framework: the stock report's figures and the temperature log.

The monthly stock report is the form a store officer files for each vaccine (eVIN and the
UIP's "monthly vaccine stock report"): opening balance, receipts, issues, doses given, doses
wasted by reason, closing balance. Every figure is a sum of ledger entries; the closing balance
is the opening balance plus the month's signed entries, so the identity
opening + receipts - issues - consumption - wastage + adjustments = closing holds by construction.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo

from logistics.domain import stock as rules
from logistics.domain.errors import Invalid

MONTH_PATTERN = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(text: str) -> dt.date:
    """The first day of a month written as YYYY-MM."""
    match = MONTH_PATTERN.match(text or "")
    if not match or not 1 <= int(match[2]) <= 12 or not 2000 <= int(match[1]) <= 2099:
        raise Invalid("a month is written YYYY-MM, e.g. 2026-05", field="month")
    return dt.date(int(match[1]), int(match[2]), 1)


def next_month(first: dt.date) -> dt.date:
    """The first day of the month after `first`'s."""
    return dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)


def month_bounds(first: dt.date, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a month at the site, in UTC: a store's month is its local calendar month."""
    zone = ZoneInfo(timezone)

    def midnight(day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)

    return midnight(first), midnight(next_month(first))


def days_in_month(first: dt.date) -> int:
    """Calendar days of the month."""
    return calendar.monthrange(first.year, first.month)[1]


def elapsed_days(start: dt.datetime, end: dt.datetime, now: dt.datetime) -> float:
    """Days of [start, end) gone by at `now`: the whole month once it is over, at least one day.

    The consumption rate of the current month divides by the days so far, not by the month.
    """
    span = min(end, max(now, start)) - start
    return max(span.total_seconds() / 86400, 1.0)


@dataclasses.dataclass(frozen=True)
class Flow:
    """Signed doses of one kind of movement (a reversal counts under the kind it reverses)."""

    kind: str
    reason: str | None
    doses: int


@dataclasses.dataclass(frozen=True)
class Excursions:
    """Doses held after temperature alarms in the month, and what the reviews decided."""

    held_doses: int = 0
    released_doses: int = 0
    discarded_doses: int = 0


@dataclasses.dataclass(frozen=True)
class StockFigures:
    """One store's (or subtree's) month of one product, in doses."""

    opening_doses: int
    receipts_doses: int
    issues_doses: int
    consumption_doses: int
    wastage_doses: int
    wastage_by_reason: dict[str, int]
    adjustments_doses: int  # physical counts: what was found minus what the ledger said
    transfers_doses: int  # between units of one store: nets to 0 for the store
    closing_doses: int
    excursions: Excursions
    wastage_rate_pct: float | None
    open_vial_wastage_doses: int
    daily_consumption_doses: float | None
    days_of_stock: float | None


def wastage_rate_pct(wasted: int, given: int) -> float | None:
    """Wastage rate = doses wasted / (doses given + doses wasted) x 100 (WHO, "doses used").

    Open-vial discards are wastage like any other (WHO counts opened-vial wastage in the rate).
    None when no dose was used at all.
    """
    used = wasted + given
    if used <= 0:
        return None
    return round(100 * wasted / used, 2)


def _totals(flows: Iterable[Flow]) -> tuple[dict[str, int], dict[str, int]]:
    """Signed doses per movement kind, and doses wasted per reason (positive)."""
    sums: dict[str, int] = dict.fromkeys(
        (rules.RECEIPT, rules.ISSUE, rules.CONSUMPTION, rules.COUNT, rules.TRANSFER), 0
    )
    wastage: dict[str, int] = {}
    for flow in flows:
        if flow.kind == rules.WASTAGE:
            reason = flow.reason or "other"
            wastage[reason] = wastage.get(reason, 0) - flow.doses
        elif flow.kind in sums:
            sums[flow.kind] += flow.doses
        else:
            raise ValueError(f"a ledger entry of unknown kind {flow.kind!r}")
    return sums, {k: v for k, v in sorted(wastage.items()) if v}


def stock_figures(
    opening_doses: int, flows: Sequence[Flow], excursions: Excursions, period_days: float
) -> StockFigures:
    """The report's figures from the opening balance and the month's signed ledger flows.

    Debits (issues, consumption, wastage) are shown as positive doses; `period_days` is the
    length of the month so far, over which the consumption rate is averaged.
    """
    totals, wastage = _totals(flows)
    receipts, issues = totals[rules.RECEIPT], -totals[rules.ISSUE]
    consumption = -totals[rules.CONSUMPTION]
    adjustments, transfers = totals[rules.COUNT], totals[rules.TRANSFER]
    wasted = sum(wastage.values())
    closing = opening_doses + receipts - issues - consumption - wasted + adjustments + transfers
    rate = consumption / period_days if consumption > 0 else None
    return StockFigures(
        opening_doses=opening_doses,
        receipts_doses=receipts,
        issues_doses=issues,
        consumption_doses=consumption,
        wastage_doses=wasted,
        wastage_by_reason=wastage,
        adjustments_doses=adjustments,
        transfers_doses=transfers,
        closing_doses=closing,
        excursions=excursions,
        wastage_rate_pct=wastage_rate_pct(wasted, consumption),
        open_vial_wastage_doses=wastage.get("open_vial", 0),
        daily_consumption_doses=round(rate, 2) if rate else None,
        days_of_stock=rules.days_of_stock(closing, rate),
    )


def add_figures(figures: Sequence[StockFigures], period_days: float) -> StockFigures:
    """The figures of several stores added up (a subtree), rates worked out again on the sums."""
    wastage: dict[str, int] = {}
    for fig in figures:
        for reason, doses in fig.wastage_by_reason.items():
            wastage[reason] = wastage.get(reason, 0) + doses
    flows = [
        Flow(rules.RECEIPT, None, sum(f.receipts_doses for f in figures)),
        Flow(rules.ISSUE, None, -sum(f.issues_doses for f in figures)),
        Flow(rules.CONSUMPTION, None, -sum(f.consumption_doses for f in figures)),
        Flow(rules.COUNT, None, sum(f.adjustments_doses for f in figures)),
        Flow(rules.TRANSFER, None, sum(f.transfers_doses for f in figures)),
        *(Flow(rules.WASTAGE, reason, -doses) for reason, doses in wastage.items()),
    ]
    held = Excursions(
        sum(f.excursions.held_doses for f in figures),
        sum(f.excursions.released_doses for f in figures),
        sum(f.excursions.discarded_doses for f in figures),
    )
    return stock_figures(sum(f.opening_doses for f in figures), flows, held, period_days)


# --- temperature log ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DayLog:
    """One day of a unit's temperature log (the two readings a 30-DTR shows, and time outside)."""

    day: dt.date
    readings: int
    min_temp_c: float | None
    max_temp_c: float | None
    minutes_outside: float


@dataclasses.dataclass(frozen=True)
class OutsideSpan:
    """A time the unit was outside its range, as its readings show it."""

    side: str  # heat or cold
    start: dt.datetime
    end: dt.datetime
    peak_temp_c: float

    @property
    def minutes(self) -> float:
        """Length of the span in minutes."""
        return round((self.end - self.start).total_seconds() / 60, 1)


def side_of(temp_c: float, min_c: float, max_c: float) -> str | None:
    """heat, cold or None: reaching a limit counts as a breach (shared/domain.md)."""
    if temp_c >= max_c:
        return "heat"
    if temp_c <= min_c:
        return "cold"
    return None


def _stands_until(
    points: Sequence[tuple[dt.datetime, float]], i: int, end: dt.datetime, max_gap: dt.timedelta
) -> dt.datetime:
    """A reading stands for the time until the next one (or `end`), at most `max_gap`."""
    nxt = points[i + 1][0] if i + 1 < len(points) else end
    return min(nxt, end, points[i][0] + max_gap)


def outside_spans(
    points: Sequence[tuple[dt.datetime, float]],
    min_c: float,
    max_c: float,
    end: dt.datetime,
    max_gap: dt.timedelta,
) -> list[OutsideSpan]:
    """Spans outside the range, from readings in time order; a silence over max_gap ends one."""
    spans: list[OutsideSpan] = []
    for i, (ts, temp) in enumerate(points):
        side, until = side_of(temp, min_c, max_c), _stands_until(points, i, end, max_gap)
        if side is None or until <= ts:
            continue
        last = spans[-1] if spans else None
        if last and last.side == side and last.end == ts:
            peak = max(last.peak_temp_c, temp) if side == "heat" else min(last.peak_temp_c, temp)
            spans[-1] = OutsideSpan(side, last.start, until, peak)
        else:
            spans.append(OutsideSpan(side, ts, until, temp))
    return spans


def _minutes_in(span: OutsideSpan, start: dt.datetime, end: dt.datetime) -> float:
    overlap = min(span.end, end) - max(span.start, start)
    return max(overlap.total_seconds() / 60, 0.0)


def daily_log(
    points: Sequence[tuple[dt.datetime, float]],
    spans: Sequence[OutsideSpan],
    first: dt.date,
    timezone: str,
) -> list[DayLog]:
    """Min, max, readings and minutes outside for each site-local day of the month."""
    zone, days = ZoneInfo(timezone), []
    by_day: dict[dt.date, list[float]] = {}
    for ts, temp in points:
        by_day.setdefault(ts.astimezone(zone).date(), []).append(temp)
    for n in range(days_in_month(first)):
        day = first + dt.timedelta(days=n)
        start = dt.datetime.combine(day, dt.time(), zone).astimezone(dt.UTC)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), zone).astimezone(dt.UTC)
        temps = by_day.get(day, [])
        outside = sum(_minutes_in(span, start, end) for span in spans)
        days.append(
            DayLog(
                day,
                len(temps),
                min(temps) if temps else None,
                max(temps) if temps else None,
                round(outside, 1),
            )
        )
    return days
