"""The simulator's power cut speaks the sensor protocol (docs/sensors.md): `power: "battery"`."""

from __future__ import annotations

import datetime as dt
import json

from sensors.traces import POWER_CUT, SensorPlan, messages

START = dt.datetime(2021, 4, 28, 6, 0, tzinfo=dt.UTC)


def test_readings_report_battery_exactly_while_mains_is_cut():
    plan = SensorPlan("SIM001", POWER_CUT, interval_s=600, fault_after_h=1, fault_for_h=2)
    published = messages(plan, START, START, START + dt.timedelta(hours=4), "coldchain/sensors")
    powers = {
        json.loads(payload)["ts"][11:16]: json.loads(payload)["power"]
        for topic, payload, _retain in published
        if topic == "coldchain/sensors/SIM001/readings"
    }
    # Written out by hand: mains until 07:00, battery from 07:00 until mains returns at 09:00.
    assert powers == {
        "06:10": "mains", "06:20": "mains", "06:30": "mains", "06:40": "mains", "06:50": "mains",
        "07:00": "battery", "07:10": "battery", "07:20": "battery", "07:30": "battery",
        "07:40": "battery", "07:50": "battery", "08:00": "battery", "08:10": "battery",
        "08:20": "battery", "08:30": "battery", "08:40": "battery", "08:50": "battery",
        "09:00": "mains", "09:10": "mains", "09:20": "mains", "09:30": "mains", "09:40": "mains",
        "09:50": "mains", "10:00": "mains",
    }  # fmt: skip
