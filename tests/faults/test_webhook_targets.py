"""Webhook targets: http(s) only, no internal addresses unless configured (issue 12, point 8)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from logistics.models.alerts import DeliveryAttempt, NotificationTarget
from logistics.runtime import Runtime
from logistics.services.notify import UnsafeTarget, add_target, check_webhook_url, deliver_due
from tests.integration.test_notify import SECRET, _alert, receiver  # noqa: F401  (fixture)
from tests.support.alerts_fixtures import make_tree

NOW = dt.datetime(2021, 1, 10, 2, 0, tzinfo=dt.UTC)

REFUSED = [
    "file:///etc/passwd",
    "gopher://127.0.0.1:70/_GET",
    "ftp://example.org/x",
    "not a url",
    "http://",
    "http://127.0.0.1:8080/internal/admin",
    "http://localhost/x",
    "http://10.1.2.3/x",
    "http://172.16.0.1/x",
    "http://192.168.1.1/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/x",
    "http://0.0.0.0/x",
    "http://[::1]/x",
    "http://[::ffff:127.0.0.1]/x",
    "http://[fe80::1]/x",
    "http://[fc00::1]/x",
    "http://224.0.0.1/x",
    "http://2130706433/x",  # 127.0.0.1 as one decimal number
    "http://0x7f.1/x",
]


@pytest.mark.parametrize("url", REFUSED)
def test_unsafe_urls_are_refused(url):
    with pytest.raises(UnsafeTarget):
        check_webhook_url(url)


def test_public_addresses_pass_and_configured_networks_are_allowed():
    assert check_webhook_url("https://8.8.8.8/hook") == ["8.8.8.8"]
    assert check_webhook_url("http://127.0.0.1:9/x", "127.0.0.0/8") == ["127.0.0.1"]
    assert check_webhook_url("http://10.20.1.5/x", "10.20.0.0/16, 192.168.0.0/24") == ["10.20.1.5"]
    with pytest.raises(UnsafeTarget):
        check_webhook_url("http://10.21.1.5/x", "10.20.0.0/16")


@pytest.mark.integration
@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "gopher://x/", "not a url", "http://127.0.0.1:5000/internal/admin"],
)
def test_the_api_answers_422_and_registers_nothing(client, runtime, url):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        uow.commit()
    response = client.post(
        "/api/notification-targets",
        json={"store_id": tree.centre.id, "channel": "webhook", "address": url, "secret": "x"},
    )
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert "address" in response.get_json()["errors"]
    with runtime.uow() as uow:
        assert uow.session.scalars(select(NotificationTarget)).all() == []


@pytest.mark.integration
def test_delivery_checks_the_address_again_and_never_calls_an_internal_one(runtime, receiver):  # noqa: F811
    server = receiver()
    with runtime.uow() as uow:
        tree = make_tree(uow)
        uow.commit()
        # Registered while loopback was allowed; the configuration no longer allows it.
        add_target(
            uow,
            store_id=tree.centre.id,
            channel="webhook",
            address=server.url,
            secret=SECRET,
            allowed_networks="127.0.0.0/8",
        )
        uow.commit()
    strict = Runtime(
        runtime.settings.replace(notify_allowed_networks=""),
        runtime.engine,
        runtime.session_factory,
    )
    _alert(strict, tree.centre.id)
    assert deliver_due(strict, NOW) == 1
    assert server.received == []
    with runtime.uow() as uow:
        attempt = uow.session.scalars(select(DeliveryAttempt)).one()
        assert not attempt.ok and attempt.error.startswith("refused:")
