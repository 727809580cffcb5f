"""End to end over Mosquitto: the simulator's power cut raises power_failure, seen over HTTP, and
mains power coming back resolves it (issue 11, point 5)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest

from logistics.runtime import Runtime
from logistics.services.evaluation import Evaluator
from logistics.services.scheduler import JOBS
from sensors.ingest import Ingestor
from sensors.mqtt import parse_broker_url
from sensors.simulate import Simulator, SimulatorClock, publisher
from sensors.traces import POWER_CUT, SensorPlan
from tests.support.alerts_fixtures import add_sensor, make_tree

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
H = dt.timedelta(hours=1)


def _wait_until(check, timeout_s: float = 30.0):
    """Poll `check` until it returns something truthy (an event wait, no sleep-and-hope)."""
    done, result = threading.Event(), []

    def poll() -> None:
        while not done.wait(0.1):
            value = check()
            if value:
                result.append(value)
                done.set()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    done.wait(timeout_s)
    done.set()
    thread.join()
    return result[0] if result else None


def test_simulated_power_cut_raises_power_failure_and_mains_resolves_it(runtime, client, mqtt_url):
    prefix = f"test-{uuid.uuid4().hex[:10]}/sensors"
    settings = runtime.settings.replace(
        mqtt_url=mqtt_url,
        mqtt_client_id=f"ingest-{uuid.uuid4().hex[:10]}",
        mqtt_topic_prefix=prefix,
        ingest_flush_interval_ms=100,
        alerts_power_failure_alarm_min=600,  # a warning first; the alarm comes from the job below
    )
    services = Runtime(settings, runtime.engine, runtime.session_factory)
    start = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - 3 * H
    # The demo's power-cut logger, one reading every 5 minutes; mains lost from +1 h to +2 h.
    plan = SensorPlan("PC-ILR-1", POWER_CUT, interval_s=300, fault_after_h=1.0, fault_for_h=1.0)
    with runtime.uow() as uow:
        tree = make_tree(uow)
        add_sensor(uow, tree.ilr.id, sensor_id=plan.sensor_id, interval_s=300, since=start - H)
        uow.commit()
    evaluator = Evaluator(services).start()
    ingestor = Ingestor(services)
    ingestor.start()
    sim_client = publisher(parse_broker_url(mqtt_url))
    simulator = Simulator(sim_client, [plan], SimulatorClock(start, start, 1.0), prefix)

    def power_alert(state: str, severity: str | None = None):
        got = client.get(
            "/api/alerts", query_string={"store_id": tree.district.id, "kind": "power_failure"}
        )
        alerts = got.json if got.status_code == 200 else []
        return [
            a
            for a in alerts
            if a["state"] == state and (severity is None or a["severity"] == severity)
        ]

    try:
        assert ingestor.connection.subscribed.wait(10)
        simulator.announce()
        assert simulator.tick(start + 1.5 * H) > 0  # half an hour into the cut
        [warning] = _wait_until(lambda: power_alert("open", "warning")) or [None]
        assert warning is not None, "the power cut raised no power_failure warning"
        assert warning["details"]["on_battery_since"] == (start + H).isoformat()
        assert warning["subject_id"] == plan.sensor_id

        # The scheduler's sensor job, ten hours into a cut that had not ended: the alarm.
        JOBS["sensor_silence"](services, start + 11 * H)
        assert power_alert("open", "alarm")

        simulator.tick(dt.datetime.now(dt.UTC))  # mains came back at +2 h
        resolved = _wait_until(lambda: power_alert("resolved"))
        assert resolved and resolved[0]["id"] == warning["id"]
        assert power_alert("open") == []
    finally:
        sim_client.loop_stop()
        sim_client.disconnect()
        ingestor.stop()
        evaluator.stop()
