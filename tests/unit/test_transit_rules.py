"""Transport rules and trip bookkeeping without a database (issue 18)."""

from __future__ import annotations

import datetime as dt

import pytest

from logistics.domain.excursions import Sample, default_rules, detect
from logistics.domain.transit import (
    Leg,
    TransitRuleError,
    TransportDefaults,
    alarm_counts_for_trip,
    gaps,
    journey_totals,
    late_hold,
    minutes_outside,
    overlaps_trip,
    plan_loads,
    transport_rules,
)

T0 = dt.datetime(2021, 1, 9, 6, 0, tzinfo=dt.UTC)
MIN = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
GAP = dt.timedelta(minutes=30)
FAR = T0 + dt.timedelta(days=3)
CARRIER = transport_rules(2.0, 8.0, TransportDefaults())
# The ILR defaults of config/defaults.toml (30-DTR alarms, Logistimo warnings), written out.
ILR = default_rules(
    2.0,
    8.0,
    freeze_limit_c=-0.5,
    heat_warning_min=60,
    heat_alarm_min=600,
    cold_warning_min=30,
    cold_alarm_min=60,
)


def trip(*segments: tuple[int, float]) -> list[Sample]:
    """One reading a minute; each segment is (readings, temp_c)."""
    out, t = [], T0
    for count, temp in segments:
        for _ in range(count):
            out.append(Sample(t, temp))
            t += MIN
    return out


def kinds(samples, rules):
    return sorted(f.kind for f in detect(samples, rules, FAR, GAP))


# --- transport rules ---------------------------------------------------------------------------


def test_a_25_minute_freeze_on_the_road_is_a_freeze_alarm_for_a_carrier_not_for_an_ilr():
    # 26 readings at -1 C span 25 minutes at or below -0.5 C.
    samples = trip((30, 5.0), (26, -1.0), (30, 5.0))
    assert "cold_alarm" in kinds(samples, CARRIER)
    assert "cold_alarm" not in kinds(samples, ILR)


def test_a_16_minute_chill_above_the_freeze_limit_is_a_cold_warning_only():
    samples = trip((30, 5.0), (17, 1.0), (30, 5.0))
    assert kinds(samples, CARRIER) == ["cold_warning"]


def test_three_warm_stops_add_up_to_a_heat_alarm_on_a_trip_but_not_in_an_ilr():
    # Three stops of 45 readings at +10 C (44 min each, 132 min in all), 30 min cool between.
    samples = trip((30, 5.0), (45, 10.0), (30, 5.0), (45, 10.0), (30, 5.0), (45, 10.0), (30, 5.0))
    assert "heat_alarm" in kinds(samples, CARRIER)
    assert "heat_alarm" not in kinds(samples, ILR)


def test_ninety_warm_minutes_are_a_heat_warning_but_not_yet_an_alarm():
    samples = trip((30, 5.0), (91, 10.0), (30, 5.0))
    assert kinds(samples, CARRIER) == ["heat_warning"]


def test_reaching_plus_8_counts_as_outside():
    samples = trip((30, 5.0), (31, 8.0), (30, 5.0))
    assert kinds(samples, CARRIER) == ["heat_warning"]


def test_the_transport_durations_are_data():
    rules = transport_rules(2.0, 8.0, TransportDefaults(cold_alarm_min=5))
    samples = trip((30, 5.0), (7, -1.0), (30, 5.0))
    assert "cold_alarm" in kinds(samples, rules)
    assert "cold_alarm" not in kinds(samples, CARRIER)


def test_a_frozen_carrier_keeps_its_own_minimum_as_freeze_limit():
    rules = transport_rules(-25.0, -15.0, TransportDefaults())
    cold = {r.level: r.limit_c for r in rules.rules if r.side == "cold"}
    assert cold == {"warning": -25.0, "alarm": -25.0}


# --- loads ---------------------------------------------------------------------------------------


def test_one_carrier_without_a_split_carries_the_whole_shipment():
    loads = plan_loads({7: 300, 8: 50}, [(1, None)])
    assert [(x.carrier_id, x.lot_id, x.doses) for x in loads] == [(1, 7, 300), (1, 8, 50)]


def test_two_carriers_say_what_each_carries():
    loads = plan_loads({7: 300}, [(1, {7: 200}), (2, {7: 100})])
    assert [(x.carrier_id, x.doses) for x in loads] == [(1, 200), (2, 100)]


@pytest.mark.parametrize(
    ("carriers", "words"),
    [
        ([], "at least one"),
        ([(1, None), (1, None)], "twice"),
        ([(1, {7: 200}), (2, None)], "say which"),
        ([(1, {7: 200}), (2, {7: 50})], "the shipment has"),
        ([(1, {7: 300, 9: 10})], "the shipment has"),
    ],
)
def test_loads_that_do_not_account_for_every_dose_are_refused(carriers, words):
    with pytest.raises(TransitRuleError, match=words):
        plan_loads({7: 300}, carriers)


# --- which alarms concern a trip ------------------------------------------------------------


TRIP = (T0, T0 + 4 * HOUR)


def test_an_alarm_during_the_trip_holds_its_doses():
    assert alarm_counts_for_trip(T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR, TRIP, True)


def test_an_alarm_firing_after_the_receipt_concerns_the_empty_box():
    assert not alarm_counts_for_trip(T0 + 3 * HOUR, T0 + 5 * HOUR, None, TRIP, True)


def test_an_alarm_over_before_the_issue_concerns_an_earlier_trip():
    assert not alarm_counts_for_trip(T0 - 3 * HOUR, T0 - 2 * HOUR, T0 - HOUR, TRIP, False)


def test_a_box_packed_still_frozen_holds_its_doses():
    assert alarm_counts_for_trip(T0 - 2 * HOUR, T0 - HOUR, None, (T0, None), True)


def test_an_alarm_lingering_in_its_window_over_a_trip_in_range_holds_nothing():
    # A box left warm before conditioning: its cumulative heat alarm lasts into the trip's first
    # hours (the window still sums the warm time), but the trip's readings are in range.
    assert not alarm_counts_for_trip(T0 - 6 * HOUR, T0 - 4 * HOUR, T0 + 2 * HOUR, TRIP, False)


def test_a_warning_counts_for_the_trip_it_overlaps():
    assert overlaps_trip(T0 + HOUR, T0 + 2 * HOUR, T0, T0 + 4 * HOUR)
    assert not overlaps_trip(T0 + 5 * HOUR, None, T0, T0 + 4 * HOUR)


# --- what a late alarm holds -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "still_there", "held", "gone"),
    [(300, 180, 180, 120), (300, 700, 300, 0), (300, 0, 0, 300), (300, 300, 300, 0)],
)
def test_a_late_alarm_holds_what_remains_and_reports_the_rest(received, still_there, held, gone):
    split = late_hold(received, still_there)
    assert (split.received, split.held, split.gone) == (received, held, gone)


# --- legs and the whole journey ------------------------------------------------------------------


def test_minutes_outside_count_the_time_readings_stand_for_at_or_beyond_the_limits():
    temps = [5.0, 8.0, 9.0, 2.0, -1.0, 5.0]
    weights = [60.0] * 6
    assert minutes_outside(temps, weights, 2.0, 8.0) == 4.0


def test_journey_mkt_of_legs_at_one_temperature_is_that_temperature():
    legs = [
        Leg("stay", T0, T0 + HOUR, 5.0, 60.0, 0.0),
        Leg("trip", T0 + HOUR, T0 + 3 * HOUR, 5.0, 120.0, 12.5),
        Leg("stay", T0 + 3 * HOUR, T0 + 4 * HOUR, None, 0.0, 0.0),
    ]
    totals = journey_totals(legs)
    assert totals == {
        "mkt_c": 5.0,
        "minutes_outside": 12.5,
        "covered_min": 180.0,
        "unmonitored_min": 60.0,
    }


def test_journey_mkt_weighs_warm_time_more_than_the_mean():
    # USP <1160>: half the time at 2 C and half at 20 C gives an MKT above the 11 C mean.
    legs = [Leg("stay", T0, T0 + HOUR, 2.0, 60.0, 0.0), Leg("trip", T0, T0 + HOUR, 20.0, 60.0, 60)]
    assert journey_totals(legs)["mkt_c"] > 11.5


def test_gaps_are_the_times_no_leg_covers():
    spans = [(T0, T0 + HOUR), (T0 + 2 * HOUR, T0 + 3 * HOUR), (T0 + HOUR, T0 + 90 * MIN)]
    assert gaps(spans) == [(T0 + 90 * MIN, T0 + 2 * HOUR)]
    assert gaps([(T0, T0 + HOUR), (T0 + HOUR, T0 + 2 * HOUR)]) == []


# --- the simulator's trips -----------------------------------------------------------------------


def test_the_simulated_trip_on_time_stays_in_range_and_the_freeze_goes_below_the_limit():
    import json

    from sensors.trip import TripPlan, trip_messages, trip_readings

    on_time = trip_readings(TripPlan("CB-1", T0, 240))
    assert len(on_time) == 240 and all(2.0 < r["temp_c"] < 8.0 for r in on_time)
    freeze = trip_readings(TripPlan("CB-1", T0, 240, "freeze", freeze_min=45))
    frozen = [r for r in freeze if r["temp_c"] <= -0.5]
    assert len(frozen) == 45 and frozen[0]["ts"] == (T0 + 96 * MIN).isoformat()
    samples = [Sample(dt.datetime.fromisoformat(r["ts"]), r["temp_c"]) for r in freeze]
    assert "cold_alarm" in kinds(samples, CARRIER)
    batches = trip_messages(TripPlan("CB-1", T0, 1200), "p")
    assert [len(json.loads(m[1])["readings"]) for m in batches] == [500, 500, 200]
    assert {m[0] for m in batches} == {"p/CB-1/readings"}
