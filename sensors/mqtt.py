"""One wrapper owns the paho client: persistent session, QoS 1, back-off, manual acks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from logistics.config import Settings

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BrokerAddress:
    """Where the broker is and how to log in."""

    host: str
    port: int
    username: str = ""
    password: str = ""
    tls: bool = False


def parse_broker_url(url: str, username: str = "", password: str = "") -> BrokerAddress:
    """Read `mqtt://[user:pass@]host[:port]` (or mqtts://); explicit credentials win."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp") or not parts.hostname:
        raise ValueError(f"broker URL must look like mqtt://host:1883, not {url!r}")
    tls = parts.scheme == "mqtts"
    return BrokerAddress(
        parts.hostname,
        parts.port or (8883 if tls else 1883),
        username or unquote(parts.username or ""),
        password or unquote(parts.password or ""),
        tls,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class Incoming:
    """A message as received, with what is needed to acknowledge it later."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool
    received_at: dt.datetime
    generation: int


def protocol_of(settings: Settings) -> int:
    """paho's protocol constant for the mqtt.protocol setting."""
    return mqtt.MQTTv5 if settings.mqtt_protocol.strip() == "5" else mqtt.MQTTv311


class MqttConnection:
    """A paho client that keeps its broker session and renews its subscriptions on every connect.

    Messages are handed to `on_message` and acknowledged only when `ack` is called
    (manual_ack), so a crash before the data is committed makes the broker deliver them again.
    """

    def __init__(
        self,
        settings: Settings,
        address: BrokerAddress,
        client_id: str,
        subscriptions: list[str],
        on_message: Callable[[Incoming], None],
    ):
        self._settings = settings
        self._address = address
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._protocol = protocol_of(settings)
        self.generation = 0
        self._stopping = False
        self.connected = threading.Event()
        # Set once the broker confirmed the subscriptions of the current connection.
        self.subscribed = threading.Event()
        self.client = self._make_client(client_id)

    def _make_client(self, client_id: str) -> mqtt.Client:
        v5 = self._protocol == mqtt.MQTTv5
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=self._protocol,
            clean_session=None if v5 else False,
            manual_ack=True,
        )
        if self._address.username:
            client.username_pw_set(self._address.username, self._address.password or None)
        if self._address.tls:
            client.tls_set()
        client.reconnect_delay_set(
            max(1, int(self._settings.mqtt_reconnect_min_s)),
            max(1, int(self._settings.mqtt_reconnect_max_s)),
        )
        # Our own QoS 1 acks are queued by us; do not let paho cap what it accepts from the broker.
        client.max_inflight_messages_set(self._settings.mqtt_receive_maximum)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = self._received
        client.on_subscribe = self._subscribed
        return client

    def start(self) -> None:
        """Connect in the background; paho's network thread reconnects with back-off."""
        kwargs: dict[str, Any] = {"keepalive": self._settings.mqtt_keepalive_s}
        if self._protocol == mqtt.MQTTv5:
            kwargs.update(clean_start=False, properties=self._connect_properties())
        self.client.connect_async(self._address.host, self._address.port, **kwargs)
        self.client.loop_start()

    def _connect_properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)
        # With a session expiry of 0 (the MQTT 5 default) the broker forgets us, and queues nothing,
        # as soon as we disconnect (MQTT 5.0 section 3.1.2.11.2).
        properties.SessionExpiryInterval = self._settings.mqtt_session_expiry_s
        # Receive Maximum lifts the broker's window of unacknowledged messages (Mosquitto: 20).
        properties.ReceiveMaximum = min(65535, self._settings.mqtt_receive_maximum)
        return properties

    def stop(self, flush_s: float = 5.0) -> None:
        """Send the acknowledgements still buffered, then disconnect cleanly (the broker keeps
        the session) and stop the network thread."""
        self._stopping = True
        # Acks of committed messages that never left would make the broker deliver them again.
        deadline = time.monotonic() + flush_s
        while self.connected.is_set() and self.client.want_write() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def ack(self, message: Incoming) -> bool:
        """Acknowledge a message of the current connection; older ones are redelivered anyway."""
        if message.qos == 0 or message.generation != self.generation:
            return False
        self.client.ack(message.mid, message.qos)
        return True

    def _connected(
        self, client: mqtt.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        self.generation += 1
        self.subscribed.clear()
        log.info(
            "connected to %s:%s (session present: %s)",
            self._address.host,
            self._address.port,
            getattr(flags, "session_present", None),
        )
        # Subscribing on every connect: a broker that lost our session still gets our subscriptions.
        if self._protocol == mqtt.MQTTv5:
            client.subscribe([(topic, SubscribeOptions(qos=1)) for topic in self._subscriptions])
        else:
            client.subscribe([(topic, 1) for topic in self._subscriptions])
        self.connected.set()

    def _subscribed(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        failed = [reason for reason in reasons if getattr(reason, "is_failure", False)]
        if failed:
            log.error("broker refused subscriptions %s: %s", self._subscriptions, failed)
        else:
            self.subscribed.set()

    def _disconnected(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self.connected.clear()
        self.subscribed.clear()
        if not self._stopping:
            log.warning("disconnected from the broker (%s); reconnecting with back-off", reason)

    def _received(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            self._on_message(
                Incoming(
                    _topic_of(message),
                    message.payload,
                    message.mid,
                    message.qos,
                    bool(message.retain),
                    dt.datetime.now(dt.UTC),
                    self.generation,
                )
            )
        except Exception:  # a handler error must never stop the network loop
            log.exception("message handler failed on %s: %r", message.topic, message.payload[:200])


def _topic_of(message: mqtt.MQTTMessage) -> str:
    # paho's `topic` raises on invalid UTF-8; such a message must still reach the dead letters.
    raw = message._topic  # noqa: SLF001  (the raw bytes paho keeps)
    return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
