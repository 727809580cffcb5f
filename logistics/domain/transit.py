"""Vaccines in transit (issue 18): carriers, transport rules, what a trip's alarm holds, legs.

Pure rules: no Flask, SQLAlchemy or paho; `now` and times come in as arguments.

Transport rules. shared/domain.md gives the alarm limits of a 30-day temperature recorder (heat at
or above +8 C, freeze at or below -0.5 C) and its durations for an ILR (10 h heat, 60 min freeze).
A trip lasts hours, not weeks: a 10-hour heat clock would never fire on a 6-hour trip, so carriers
keep the limits and take durations scaled to a trip. The durations below are our defaults, not a
standard's: domain.md asks for configurable numbers where a number is uncertain, so they are read
from config/defaults.toml [transit] and stored per carrier as its rule override (data, like the
ILR rules: an officer can change them through the rules API).
- heat warning: at/above the range maximum, 30 min in a row;
- heat alarm: at/above the range maximum, 120 min summed over a 12 h window (the box is opened at
  every stop of the route, and the warm minutes add up);
- cold warning: at/below the range minimum, 15 min in a row;
- freeze alarm: at/below -0.5 C (domain.md), 20 min in a row (a freeze-sensitive vial that froze
  is discarded, domain.md; a conditioned ice pack freezes a carrier fast).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from logistics.domain.excursions import Rule, RuleSet
from logistics.domain.mkt import mean_kinetic_temperature

CARRIER_KINDS = ("cold_box", "vaccine_carrier")
MINUTE = dt.timedelta(minutes=1)


class TransitRuleError(ValueError):
    """The carriers named for a shipment do not account for its doses."""


@dataclasses.dataclass(frozen=True)
class TransportDefaults:
    """Durations of the transport rules, in minutes (config [transit])."""

    freeze_limit_c: float = -0.5
    heat_warning_min: int = 30
    heat_alarm_min: int = 120
    heat_alarm_window_min: int = 720
    cold_warning_min: int = 15
    cold_alarm_min: int = 20


def is_carrier(kind: str) -> bool:
    """Whether a storage unit of this kind travels (cold box, vaccine carrier)."""
    return kind in CARRIER_KINDS


def transport_rules(min_temp_c: float, max_temp_c: float, d: TransportDefaults) -> RuleSet:
    """The rules of a carrier with this safe range: 30-DTR limits, durations of a trip."""
    freeze = d.freeze_limit_c if min_temp_c > d.freeze_limit_c else min_temp_c
    window = d.heat_alarm_window_min * MINUTE
    return RuleSet(
        min_temp_c,
        max_temp_c,
        (
            Rule("heat", "warning", max_temp_c, "consecutive", d.heat_warning_min * MINUTE),
            Rule("heat", "alarm", max_temp_c, "cumulative", d.heat_alarm_min * MINUTE, window),
            Rule("cold", "warning", min_temp_c, "consecutive", d.cold_warning_min * MINUTE),
            Rule("cold", "alarm", freeze, "consecutive", d.cold_alarm_min * MINUTE),
        ),
    )


@dataclasses.dataclass(frozen=True)
class CarrierLoad:
    """Doses of one lot packed in one carrier."""

    carrier_id: int
    lot_id: int
    doses: int


def plan_loads(
    lines: Mapping[int, int], carriers: Sequence[tuple[int, Mapping[int, int] | None]]
) -> list[CarrierLoad]:
    """Which doses travel in which carrier.

    `lines`: doses per lot of the shipment. `carriers`: (carrier id, doses per lot or None). One
    carrier with no split carries everything; several carriers must each say what they carry, and
    together carry exactly the shipment (a dose in no box, or in two, cannot be traced).
    """
    if not carriers:
        raise TransitRuleError("name at least one carrier")
    ids = [carrier_id for carrier_id, _ in carriers]
    if len(set(ids)) != len(ids):
        raise TransitRuleError("a carrier is named twice")
    if len(carriers) == 1 and not carriers[0][1]:
        return [CarrierLoad(ids[0], lot, doses) for lot, doses in sorted(lines.items())]
    loads = [
        CarrierLoad(carrier_id, lot, doses)
        for carrier_id, split in carriers
        for lot, doses in sorted((split or {}).items())
        if doses
    ]
    if any(not split for _, split in carriers):
        raise TransitRuleError("with several carriers, say which lots and doses each carries")
    packed: dict[int, int] = {}
    for load in loads:
        if load.doses < 0:
            raise TransitRuleError("doses in a carrier cannot be negative")
        packed[load.lot_id] = packed.get(load.lot_id, 0) + load.doses
    if packed != {lot: doses for lot, doses in lines.items() if doses}:
        raise TransitRuleError(
            f"the carriers hold {dict(sorted(packed.items()))} doses per lot; "
            f"the shipment has {dict(sorted(lines.items()))}"
        )
    return loads


def alarm_counts_for_trip(
    started_at: dt.datetime,
    triggered_at: dt.datetime,
    ended_at: dt.datetime | None,
    trip: tuple[dt.datetime, dt.datetime | None],
    outside_during_trip: bool,
) -> bool:
    """Whether an alarm of the carrier held the doses of this trip (issued, received or None).

    An alarm that fired during the trip holds them. One firing after the receipt concerns the
    empty box, one over before the issue an earlier trip. One that fired before the issue and was
    still on holds them only if the logger read beyond its limit during the trip (a box packed
    still frozen or warm): a cumulative alarm merely lingering in its window, over a trip whose
    readings were in range, never touched these doses.
    """
    trip_start, trip_end = trip
    if trip_end is not None and triggered_at > trip_end:
        return False
    if triggered_at >= trip_start:
        return True
    still_on = ended_at is None or ended_at > trip_start
    return still_on and outside_during_trip


def overlaps_trip(
    started_at: dt.datetime,
    ended_at: dt.datetime | None,
    trip_start: dt.datetime,
    trip_end: dt.datetime | None,
) -> bool:
    """Whether an excursion of the carrier lasted some of the trip (any stage: warning too)."""
    before_end = trip_end is None or started_at < trip_end
    return before_end and (ended_at is None or ended_at > trip_start)


@dataclasses.dataclass(frozen=True)
class LateHold:
    """What an alarm known only after the receipt can still hold, and what was used meanwhile."""

    received: int
    held: int
    gone: int


def late_hold(received: int, still_there: int) -> LateHold:
    """Hold what remains of the received doses; report the rest as used, never reverse it.

    Doses given, issued on or discarded since the receipt are past holding (issue 18, point 3):
    the review and the alert report them so an officer can follow up.
    """
    held = max(0, min(received, still_there))
    return LateHold(received, held, received - held)


def minutes_outside(
    temps_c: Sequence[float],
    weights_s: Sequence[float],
    min_temp_c: float,
    max_temp_c: float,
) -> float:
    """Minutes the readings stand for at or beyond the range's limits (reaching counts)."""
    outside = sum(
        w for t, w in zip(temps_c, weights_s, strict=True) if t <= min_temp_c or t >= max_temp_c
    )
    return round(outside / 60, 1)


@dataclasses.dataclass(frozen=True)
class Leg:
    """A stay in a unit or a trip in a carrier, with its figures."""

    kind: str  # stay / trip
    start: dt.datetime
    end: dt.datetime
    mkt_c: float | None
    covered_min: float
    minutes_outside: float


def journey_totals(legs: Sequence[Leg]) -> dict[str, float | None]:
    """MKT and minutes outside for the whole journey; the legs' time without readings as a gap.

    The journey's MKT combines the legs' MKTs weighted by the time their readings cover (exact:
    each leg's MKT stands for that leg's mean Arrhenius factor).
    """
    measured = [
        (leg.mkt_c, leg.covered_min)
        for leg in legs
        if leg.mkt_c is not None and leg.covered_min > 0
    ]
    mkt = mean_kinetic_temperature([m for m, _ in measured], [w for _, w in measured])
    total_min = sum((leg.end - leg.start).total_seconds() / 60 for leg in legs)
    covered = sum(leg.covered_min for leg in legs)
    return {
        "mkt_c": None if mkt is None else round(mkt, 2),
        "minutes_outside": round(sum(leg.minutes_outside for leg in legs), 1),
        "covered_min": round(covered, 1),
        "unmonitored_min": round(max(0.0, total_min - covered), 1),
    }


def gaps(spans: Sequence[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Times between the first start and the last end that no span covers."""
    out: list[tuple[dt.datetime, dt.datetime]] = []
    reach: dt.datetime | None = None
    for start, end in sorted(spans):
        if reach is not None and start > reach:
            out.append((reach, start))
        reach = end if reach is None else max(reach, end)
    return out
