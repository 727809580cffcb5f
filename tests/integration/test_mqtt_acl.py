"""Mosquitto, configured from the files generated from the sensor registry, keeps sensors apart."""

from __future__ import annotations

import datetime as dt
import getpass
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from logistics.models.readings import SENSOR_RETIRED, Sensor
from logistics.runtime import Runtime
from logistics.services import mqtt_acl

pytestmark = pytest.mark.integration
PREFIX = "coldchain/sensors"
INGEST = "coldchain-ingest"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _broker_config(port: int, directory: Path) -> str:
    return "\n".join(
        [
            "per_listener_settings false",
            f"listener {port} 127.0.0.1",
            "allow_anonymous false",
            f"password_file {directory / 'coldchain.passwd'}",
            f"acl_file {directory / 'coldchain.acl'}",
            "persistence false",
            # as root, mosquitto would switch to a user who cannot read
            f"user {getpass.getuser()}",
            f"log_dest file {directory / 'mosquitto.log'}",
            "",
        ]
    )


@pytest.fixture
def credentials(runtime: Runtime) -> dict[str, str]:
    """Sensors S-1 and S-2 (active) and S-3 (retired), each with its own password; the ingestion."""
    with runtime.uow() as uow:
        for sensor_id in ("S-1", "S-2", "S-3"):
            uow.session.add(Sensor(sensor_id=sensor_id, registered_at=NOW))
        uow.commit()
        passwords = mqtt_acl.issue_missing_sensor_credentials(uow, now=NOW)
        uow.commit()
        passwords[INGEST] = mqtt_acl.issue_service_credential(uow, username=INGEST, now=NOW)
        uow.commit()
        uow.session.get(Sensor, "S-3").status = SENSOR_RETIRED
        uow.commit()
    return passwords


@pytest.fixture
def broker(runtime: Runtime, credentials: dict[str, str], tmp_path: Path) -> Iterator[int]:
    """A Mosquitto of our own on a free loopback port, started from the generated files."""
    with runtime.uow() as uow:
        files = mqtt_acl.mosquitto_files(uow, topic_prefix=PREFIX)
    mqtt_acl.write_mosquitto_files(files, tmp_path / "coldchain.passwd", tmp_path / "coldchain.acl")
    port = _free_port()
    (tmp_path / "mosquitto.conf").write_text(_broker_config(port, tmp_path))
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    process = subprocess.Popen(
        [binary, "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _wait_for_port(port: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"mosquitto did not start on {port}")


class Peer:
    """A paho client that records whether its login was accepted and what it received."""

    def __init__(self, port: int, username: str | None, password: str | None):
        self.connected = threading.Event()
        self.accepted: bool | None = None
        self.messages: list[tuple[str, bytes]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"t-{username}-{port}", protocol=mqtt.MQTTv5
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: self.messages.append((msg.topic, msg.payload))
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.connected.wait(5)

    def _on_connect(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        self.accepted = not reason_code.is_failure
        self.connected.set()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _wait_for(predicate, timeout_s: float = 5) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()


@pytest.mark.parametrize("topic_filter", [f"{PREFIX}/#", f"$share/ingest/{PREFIX}/#"])
def test_a_sensor_cannot_publish_under_another_sensors_topic(broker, credentials, topic_filter):
    ingest = Peer(broker, INGEST, credentials[INGEST])
    sensor = Peer(broker, "S-1", credentials["S-1"])
    try:
        assert ingest.accepted and sensor.accepted
        ingest.client.subscribe(topic_filter, qos=1)
        assert ingest.subscribed.wait(5)
        for topic, payload in (
            (f"{PREFIX}/S-2/readings", b'{"temp_c": 99}'),
            (f"{PREFIX}/S-1/readings", b'{"temp_c": 4.5}'),
        ):
            sensor.client.publish(topic, payload, qos=1).wait_for_publish(5)
        # The own reading, published after the forged one, arriving proves the forged one is not
        # merely late: the broker delivers one publisher's QoS 1 messages in order.
        assert _wait_for(lambda: (f"{PREFIX}/S-1/readings", b'{"temp_c": 4.5}') in ingest.messages)
        assert [topic for topic, _ in ingest.messages] == [f"{PREFIX}/S-1/readings"]
    finally:
        ingest.close()
        sensor.close()


def test_a_sensor_cannot_read_other_sensors(broker, credentials):
    spy = Peer(broker, "S-2", credentials["S-2"])
    sensor = Peer(broker, "S-1", credentials["S-1"])
    try:
        spy.client.subscribe(f"{PREFIX}/#", qos=1)
        assert spy.subscribed.wait(5)
        sensor.client.publish(f"{PREFIX}/S-1/readings", b"{}", qos=1).wait_for_publish(5)
        assert not _wait_for(lambda: spy.messages, timeout_s=1)
    finally:
        spy.close()
        sensor.close()


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("S-2", "not its password"),  # wrong password
        ("S-3", None),  # retired: no longer in the password file
        ("S-9", "anything"),  # unknown
        (None, None),  # anonymous
    ],
)
def test_the_broker_refuses_bad_logins(broker, credentials, username, password):
    peer = Peer(broker, username, password or credentials.get(username or "", ""))
    try:
        assert peer.accepted is False
    finally:
        peer.close()


def test_generated_files_hold_hashes_only(runtime, credentials):
    with runtime.uow() as uow:
        files = mqtt_acl.mosquitto_files(uow, topic_prefix=PREFIX)
    assert files.sensors == ("S-1", "S-2")
    for password in credentials.values():
        assert password not in files.passwords
    assert [line.split(":")[0] for line in files.passwords.splitlines()] == [INGEST, "S-1", "S-2"]
    assert all(line.split(":", 1)[1].startswith("$7$") for line in files.passwords.splitlines())
