"""Realistic ILR temperature traces for the simulator; pure functions of (plan, time), no I/O.

An ILR holds +2 to +8 C (shared/domain.md); a healthy one cycles around 3-6 C with short spikes when
the door is opened. Faults modelled: a power cut (the ice lining slows warming, so it passes +8 C
only after hours), a thermostat fault that freezes the unit, a logger that goes silent, and a
logger that loses its link and sends its backlog as one batch when it reconnects.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math

NORMAL, POWER_CUT, FREEZE, SILENT, BACKLOG = "normal", "power_cut", "freeze", "silent", "backlog"
FAULTS = (POWER_CUT, FREEZE, SILENT, BACKLOG)

AMBIENT_C = 32.0  # a summer store room
# An ILR's ice lining keeps it cold for hours without power: warming time constant of about a day
# gives about +8.5 C after 4 hours from +5 C (WHO PQS E003 ILRs hold >= 8-16 h below +10 C).
ILR_WARMING_TAU_H = 24.0
FREEZE_TARGET_C, FREEZE_TAU_H = -9.0, 1.5
# A handler opens the door a few times a day; the air inside warms by a few degrees, then recovers.
DOOR_OPENINGS_PER_H, DOOR_SPIKE_C, DOOR_TAU_MIN, DOOR_MAX_C = 0.4, 2.5, 6.0, 3.5


@dataclasses.dataclass(frozen=True)
class SensorPlan:
    """One simulated logger: what happens to it and when, relative to the simulation start."""

    sensor_id: str
    kind: str = NORMAL
    interval_s: int = 60
    fault_after_h: float = 1.0
    fault_for_h: float = 6.0


@dataclasses.dataclass(frozen=True)
class Sample:
    """What the logger measured at ts."""

    ts: dt.datetime
    temp_c: float
    battery_pct: float
    power: str


def plans_for(prefix: str, count: int, interval_s: int = 60) -> list[SensorPlan]:
    """Plans of `count` sensors: the first ones carry one fault each, the rest are healthy."""
    kinds = [FAULTS[i] if i < len(FAULTS) else NORMAL for i in range(count)]
    return [SensorPlan(f"{prefix}{i + 1:03d}", kind, interval_s) for i, kind in enumerate(kinds)]


def _unit_random(*parts: object) -> float:
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _fault_window(plan: SensorPlan, start: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    begin = start + dt.timedelta(hours=plan.fault_after_h)
    return begin, begin + dt.timedelta(hours=plan.fault_for_h)


def healthy_temp_c(plan: SensorPlan, ts: dt.datetime) -> float:
    """Thermostat cycle between about 3.5 and 5.5 C, noise, and decaying door-opening spikes."""
    t = ts.timestamp()
    cycle = 4.5 + 1.0 * math.sin(2 * math.pi * t / 2400 + _unit_random(plan.sensor_id) * 6.28)
    noise = (_unit_random(plan.sensor_id, int(t)) - 0.5) * 0.2
    return cycle + noise + _door_spikes(plan, t)


def _door_spikes(plan: SensorPlan, t: float) -> float:
    total, step = 0.0, plan.interval_s
    probability = DOOR_OPENINGS_PER_H * step / 3600
    first = int(t // step)
    for k in range(first, first - int(5 * DOOR_TAU_MIN * 60 / step) - 1, -1):
        if _unit_random(plan.sensor_id, "door", k) < probability:
            age_min = (t - k * step) / 60
            total += DOOR_SPIKE_C * math.exp(-age_min / DOOR_TAU_MIN)
    return min(total, DOOR_MAX_C)


def sample(plan: SensorPlan, start: dt.datetime, ts: dt.datetime) -> Sample | None:
    """The reading of this plan at ts, or None when the logger sends nothing (silent)."""
    begin, end = _fault_window(plan, start)
    temp, power = healthy_temp_c(plan, ts), "mains"
    hours_in = (ts - begin).total_seconds() / 3600
    if plan.kind == SILENT and ts >= begin:
        return None
    if plan.kind == POWER_CUT and begin <= ts < end:
        temp = temp + (AMBIENT_C - temp) * (1 - math.exp(-hours_in / ILR_WARMING_TAU_H))
        power = "battery"
    elif plan.kind == FREEZE and ts >= begin:
        temp = FREEZE_TARGET_C + (temp - FREEZE_TARGET_C) * math.exp(-hours_in / FREEZE_TAU_H)
    battery = 100.0 - (
        max(0.0, min(hours_in, plan.fault_for_h)) * 8 if plan.kind == POWER_CUT else 0.0
    )
    return Sample(ts, round(temp, 2), round(max(battery, 5.0), 1), power)


def steps(
    plan: SensorPlan, start: dt.datetime, after: dt.datetime, until: dt.datetime
) -> list[dt.datetime]:
    """The reading times of a plan in (after, until], aligned on start."""
    first = max(0, math.floor((after - start).total_seconds() / plan.interval_s) + 1)
    last = math.floor((until - start).total_seconds() / plan.interval_s)
    return [start + dt.timedelta(seconds=k * plan.interval_s) for k in range(first, last + 1)]


def messages(
    plan: SensorPlan,
    start: dt.datetime,
    after: dt.datetime,
    until: dt.datetime,
    prefix: str = "coldchain/sensors",
) -> list[tuple[str, bytes, bool]]:
    """(topic, payload, retain) the logger publishes in (after, until], in order.

    A BACKLOG logger is offline during its fault window: it publishes "offline" (as its last will
    would), then on reconnecting "online" and one batch holding every reading it kept meanwhile.
    """
    base = f"{prefix}/{plan.sensor_id}"
    out: list[tuple[str, bytes, bool]] = []
    begin, end = _fault_window(plan, start)
    for ts in steps(plan, start, after, until):
        reading = sample(plan, start, ts)
        if plan.kind == BACKLOG and begin <= ts < end:
            if ts == _first_step_at_or_after(plan, start, begin):
                out.append((f"{base}/status", b"offline", True))
            continue
        if plan.kind == BACKLOG and ts == _first_step_at_or_after(plan, start, end):
            out.append((f"{base}/status", b"online", True))
            held = [
                sample(plan, start, t)
                for t in steps(plan, start, begin - dt.timedelta(microseconds=1), ts)
            ]
            batch = [_body(s) for s in held if s is not None and s.ts < end]
            if batch:
                out.append((f"{base}/readings", json.dumps({"readings": batch}).encode(), False))
        if reading is not None:
            out.append((f"{base}/readings", json.dumps(_body(reading)).encode(), False))
    return out


def _first_step_at_or_after(
    plan: SensorPlan, start: dt.datetime, moment: dt.datetime
) -> dt.datetime:
    k = math.ceil((moment - start).total_seconds() / plan.interval_s)
    return start + dt.timedelta(seconds=k * plan.interval_s)


def _body(reading: Sample) -> dict[str, object]:
    return {
        "ts": reading.ts.isoformat(),
        "temp_c": reading.temp_c,
        "battery_pct": reading.battery_pct,
        "power": reading.power,
    }
