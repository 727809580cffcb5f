"""Excursion detection: a pure function of readings (sorted by sensor time), rules and `now`.

Thresholds (shared/domain.md, "Temperature"): alarms follow the 30-day temperature recorder (30-DTR)
practice used for ILRs: heat alarm when at or above +8 C for 10 hours in a row, freeze alarm when
at or below -0.5 C for 60 minutes in a row. Warnings come earlier (Logistimo defaults: high warning
after 60 minutes, low warning after 30 minutes). Reaching the limit value counts as outside.

How time between two readings counts (our choice, and why):
- An interval between two consecutive readings is OUTSIDE for a rule only if both of its readings
  are outside that rule's limit and the interval is not longer than `max_gap`. It is IN RANGE only
  if both readings are in range and it is not longer than `max_gap`. We count only what the logger
  observed: a single reading outside (a door opened for a moment) adds no time, and a long silence
  adds none either.
- An interval longer than `max_gap` is a GAP: neither time in range nor time outside. A gap does not
  restart a consecutive clock (an unobserved night is not proof the ILR was cold again) and adds no
  time to it; a silent sensor is an alert of its own (sensor silence).
- A consecutive clock restarts at the first reading back in range; that reading ends the excursion.
- A cumulative rule holds while the time outside within the trailing window reaches its duration;
  its excursion starts at the first outside time counted in the window when it fired, and ends
  when the sum in the window falls below the duration again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

Side = Literal["heat", "cold"]
Level = Literal["warning", "alarm"]
Mode = Literal["consecutive", "cumulative"]
ZERO = dt.timedelta(0)


@dataclasses.dataclass(frozen=True)
class Rule:
    """One stage of one side, e.g. heat alarm: >= +8 C for 600 minutes consecutive."""

    side: Side
    level: Level
    limit_c: float
    mode: Mode
    duration: dt.timedelta
    window: dt.timedelta | None = None

    @property
    def kind(self) -> str:
        return f"{self.side}_{self.level}"

    def outside(self, temp_c: float) -> bool:
        """Reaching the limit counts as outside (shared/domain.md)."""
        return temp_c >= self.limit_c if self.side == "heat" else temp_c <= self.limit_c

    def snapshot(self) -> dict[str, Any]:
        return {
            "side": self.side,
            "level": self.level,
            "limit_c": self.limit_c,
            "mode": self.mode,
            "duration_min": self.duration / dt.timedelta(minutes=1),
            "window_min": self.window / dt.timedelta(minutes=1) if self.window else None,
        }


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """A range and up to one warning and one alarm per side."""

    min_temp_c: float
    max_temp_c: float
    rules: tuple[Rule, ...]

    def snapshot(self) -> dict[str, Any]:
        return {
            "min_temp_c": self.min_temp_c,
            "max_temp_c": self.max_temp_c,
            "rules": [rule.snapshot() for rule in self.rules],
        }

    def longest_span(self) -> dt.timedelta:
        """How far back a reading can still change what a rule decides."""
        return max((rule.window or rule.duration for rule in self.rules), default=ZERO)


@dataclasses.dataclass(frozen=True)
class Sample:
    """One reading: sensor time and temperature."""

    ts: dt.datetime
    temp_c: float


@dataclasses.dataclass(frozen=True)
class Finding:
    """An excursion found by a rule; `ended_at` is None while it lasts."""

    kind: str
    rule: Rule
    started_at: dt.datetime
    triggered_at: dt.datetime
    ended_at: dt.datetime | None
    peak_temp_c: float
    minutes_outside: float


def default_rules(
    min_temp_c: float,
    max_temp_c: float,
    *,
    freeze_limit_c: float,
    heat_warning_min: int,
    heat_alarm_min: int,
    cold_warning_min: int,
    cold_alarm_min: int,
) -> RuleSet:
    """The default rules for a range such as +2..+8 C, from the configured thresholds.

    The thresholds' values (30-DTR practice for alarms, Logistimo for warnings) are set in one
    place, config/defaults.toml [alerts]. A freezer's range lies below the freeze limit, so its
    cold alarm sits at its own minimum.
    """
    freeze = freeze_limit_c if min_temp_c > freeze_limit_c else min_temp_c
    minutes = dt.timedelta(minutes=1)
    return RuleSet(
        min_temp_c,
        max_temp_c,
        (
            Rule("heat", "warning", max_temp_c, "consecutive", heat_warning_min * minutes),
            Rule("heat", "alarm", max_temp_c, "consecutive", heat_alarm_min * minutes),
            Rule("cold", "warning", min_temp_c, "consecutive", cold_warning_min * minutes),
            Rule("cold", "alarm", freeze, "consecutive", cold_alarm_min * minutes),
        ),
    )


def detect(
    samples: Sequence[Sample], rules: RuleSet, now: dt.datetime, max_gap: dt.timedelta
) -> list[Finding]:
    """Every excursion the readings show for every rule, oldest first per rule.

    `samples` must be sorted by `ts` (ties: any order); readings after `now` are ignored.
    """
    usable = _dedupe([s for s in samples if s.ts <= now])
    findings: list[Finding] = []
    for rule in rules.rules:
        if rule.mode == "consecutive":
            findings.extend(_consecutive(usable, rule, max_gap))
        else:
            findings.extend(_cumulative(usable, rule, max_gap))
    return findings


def _dedupe(samples: list[Sample]) -> list[Sample]:
    """Keep one sample per timestamp (two sensors of a unit at one instant: keep the last)."""
    out: list[Sample] = []
    for sample in samples:
        if out and out[-1].ts == sample.ts:
            out[-1] = sample
        else:
            out.append(sample)
    return out


def _peak(rule: Rule, a: float, b: float) -> float:
    return max(a, b) if rule.side == "heat" else min(a, b)


@dataclasses.dataclass
class _Episode:
    started_at: dt.datetime
    peak: float
    outside: dt.timedelta = ZERO
    triggered_at: dt.datetime | None = None


def _consecutive(samples: list[Sample], rule: Rule, max_gap: dt.timedelta) -> list[Finding]:
    found: list[Finding] = []
    episode: _Episode | None = None
    prev: Sample | None = None
    for cur in samples:
        if not rule.outside(cur.temp_c):
            if episode and episode.triggered_at:
                found.append(_finding(rule, episode, cur.ts))
            episode = None
        elif episode is None:
            episode = _Episode(cur.ts, cur.temp_c)
        else:
            episode.peak = _peak(rule, episode.peak, cur.temp_c)
            if prev is not None and rule.outside(prev.temp_c) and cur.ts - prev.ts <= max_gap:
                _add_outside(episode, rule, prev.ts, cur.ts - prev.ts)
        prev = cur
    if episode and episode.triggered_at:
        found.append(_finding(rule, episode, None))
    return found


def _add_outside(episode: _Episode, rule: Rule, from_ts: dt.datetime, span: dt.timedelta) -> None:
    before = episode.outside
    episode.outside += span
    if episode.triggered_at is None and episode.outside >= rule.duration:
        episode.triggered_at = from_ts + (rule.duration - before)


def _finding(rule: Rule, episode: _Episode, ended_at: dt.datetime | None) -> Finding:
    assert episode.triggered_at is not None
    return Finding(
        rule.kind,
        rule,
        episode.started_at,
        episode.triggered_at,
        ended_at,
        episode.peak,
        round(episode.outside / dt.timedelta(minutes=1), 3),
    )


def outside_intervals(
    samples: Sequence[Sample], rule: Rule, max_gap: dt.timedelta
) -> list[tuple[dt.datetime, dt.datetime]]:
    """Intervals between consecutive readings that count as outside (both ends out, no gap)."""
    out: list[tuple[dt.datetime, dt.datetime]] = []
    for a, b in zip(samples, samples[1:], strict=False):
        if rule.outside(a.temp_c) and rule.outside(b.temp_c) and b.ts - a.ts <= max_gap:
            if out and out[-1][1] == a.ts:
                out[-1] = (out[-1][0], b.ts)
            else:
                out.append((a.ts, b.ts))
    return out


def _window_sum(
    intervals: list[tuple[dt.datetime, dt.datetime]], t: dt.datetime, window: dt.timedelta
) -> dt.timedelta:
    lo = t - window
    return sum((min(e, t) - max(s, lo) for s, e in intervals if e > lo and s < t), ZERO)


def _crossing(
    intervals: list[tuple[dt.datetime, dt.datetime]],
    a: dt.datetime,
    b: dt.datetime,
    window: dt.timedelta,
    duration: dt.timedelta,
) -> dt.datetime:
    """Where the (linear on [a, b]) window sum reaches `duration`, to the second."""
    sa, sb = _window_sum(intervals, a, window), _window_sum(intervals, b, window)
    if sb == sa:
        return b
    fraction = (duration - sa) / (sb - sa)
    return a + dt.timedelta(seconds=round((b - a).total_seconds() * fraction))


def _cumulative(samples: list[Sample], rule: Rule, max_gap: dt.timedelta) -> list[Finding]:
    assert rule.window is not None, "a cumulative rule needs a window"
    intervals = outside_intervals(samples, rule, max_gap)
    if not intervals:
        return []
    window, last_ts = rule.window, samples[-1].ts
    points = sorted(
        {p for s, e in intervals for p in (s, e, s + window, e + window) if p <= last_ts}
        | {last_ts}
    )
    found: list[Finding] = []
    holding_since: dt.datetime | None = None
    prev = points[0]
    for point in points:
        total = _window_sum(intervals, point, window)
        if holding_since is None and total >= rule.duration:
            holding_since = _crossing(intervals, prev, point, window, rule.duration)
        elif holding_since is not None and total < rule.duration:
            ended = _crossing_down(intervals, prev, point, window, rule.duration)
            found.append(_cumulative_finding(samples, intervals, rule, holding_since, ended))
            holding_since = None
        prev = point
    if holding_since is not None:
        found.append(_cumulative_finding(samples, intervals, rule, holding_since, None))
    return found


def _crossing_down(
    intervals: list[tuple[dt.datetime, dt.datetime]],
    a: dt.datetime,
    b: dt.datetime,
    window: dt.timedelta,
    duration: dt.timedelta,
) -> dt.datetime:
    sa, sb = _window_sum(intervals, a, window), _window_sum(intervals, b, window)
    fraction = (sa - duration) / (sa - sb) if sa != sb else 1
    moment = a + dt.timedelta(seconds=round((b - a).total_seconds() * fraction))
    return (
        moment
        if _window_sum(intervals, moment, window) < duration
        else moment + dt.timedelta(seconds=1)
    )


def _cumulative_finding(
    samples: list[Sample],
    intervals: list[tuple[dt.datetime, dt.datetime]],
    rule: Rule,
    triggered: dt.datetime,
    ended: dt.datetime | None,
) -> Finding:
    lo = triggered - (rule.window or ZERO)
    started = min(max(s, lo) for s, e in intervals if e > lo and s < triggered)
    hi = ended or samples[-1].ts
    inside = [s.temp_c for s in samples if started <= s.ts <= hi and rule.outside(s.temp_c)]
    peak = max(inside) if rule.side == "heat" else min(inside)
    minutes = sum(
        (min(e, hi) - max(s, started) for s, e in intervals if e > started and s < hi), ZERO
    )
    return Finding(
        rule.kind,
        rule,
        started,
        triggered,
        ended,
        peak,
        round(minutes / dt.timedelta(minutes=1), 3),
    )
