"""Notifications: alert events go to a database outbox in the alert's own transaction; any
process then sends them (webhook or e-mail), retrying with back-off and logging every attempt.

Webhooks: POST of the JSON payload, with `X-Coldchain-Signature: t=<unix seconds>,v1=<hex>`, where
v1 is the HMAC-SHA256 under the target's secret of "<t>.<exact body bytes>" (Stripe's scheme), and
`X-Coldchain-Delivery: <id>` (receivers may use it to drop repeats: a delivery is sent at least
once). The timestamp is signed with the body, so a receiver that refuses signatures older than a
few minutes (`verify_signature`) cannot be fooled by a captured request replayed later
(docs/webhooks.md).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import smtplib
import socket
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy import select

from logistics.config import Settings
from logistics.db import UnitOfWork, is_postgres
from logistics.domain.alerts import SEVERITY_RANK
from logistics.domain.errors import Conflict, Invalid, NotFound
from logistics.models.alerts import Alert, DeliveryAttempt, NotificationDelivery, NotificationTarget
from logistics.models.catalog import Store
from logistics.runtime import Runtime

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Coldchain-Signature"


# Receivers should refuse signatures older than this (Stripe's default tolerance is 5 minutes).
SIGNATURE_TOLERANCE_S = 300


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">."""
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify_signature(
    secret: str, header: str, body: bytes, now: float, tolerance_s: float = SIGNATURE_TOLERANCE_S
) -> bool:
    """Tell whether a receiver should accept a delivery: a v1 matches and t is recent enough.

    A signature from further than `tolerance_s` in the past (a replay) or the future is refused.
    """
    parts = [item.partition("=") for item in header.split(",")]
    stamps = [value for name, _, value in parts if name.strip() == "t"]
    macs = [value.strip() for name, _, value in parts if name.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit() or not macs:
        return False
    timestamp = int(stamps[0])
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, mac) for mac in macs)


def backoff(attempts: int, base_s: float, max_s: float) -> dt.timedelta:
    """Wait before the next try: base * 2^(attempts-1), capped."""
    return dt.timedelta(seconds=min(max_s, base_s * 2 ** max(attempts - 1, 0)))


def _stores_to_tell(alert: Alert) -> list[int]:
    """The alert's store and, per escalation level, one more store up the tree."""
    ids = [int(part) for part in alert.store_path.split("/") if part]
    if not ids:
        return [alert.store_id] if alert.store_id else []
    return ids[max(0, len(ids) - 1 - alert.escalation_level) :]


def alert_payload(alert: Alert, event: str) -> dict[str, Any]:
    """What a receiver gets: the event and the alert as the API shows it."""
    return {
        "event": event,
        "alert": {
            "id": alert.id,
            "kind": alert.kind,
            "severity": alert.severity,
            "state": alert.state,
            "subject_type": alert.subject_type,
            "subject_id": alert.subject_id,
            "store_id": alert.store_id,
            "message": alert.message,
            "details": alert.details,
            "opened_at": alert.opened_at.isoformat(),
            "escalation_level": alert.escalation_level,
        },
    }


def enqueue_alert_notifications(uow: UnitOfWork, alert: Alert, event: str, now: dt.datetime) -> int:
    """Queue one delivery per active target of the stores to tell. Does not commit."""
    stores = _stores_to_tell(alert)
    if not stores:
        return 0
    targets = uow.session.scalars(
        select(NotificationTarget).where(
            NotificationTarget.store_id.in_(stores), NotificationTarget.active.is_(True)
        )
    )
    payload = alert_payload(alert, event)
    queued = 0
    for target in targets:
        if SEVERITY_RANK[alert.severity] < SEVERITY_RANK.get(target.min_severity, 0):
            continue
        uow.session.add(
            NotificationDelivery(
                alert_id=alert.id,
                target_id=target.id,
                event=event,
                payload=payload,
                state="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )
        queued += 1
    alert.last_notified_at = now
    alert.notifications_sent = (alert.notifications_sent or 0) + 1
    return queued


class UnsafeTarget(Invalid):
    """A webhook URL the service must not call (scheme, or an address inside the network)."""


def _networks(allowed: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [
        ipaddress.ip_network(part.strip(), strict=False)
        for part in allowed.split(",")
        if part.strip()
    ]


def _refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allowed: str) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if any(address in network for network in _networks(allowed)):
        return False
    # is_global is False for loopback, RFC 1918/fc00::/7, link-local, CGNAT, documentation ranges;
    # multicast is global for some ranges yet never a webhook receiver.
    return not address.is_global or address.is_multicast


def check_webhook_url(url: str, allowed_networks: str = "") -> list[str]:
    """Refuse (UnsafeTarget) a URL that is not http(s) or whose host resolves inside the network.

    Returns the resolved addresses. Called at registration and again before each delivery, so a
    name that later resolves to an internal address (DNS rebinding) is refused then too.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget(
            "a webhook must be an http:// or https:// URL with a host", field="address"
        )
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
    except (ValueError, OSError, UnicodeError) as exc:
        raise UnsafeTarget(f"cannot resolve the webhook's host: {exc}", field="address") from exc
    addresses = sorted({str(info[4][0]) for info in infos})  # an address string for IP
    for text in addresses:
        if _refused(ipaddress.ip_address(text.split("%")[0]), allowed_networks):
            raise UnsafeTarget(
                f"the webhook's host resolves to {text}, a loopback, private, link-local or "
                "reserved address (allow it in notify.allowed_networks)",
                field="address",
            )
    return addresses


def add_target(
    uow: UnitOfWork,
    *,
    store_id: int,
    channel: str,
    address: str,
    secret: str | None,
    min_severity: str = "warning",
    allowed_networks: str = "",
) -> NotificationTarget:
    """Register where a store's officers are told (webhooks: see check_webhook_url)."""
    if uow.session.get(Store, store_id) is None:
        raise NotFound(f"store {store_id} does not exist", field="store_id")
    if channel == "webhook":
        check_webhook_url(address, allowed_networks)
    if channel == "webhook" and not secret:
        raise Invalid("a webhook needs a secret to sign its deliveries", field="secret")
    exists = uow.session.scalar(
        select(NotificationTarget.id).where(
            NotificationTarget.store_id == store_id,
            NotificationTarget.channel == channel,
            NotificationTarget.address == address,
        )
    )
    if exists is not None:
        raise Conflict(f"store {store_id} already has this {channel} target", field="address")
    target = NotificationTarget(
        store_id=store_id,
        channel=channel,
        address=address,
        secret=secret,
        min_severity=min_severity,
        active=True,
    )
    uow.session.add(target)
    uow.session.flush()
    return target


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one try at sending gave."""

    ok: bool
    status_code: int | None = None
    error: str | None = None


def send_webhook(
    target: NotificationTarget,
    delivery_id: int,
    payload: dict[str, Any],
    timeout_s: float,
    clock: Callable[[], float] = time.time,
    allowed_networks: str = "",
) -> Outcome:
    """POST the signed JSON, stamped with the time of this try; any 2xx is a success.

    Unsafe addresses are refused, not called.
    """
    try:
        check_webhook_url(target.address, allowed_networks)
    except UnsafeTarget as exc:
        return Outcome(False, None, f"refused: {exc.detail}"[:500])
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(target.secret or "", body, int(clock())),
        "X-Coldchain-Delivery": str(delivery_id),
    }
    try:
        # No redirects: a 3xx to an internal address would go round the check above.
        response = requests.post(
            target.address, data=body, headers=headers, timeout=timeout_s, allow_redirects=False
        )
    except requests.RequestException as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
    ok = 200 <= response.status_code < 300
    return Outcome(ok, response.status_code, None if ok else response.text[:500])


def send_email(settings: Settings, target: NotificationTarget, payload: dict[str, Any]) -> Outcome:
    """Send the alert as a plain-text e-mail over SMTP (only when notify.smtp_host is set)."""
    if not settings.notify_smtp_host:
        return Outcome(False, None, "e-mail is not configured (notify.smtp_host is empty)")
    alert = payload["alert"]
    message = EmailMessage()
    message["From"], message["To"] = settings.notify_mail_from, target.address
    message["Subject"] = f"[coldchain {alert['severity']}] {payload['event']}: {alert['message']}"[
        :200
    ]
    message.set_content(json.dumps(payload, indent=2, sort_keys=True))
    try:
        with smtplib.SMTP(
            settings.notify_smtp_host,
            settings.notify_smtp_port,
            timeout=settings.notify_webhook_timeout_s,
        ) as smtp:
            if settings.notify_smtp_starttls:
                smtp.starttls()
            if settings.notify_smtp_user:
                smtp.login(settings.notify_smtp_user, settings.notify_smtp_password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        return Outcome(False, None, f"{type(exc).__name__}: {exc}"[:500])
    return Outcome(True, 250)


def _next_due(uow: UnitOfWork, now: dt.datetime) -> NotificationDelivery | None:
    query = (
        select(NotificationDelivery)
        .where(NotificationDelivery.state == "pending", NotificationDelivery.next_attempt_at <= now)
        .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.id)
        .limit(1)
    )
    if is_postgres(uow.session):
        # Another process sending at the same time skips the row this one holds.
        query = query.with_for_update(skip_locked=True, of=NotificationDelivery)
    return uow.session.scalars(query).first()


def _send(settings: Settings, delivery: NotificationDelivery) -> Outcome:
    if delivery.target.channel == "webhook":
        return send_webhook(
            delivery.target,
            delivery.id,
            delivery.payload,
            settings.notify_webhook_timeout_s,
            allowed_networks=settings.notify_allowed_networks,
        )
    return send_email(settings, delivery.target, delivery.payload)


def _record(
    delivery: NotificationDelivery,
    outcome: Outcome,
    settings: Settings,
    started: float,
    now: dt.datetime,
) -> None:
    delivery.attempts += 1
    if outcome.ok:
        delivery.state, delivery.sent_at = "sent", now
    elif delivery.attempts >= settings.notify_max_attempts:
        delivery.state = "failed"
    else:
        delivery.next_attempt_at = now + backoff(
            delivery.attempts, settings.notify_backoff_base_s, settings.notify_backoff_max_s
        )


def deliver_due(runtime: Runtime, now: dt.datetime | None = None, limit: int | None = None) -> int:
    """Send due deliveries one transaction each; return how many were tried."""
    limit = limit or runtime.settings.notify_batch_size
    tried = 0
    while tried < limit:
        with runtime.uow() as uow:
            at = now or dt.datetime.now(dt.UTC)
            delivery = _next_due(uow, at)
            if delivery is None:
                return tried
            started = time.perf_counter()
            outcome = _send(runtime.settings, delivery)
            _record(delivery, outcome, runtime.settings, started, at)
            uow.session.add(
                DeliveryAttempt(
                    delivery_id=delivery.id,
                    attempt=delivery.attempts,
                    at=at,
                    ok=outcome.ok,
                    status_code=outcome.status_code,
                    error=outcome.error,
                    duration_ms=(time.perf_counter() - started) * 1000,
                )
            )
            uow.commit()
            tried += 1
    return tried
