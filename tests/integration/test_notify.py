"""Notifications against a real local HTTP receiver and a real local SMTP server."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.server
import json
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from logistics.models.alerts import DeliveryAttempt, NotificationDelivery
from logistics.runtime import Runtime
from logistics.services.alerts import raise_alert
from logistics.services.notify import add_target, deliver_due
from tests.support.alerts_fixtures import make_tree

pytestmark = pytest.mark.integration
NOW = dt.datetime(2021, 1, 10, 2, 0, tzinfo=dt.UTC)
SECRET = "s3cret"
# The receivers here listen on loopback, which webhooks may call only when allowed (issue 12).
LOOPBACK = "127.0.0.0/8"


@pytest.fixture
def runtime(runtime: Runtime) -> Runtime:
    """The test runtime, with loopback webhook receivers allowed in its configuration."""
    settings = runtime.settings.replace(notify_allowed_networks=LOOPBACK)
    return Runtime(settings, runtime.engine, runtime.session_factory)


class Receiver(http.server.ThreadingHTTPServer):
    """Records every POST; answers 503 to the first `fail_first` of them."""

    def __init__(self, fail_first: int = 0):
        self.fail_first, self.received = fail_first, []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        server.received.append((dict(self.headers), body))
        status = 503 if len(server.received) <= server.fail_first else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    servers = []

    def start(fail_first=0):
        server = Receiver(fail_first)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _alert(runtime, store_id):
    with runtime.uow() as uow:
        alert = raise_alert(
            uow,
            kind="sensor_silent",
            subject_type="sensor",
            subject_id="S-1",
            store_id=store_id,
            severity="alarm",
            message="sensor S-1 silent",
            details={"x": 1},
            now=NOW,
        )
        uow.commit()
        return alert.id


def test_webhook_is_signed_and_logged(runtime, receiver):
    server = receiver()
    with runtime.uow() as uow:
        tree = make_tree(uow)
        uow.commit()
        add_target(
            uow,
            store_id=tree.centre.id,
            channel="webhook",
            address=server.url,
            secret=SECRET,
            allowed_networks=LOOPBACK,
        )
        uow.commit()
    alert_id = _alert(runtime, tree.centre.id)
    sent_after = int(time.time())
    assert deliver_due(runtime, NOW) == 1
    sent_before = int(time.time())
    headers, body = server.received[0]
    # Stripe's scheme: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">.
    stamp, mac = headers["X-Coldchain-Signature"].split(",")
    assert stamp.startswith("t=") and mac.startswith("v1=")
    t = int(stamp[2:])
    assert sent_after <= t <= sent_before  # the time of sending, not of the alert
    signed = f"{t}.".encode() + body
    assert mac[3:] == hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    payload = json.loads(body)
    assert payload["event"] == "opened" and payload["alert"]["id"] == alert_id
    with runtime.uow() as uow:
        delivery = uow.session.scalars(select(NotificationDelivery)).one()
        attempt = uow.session.scalars(select(DeliveryAttempt)).one()
        assert delivery.state == "sent" and attempt.ok and attempt.status_code == 204


def test_failed_webhook_is_retried_with_backoff(runtime, receiver):
    server = receiver(fail_first=2)
    with runtime.uow() as uow:
        tree = make_tree(uow)
        uow.commit()
        add_target(
            uow,
            store_id=tree.centre.id,
            channel="webhook",
            address=server.url,
            secret=SECRET,
            allowed_networks=LOOPBACK,
        )
        uow.commit()
    _alert(runtime, tree.centre.id)
    assert deliver_due(runtime, NOW) == 1  # 503
    assert deliver_due(runtime, NOW + dt.timedelta(seconds=5)) == 0  # not due yet (10 s back-off)
    assert deliver_due(runtime, NOW + dt.timedelta(seconds=10)) == 1  # 503 again, next in 20 s
    assert deliver_due(runtime, NOW + dt.timedelta(seconds=25)) == 0
    assert deliver_due(runtime, NOW + dt.timedelta(seconds=30)) == 1  # 204
    with runtime.uow() as uow:
        attempts = list(uow.session.scalars(select(DeliveryAttempt).order_by(DeliveryAttempt.id)))
        assert [(a.ok, a.status_code) for a in attempts] == [
            (False, 503),
            (False, 503),
            (True, 204),
        ]
        assert uow.session.scalars(select(NotificationDelivery)).one().state == "sent"
    bodies = {body for _, body in server.received}
    assert len(bodies) == 1  # the same signed body each time


def test_unreachable_webhook_fails_after_max_attempts(runtime):
    runtime = Runtime(
        runtime.settings.replace(notify_max_attempts=2), runtime.engine, runtime.session_factory
    )
    with runtime.uow() as uow:
        tree = make_tree(uow)
        uow.commit()
        add_target(
            uow,
            store_id=tree.centre.id,
            channel="webhook",
            address="http://127.0.0.1:9/none",
            secret=SECRET,
            allowed_networks=LOOPBACK,
        )
        uow.commit()
    _alert(runtime, tree.centre.id)
    deliver_due(runtime, NOW)
    deliver_due(runtime, NOW + dt.timedelta(hours=1))
    with runtime.uow() as uow:
        delivery = uow.session.scalars(select(NotificationDelivery)).one()
        assert (delivery.state, delivery.attempts) == ("failed", 2)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


def test_email_over_smtp(runtime):
    inbox = _Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = runtime.settings.replace(notify_smtp_host="127.0.0.1", notify_smtp_port=port)
        runtime = Runtime(settings, runtime.engine, runtime.session_factory)
        with runtime.uow() as uow:
            tree = make_tree(uow)
            uow.commit()
            add_target(
                uow,
                store_id=tree.district.id,
                channel="email",
                address="dio@cachar.example",
                secret=None,
            )
            uow.commit()
        _alert(runtime, tree.centre.id)  # escalation level 0: the district is not told yet
        assert deliver_due(runtime, NOW) == 0
        with runtime.uow() as uow:
            from logistics.models.alerts import Alert
            from logistics.services.notify import enqueue_alert_notifications

            alert = uow.session.scalars(select(Alert)).one()
            alert.escalation_level = 1
            enqueue_alert_notifications(uow, alert, "escalated", NOW)
            uow.commit()
        assert deliver_due(runtime, NOW) == 1
        assert inbox.messages[0][0] == ["dio@cachar.example"]
        assert "sensor S-1 silent" in inbox.messages[0][1]
    finally:
        controller.stop()
