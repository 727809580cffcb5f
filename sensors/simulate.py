"""Publish simulated ILR traces over MQTT (QoS 1, in chunks) at a speed-up factor.

The simulated clock starts `history_h` hours ago and runs `speedup` times faster than the wall
clock until it reaches the present, then follows real time: readings never carry future times.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import uuid

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sensors.mqtt import BrokerAddress
from sensors.traces import SensorPlan, messages

log = logging.getLogger(__name__)
CHUNK = 500


@dataclasses.dataclass
class SimulatorClock:
    """Maps wall time to simulated time: fast until it catches up with now, then real time."""

    sim_start: dt.datetime
    wall_start: dt.datetime
    speedup: float

    def now(self, wall_now: dt.datetime) -> dt.datetime:
        """The simulated time at this wall time (never ahead of it)."""
        elapsed = (wall_now - self.wall_start) * self.speedup
        return min(self.sim_start + elapsed, wall_now)


def publisher(address: BrokerAddress, client_id: str | None = None) -> mqtt.Client:
    """A connected paho publisher (MQTT 3.1.1 works with Mosquitto and the embedded broker)."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"coldchain-sim-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv311,
    )
    if address.username:
        client.username_pw_set(address.username, address.password or None)
    client.max_inflight_messages_set(CHUNK)
    client.max_queued_messages_set(0)
    client.connect(address.host, address.port, keepalive=30)
    client.loop_start()
    return client


def publish_chunked(
    client: mqtt.Client, items: list[tuple[str, bytes, bool]], timeout_s: float = 60
) -> int:
    """Publish with QoS 1 in chunks, waiting for each chunk's acknowledgements; return the count."""
    for first in range(0, len(items), CHUNK):
        infos = [
            client.publish(topic, payload, qos=1, retain=retain)
            for topic, payload, retain in items[first : first + CHUNK]
        ]
        for info in infos:
            info.wait_for_publish(timeout_s)
    return len(items)


class Simulator:
    """Drives the plans' traces on a simulated clock and publishes what each logger would send."""

    def __init__(
        self,
        client: mqtt.Client,
        plans: list[SensorPlan],
        clock: SimulatorClock,
        prefix: str = "coldchain/sensors",
    ):
        self.client, self.plans, self.clock, self.prefix = client, plans, clock, prefix
        self.published = 0
        self._last = clock.sim_start

    def announce(self) -> None:
        """Publish every logger's retained `online` status."""
        self.published += publish_chunked(
            self.client,
            [(f"{self.prefix}/{plan.sensor_id}/status", b"online", True) for plan in self.plans],
        )

    def tick(self, wall_now: dt.datetime) -> int:
        """Publish everything the loggers produced since the last tick; return how many messages."""
        until = self.clock.now(wall_now)
        items = [
            item
            for plan in self.plans
            for item in messages(plan, self.clock.sim_start, self._last, until, self.prefix)
        ]
        self._last = until
        count = publish_chunked(self.client, items)
        self.published += count
        return count

    def run(self, stop: threading.Event, tick_s: float = 1.0) -> None:
        """Tick until stopped."""
        self.announce()
        while not stop.is_set():
            try:
                self.tick(dt.datetime.now(dt.UTC))
            except Exception:  # keep simulating through a broker hiccup
                log.exception("simulator tick failed")
            stop.wait(tick_s)
