"""What Mosquitto's persistence settings cost and what a SIGKILL loses with each (issue 12).

    python benchmarks/mosquitto_autosave.py [--messages 20000]

For each setting a private mosquitto (config/mosquitto.conf with autosave_* replaced) gets a
persistent subscriber session (the ingestion's), which then goes away. A QoS 1 publisher sends
`--messages` readings that queue for it: the publish rate shows what the saves cost. Then the
broker is SIGKILLed, restarted, and the subscriber comes back: what it receives is what survived.
Last line: one JSON object {setting: {"publish_per_s", "saved_of", "lost", "session_kept"}}.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import log  # noqa: E402

from sensors.mosquitto import PrivateMosquitto  # noqa: E402

SETTINGS = {
    "shipped: autosave_interval 30 (seconds)": {
        "autosave_on_changes": "false",
        "autosave_interval": "30",
    },
    "autosave_on_changes, every 1000 changes": {
        "autosave_on_changes": "true",
        "autosave_interval": "1000",
    },
    "autosave_on_changes, every 100 changes": {
        "autosave_on_changes": "true",
        "autosave_interval": "100",
    },
    "autosave_on_changes, every 10 changes": {
        "autosave_on_changes": "true",
        "autosave_interval": "10",
    },
}


def _subscriber(port: int, client_id: str, topic: str, received: set[int]) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    present: list[bool] = []

    def connected(c, _u, flags, _rc, _p):
        present.append(bool(flags.session_present))
        c.subscribe(topic, qos=1)

    client.on_connect = connected
    client.on_message = lambda _c, _u, m: received.add(int(m.payload))
    client.user_data_set(present)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    client.loop_start()
    return client


def measure(overrides: dict[str, str], messages: int) -> dict[str, object]:
    broker = PrivateMosquitto(overrides=overrides).start()
    topic = f"bench/{uuid.uuid4().hex[:6]}/x"
    client_id = f"ingest-{uuid.uuid4().hex[:6]}"
    try:
        received: set[int] = set()
        sub = _subscriber(broker.port, client_id, topic, received)
        time.sleep(0.5)
        sub.disconnect()
        sub.loop_stop()
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.max_inflight_messages_set(1000)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        started = time.perf_counter()
        infos = [pub.publish(topic, str(i), qos=1) for i in range(messages)]
        for info in infos:
            info.wait_for_publish(60)
        rate = messages / (time.perf_counter() - started)
        pub.disconnect()
        pub.loop_stop()
        broker.kill()
        broker.start()
        done = threading.Event()
        sub = _subscriber(broker.port, client_id, topic, received)
        deadline = time.monotonic() + 20
        last = -1
        while time.monotonic() < deadline and not done.is_set():
            time.sleep(1.0)
            if len(received) == last:
                break
            last = len(received)
        present = sub._userdata  # noqa: SLF001  (session_present flags of each connect)
        sub.disconnect()
        sub.loop_stop()
        return {
            "publish_per_s": round(rate),
            "saved_of": f"{len(received)}/{messages}",
            "lost": messages - len(received),
            "session_kept": bool(present and present[-1]),
        }
    finally:
        broker.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--only", default="", help="run the settings whose name holds this")
    args = parser.parse_args()
    results = {}
    for name, overrides in SETTINGS.items():
        if args.only not in name:
            continue
        results[name] = measure(overrides, args.messages)
        log(f"{name}: {results[name]}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
