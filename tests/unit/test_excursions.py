"""Excursion detection without a database: the cases of issue 4 point 12, and the gap rules."""

from __future__ import annotations

import datetime as dt

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from logistics.domain.excursions import Rule, RuleSet, Sample, default_rules, detect

T0 = dt.datetime(2021, 1, 9, 18, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
GAP = dt.timedelta(minutes=30)
# The shipped thresholds (config/defaults.toml [alerts]), written out by hand.
THRESHOLDS = dict(
    freeze_limit_c=-0.5,
    heat_warning_min=60,
    heat_alarm_min=600,
    cold_warning_min=30,
    cold_alarm_min=60,
)
ILR = default_rules(2.0, 8.0, **THRESHOLDS)
FAR = T0 + dt.timedelta(days=30)


def trace(*segments: tuple[int, float], step_min: int = 1, start: dt.datetime = T0) -> list[Sample]:
    """Readings every `step_min` minutes: each segment is (minutes, temp_c)."""
    out, t = [], start
    for minutes, temp in segments:
        for _ in range(minutes // step_min):
            out.append(Sample(t, temp))
            t += step_min * MIN
    return out


def kinds(samples, rules=ILR, now=FAR):
    return sorted(f.kind for f in detect(samples, rules, now, GAP))


def test_door_opened_five_minutes_at_12c_raises_nothing():
    assert kinds(trace((60, 4.5), (5, 12.0), (60, 4.5))) == []


def test_heat_9h59_is_a_warning_not_an_alarm():
    # 600 readings a minute apart at 9 C span 599 minutes outside: 9 h 59 min.
    samples = trace((30, 5.0), (600, 9.0), (30, 5.0))
    findings = detect(samples, ILR, FAR, GAP)
    assert [f.kind for f in findings] == ["heat_warning"]
    assert findings[0].minutes_outside == 599
    assert findings[0].triggered_at == T0 + 30 * MIN + 60 * MIN


def test_heat_10h_raises_the_alarm_when_ten_hours_are_reached():
    samples = trace((30, 5.0), (601, 9.0), (30, 5.0))
    alarm = next(f for f in detect(samples, ILR, FAR, GAP) if f.kind == "heat_alarm")
    assert alarm.triggered_at == T0 + 30 * MIN + 600 * MIN
    assert alarm.started_at == T0 + 30 * MIN
    assert alarm.ended_at == T0 + 631 * MIN
    assert alarm.minutes_outside == 600
    assert alarm.peak_temp_c == 9.0


def test_reaching_the_limit_counts_as_outside():
    assert "heat_alarm" in kinds(trace((601, 8.0)))
    assert kinds(trace((601, 7.99))) == []


def test_freezing_59_minutes_is_a_cold_warning_not_an_alarm():
    assert kinds(trace((10, 4.0), (60, -1.0), (10, 4.0))) == ["cold_warning"]


def test_freezing_60_minutes_raises_the_freeze_alarm():
    assert kinds(trace((10, 4.0), (61, -0.5), (10, 4.0))) == ["cold_alarm", "cold_warning"]


def test_a_return_to_range_restarts_the_consecutive_clock():
    samples = trace((400, 9.0), (2, 5.0), (400, 9.0))
    assert kinds(samples) == ["heat_warning", "heat_warning"]


# Readings arriving out of order: detect() takes them sorted by ts (the evaluation reads them
# ORDER BY ts), so shuffling them here and sorting them back proved nothing. The arrival-order
# tests live in tests/integration/test_out_of_order.py: shuffled batches through the ingestion's
# storage and the evaluation give the verdict of the same readings sent in order.


def test_a_late_in_range_reading_splits_an_alarm():
    samples = trace((601, 9.0))
    assert "heat_alarm" in kinds(samples)
    late = sorted(
        [*samples, Sample(T0 + 300 * MIN + dt.timedelta(seconds=30), 5.0)], key=lambda s: s.ts
    )
    assert "heat_alarm" not in kinds(late)


def test_sensor_silent_overnight_is_not_time_in_range_nor_outside():
    # Outside 5 h, silent 9 h, outside 5 h more: the gap does not restart the clock, adds nothing.
    evening = trace((301, 9.0))
    morning = trace((301, 9.0), start=T0 + 14 * 60 * MIN)
    findings = detect(evening + morning, ILR, FAR, GAP)
    alarm = next(f for f in findings if f.kind == "heat_alarm")
    assert alarm.started_at == T0
    assert alarm.minutes_outside == 600
    assert alarm.triggered_at == T0 + 14 * 60 * MIN + 300 * MIN


def test_sensor_silent_overnight_in_range_adds_no_time_outside():
    evening = trace((60, 9.0))  # 59 minutes outside, then silence
    morning = trace((2, 9.0), start=T0 + 10 * 60 * MIN)
    assert kinds(evening + morning) == [
        "heat_warning"
    ]  # 59 + 1 minutes, the gap counted as nothing
    assert kinds(evening) == []


def test_an_open_excursion_has_no_end():
    findings = detect(trace((30, 5.0), (90, 9.5)), ILR, FAR, GAP)
    assert [(f.kind, f.ended_at) for f in findings] == [("heat_warning", None)]


def test_readings_after_now_are_ignored():
    samples = trace((90, 9.5))
    assert kinds(samples, now=T0 + 30 * MIN) == []


def test_a_single_reading_outside_adds_no_time():
    assert kinds(trace((60, 5.0), (1, 30.0), (60, 5.0))) == []


def cumulative_rules(duration_min=60, window_min=240):
    rule = Rule("heat", "warning", 8.0, "cumulative", duration_min * MIN, window_min * MIN)
    return RuleSet(2.0, 8.0, (rule,))


def test_cumulative_sums_short_spells_within_the_window():
    # Four spells of 20 minutes outside (21 readings each) within 4 hours: 80 minutes >= 60.
    spell = ((21, 9.0), (29, 5.0))
    samples = trace(*(spell * 4), (300, 5.0))
    findings = detect(samples, cumulative_rules(), FAR, GAP)
    assert len(findings) == 1
    found = findings[0]
    assert found.started_at == T0
    assert found.triggered_at == T0 + 100 * MIN + 20 * MIN  # third spell ends the 60th minute
    assert found.ended_at is not None and found.ended_at > found.triggered_at
    assert found.peak_temp_c == 9.0


def test_cumulative_spells_spread_beyond_the_window_raise_nothing():
    spell = ((21, 9.0), (200, 5.0))
    assert detect(trace(*(spell * 4)), cumulative_rules(), FAR, GAP) == []


def test_snapshot_records_the_thresholds():
    snap = ILR.snapshot()
    assert {(r["side"], r["level"], r["limit_c"], r["duration_min"]) for r in snap["rules"]} == {
        ("heat", "warning", 8.0, 60),
        ("heat", "alarm", 8.0, 600),
        ("cold", "warning", 2.0, 30),
        ("cold", "alarm", -0.5, 60),
    }


def test_a_freezer_gets_its_cold_alarm_at_its_own_minimum():
    rules = default_rules(-25.0, -15.0, **THRESHOLDS)
    assert next(r for r in rules.rules if r.kind == "cold_alarm").limit_c == -25.0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 120), st.sampled_from([-1.0, 5.0, 9.0])), min_size=1, max_size=30
    )
)
def test_minutes_outside_never_exceed_the_observed_span(segments):
    samples = trace(*segments)
    span = (samples[-1].ts - samples[0].ts) / MIN
    for found in detect(samples, ILR, FAR, GAP):
        assert 0 <= found.minutes_outside <= span
        assert found.started_at <= found.triggered_at
        assert found.ended_at is None or found.triggered_at <= found.ended_at


WITH_CUMULATIVE = RuleSet(
    2.0,
    8.0,
    (*ILR.rules, Rule("heat", "warning", 8.0, "cumulative", 60 * MIN, 240 * MIN)),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 120), st.sampled_from([-1.0, 1.0, 5.0, 9.0])),
        min_size=1,
        max_size=20,
    ),
    st.data(),
    st.lists(st.floats(2.01, 7.99), min_size=1, max_size=40),
    st.sampled_from([1, 7, 31]),
)
def test_readings_inside_every_limit_after_a_reading_inside_change_no_finding(
    segments, data, new_temps, step_min
):
    # What the evaluation's fast path relies on (excursions._is_calm): with no excursion open,
    # readings inside every rule's limit placed right after a reading inside them (late, between
    # two stored readings, or after the whole series, after any pause) leave every finding as it
    # was, consecutive and cumulative alike.
    samples = trace(*segments, step_min=step_min)
    before = detect(samples, WITH_CUMULATIVE, FAR, GAP)
    assume(samples and all(f.ended_at is not None for f in before))
    inside = [i for i, s in enumerate(samples) if 2.0 < s.temp_c < 8.0]
    assume(inside)
    after = data.draw(st.sampled_from(inside), label="after the reading at")
    room = (
        samples[after + 1].ts - samples[after].ts
        if after + 1 < len(samples)
        else data.draw(st.integers(len(new_temps) + 1, 200), label="pause") * MIN
    )
    step = room / (len(new_temps) + 1)
    new = [Sample(samples[after].ts + (n + 1) * step, t) for n, t in enumerate(new_temps)]
    assume(all(a.ts < b.ts for a, b in zip(new, new[1:], strict=False)))
    merged = samples[: after + 1] + new + samples[after + 1 :]
    assert detect(merged, WITH_CUMULATIVE, FAR, GAP) == before
