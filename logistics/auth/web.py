"""The Flask side of auth: one before-request hook authenticates, authorises and rate-limits.

Every request passes through `guard`: public endpoints are only rate-limited; every other one
needs a bearer token (401 otherwise); a write must be allowed by the policy table over the store
it acts on (403 otherwise). Views never check permissions themselves.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import limits
import limits.storage
import limits.strategies
from flask import Flask, Response, g, has_request_context, request

from logistics import clock
from logistics.api.context import current_actor, new_uow
from logistics.api.problems import problem_response
from logistics.config import Settings
from logistics.db import UnitOfWork, read_only
from logistics.domain import policy
from logistics.domain.errors import DomainError, Forbidden, Unauthorized
from logistics.services import secrets
from logistics.services.audit import AuditContext, install_audit
from logistics.services.auth import Principal, access_epoch, authenticate, store_path_of

log = logging.getLogger(__name__)
REALM = "coldchain"
BEARER = "bearerAuth"
# Writes after which this worker forgets the tokens it checked recently.
CHANGES_TO_ACCESS = frozenset({"auth.Logout", "auth.TokenItem", "auth.UserItem"})
EXTENSION = "coldchain.auth"
STRATEGIES = {
    "fixed-window": limits.strategies.FixedWindowRateLimiter,
    "sliding-window-counter": limits.strategies.SlidingWindowCounterRateLimiter,
    "moving-window": limits.strategies.MovingWindowRateLimiter,
}


class RateLimit:
    """A per-client-address limit on public calls, counted in a store shared by the workers."""

    def __init__(self, settings: Settings):
        spec = settings.auth_rate_limit.strip()
        self.item = limits.parse(spec) if spec else None
        self.limiter = None
        if self.item is not None:
            storage = limits.storage.storage_from_string(
                settings.auth_rate_limit_storage, key_prefix=settings.auth_rate_limit_key_prefix
            )
            self.limiter = STRATEGIES[settings.auth_rate_limit_strategy](storage)

    def retry_after_s(self, key: str) -> int | None:
        """Count a call; None when it is within the limit, else seconds until the window frees."""
        if self.limiter is None or self.item is None:
            return None
        try:
            if self.limiter.hit(self.item, key):
                return None
            reset_at = self.limiter.get_window_stats(self.item, key).reset_time
        except Exception:  # counter store down: keep public reads answering rather than fail them
            log.warning("rate-limit store unavailable; call let through", exc_info=True)
            return None
        return max(1, math.ceil(reset_at - time.time()))


def client_address(hops: int) -> str:
    """The caller's address; behind `hops` trusted proxies, taken from X-Forwarded-For."""
    if hops > 0:
        forwarded = [part.strip() for part in request.headers.get("X-Forwarded-For", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.remote_addr or "unknown"


def _problem(error: DomainError, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return problem_response(
        error.status, error.detail, title=error.title, slug=error.slug, headers=headers, **extra
    )


def _challenge(error: Unauthorized | None = None) -> str:
    if error is None or "reason" not in error.extra:
        return f'Bearer realm="{REALM}"'
    detail = error.detail.replace('"', "'")
    return f'Bearer realm="{REALM}", error="{error.extra["reason"]}", error_description="{detail}"'


def _bearer_token() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("log in (POST /api/auth/login); send 'Authorization: Bearer <token>'")
    return token.strip()


def _json_values(target: policy.Target) -> list[Any]:
    data = request.get_json(silent=True)
    items = data if isinstance(data, list) else [data]
    values = [item.get(target.name) if isinstance(item, dict) else None for item in items]
    if target.optional:
        return [value for value in values if value is not None]
    return values or [None]


def _target_values(target: policy.Target) -> list[Any]:
    """Values naming this target's store in the request; [None] when a required one is missing."""
    if target.source == "view":
        return [(request.view_args or {}).get(target.name)]
    if target.source == "query":
        return request.args.getlist(target.name) or ([] if target.optional else [None])
    return _json_values(target)


def _target_paths(uow: UnitOfWork, rule: policy.Rule) -> list[str | None]:
    return [
        store_path_of(uow.session, target.kind, value)
        for target in rule.targets
        for value in _target_values(target)
    ]


def _authorize_write(uow: UnitOfWork, principal: Principal, endpoint: str, method: str) -> None:
    rule = policy.write_rule(endpoint, method)
    # Network-wide grants (admins) need no lookup of the store the request acts on.
    if policy.allows(principal.grants, rule, []):
        return
    if (
        rule.network
        or not rule.targets
        or not policy.allows(principal.grants, rule, _target_paths(uow, rule))
    ):
        raise Forbidden(
            f"your roles do not allow '{rule.permission}' on what this request acts on",
            permission=str(rule.permission),
        )


def _authorize_read(uow: UnitOfWork, principal: Principal, endpoint: str) -> None:
    permission = policy.read_permission(endpoint)
    if not policy.may_read(principal.grants, permission):
        raise Forbidden(f"reading this needs '{permission}'", permission=str(permission))
    g.visible_roots = policy.visible_roots(principal.grants)
    if g.visible_roots is None:
        return  # a network-wide grant reads everything
    scope = policy.read_scope(endpoint)
    if scope.network or scope.filtered:
        return
    given = [(target, value) for target in scope.targets for value in _target_values(target)]
    if not given:
        names = ", ".join(t.name for t in scope.targets) or "a store"
        raise Forbidden(
            f"your roles cover part of the network: narrow this read to one of your "
            f"stores ({names})",
            permission="read",
        )
    for target, value in given:
        if value is None and target.source == "query":
            continue  # a required parameter left out: the view's schema answers 422
        if not policy.sees(principal.grants, store_path_of(uow.session, target.kind, value)):
            raise Forbidden(
                f"'{target.name}' names something outside the stores your roles cover",
                permission="read",
            )


def _rate_limited(endpoint: str, method: str) -> Response | None:
    if not policy.is_rate_limited(endpoint, method, request.path):
        return None
    bucket = "login" if endpoint == "auth.Login" else "public"
    wait_s = _state().rate_limit.retry_after_s(f"{bucket}:{g.client_address}")
    if wait_s is None:
        return None
    return problem_response(
        429,
        f"too many requests from this address; retry in {wait_s} s",
        slug="rate-limited",
        headers={"Retry-After": str(wait_s)},
    )


def principal_of(uow: UnitOfWork, token: str) -> Principal:
    """Who holds this token: cached for a few seconds per worker, checked against the access
    epoch on every call (the API's bearer tokens and the pages' session tokens alike)."""
    cache, key, now = _state().tokens, secrets.token_hash(token), clock.utcnow()
    # Read before the token: a revocation committed after this read moves the epoch again, so the
    # principal cached below is dropped on the next request (issue 12: immediate on every worker).
    cache.sync(access_epoch(uow.session))
    principal = cache.get(key, now)
    if principal is None:
        principal = authenticate(uow, token, now)
        cache.put(key, principal)
    return principal


def guard() -> Response | None:
    """Authenticate, authorise and rate-limit the request, before its view runs."""
    endpoint = request.endpoint
    if endpoint is None or request.method == "OPTIONS":
        return None  # routing answers 404/405 itself
    method = "GET" if request.method == "HEAD" else request.method
    g.client_address = client_address(_state().proxy_hops)
    if request.blueprint == "web":
        # The pages log in with a session cookie (logistics.web.access); their login form
        # shares the API login's per-address limit.
        if endpoint == "web.login" and method == "POST":
            return _rate_limited("auth.Login", method)
        return None
    if policy.is_public(endpoint, method, request.path):
        return _rate_limited(endpoint, method)
    try:
        token = _bearer_token()
        # One session for the token and the stores the request names, reading in autocommit.
        with new_uow() as uow:
            read_only(uow)
            g.principal = principal_of(uow, token)
            g.actor = g.principal.username
            if method in policy.WRITE_METHODS:
                _authorize_write(uow, g.principal, endpoint, method)
            else:
                _authorize_read(uow, g.principal, endpoint)
    except Unauthorized as error:
        return _problem(error, headers={"WWW-Authenticate": _challenge(error)})
    except Forbidden as error:
        return _problem(error, **error.extra)
    return None


def after_request(response: Response) -> Response:
    """Name the scheme on every 401 (RFC 9110 15.5.2); forget cached tokens after auth changes."""
    if response.status_code == 401 and "WWW-Authenticate" not in response.headers:
        response.headers["WWW-Authenticate"] = _challenge()
    if request.endpoint in CHANGES_TO_ACCESS and request.method in policy.WRITE_METHODS:
        _state().tokens.clear()  # a revoked token, a disabled user or new roles apply at once
    return response


def audit_context() -> AuditContext | None:
    """Who writes, for the audit log: the request's user and address (None outside requests)."""
    if not has_request_context():
        return None
    address = g.get("client_address") or request.remote_addr
    return AuditContext(
        actor=current_actor(), address=address, method=request.method, endpoint=request.endpoint
    )


class TokenCache:
    """Principals of recently checked tokens, by token hash, for a few seconds (per worker).

    Valid only for one access epoch: `sync` empties it as soon as the epoch in the database moved.
    """

    def __init__(
        self, ttl_s: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ):
        self.ttl_s, self.max_entries, self.clock = ttl_s, max_entries, clock
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()
        self.epoch: int | None = None

    def sync(self, epoch: int) -> None:
        """Forget everything when access changed anywhere since the entries were checked."""
        if epoch != self.epoch:
            with self._lock:
                self._entries.clear()
                self.epoch = epoch

    def get(self, key: str, now: dt.datetime) -> Principal | None:
        """The cached principal, unless too old or its token has expired since."""
        entry = self._entries.get(key)
        if entry is None or self.clock() - entry[0] > self.ttl_s:
            return None
        principal = entry[1]
        return principal if principal.expires_at and principal.expires_at > now else None

    def put(self, key: str, principal: Principal) -> None:
        """Remember a principal just read from the database."""
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = (self.clock(), principal)

    def clear(self) -> None:
        """Forget everything (after any change to users, roles or tokens)."""
        with self._lock:
            self._entries.clear()


class AuthState:
    """What the hooks keep per app."""

    def __init__(self, settings: Settings):
        self.rate_limit = RateLimit(settings)
        self.proxy_hops = settings.auth_proxy_hops
        self.tokens = TokenCache(settings.auth_token_cache_s)


def _state() -> AuthState:
    from flask import current_app

    return current_app.extensions[EXTENSION]


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _operation_doc(endpoint: str, method: str, path: str, ref: Any) -> dict[str, Any]:
    """The security and error responses the guard adds to one operation."""
    method = method.upper()
    if policy.is_public(endpoint, method, path):
        limited = policy.is_rate_limited(endpoint, method, path)
        return {"security": [], "responses": {"429": ref("TOO_MANY_REQUESTS")} if limited else {}}
    responses = {"401": ref("UNAUTHORIZED")}
    if (
        method in policy.WRITE_METHODS
        or not policy.read_scope(endpoint).network
        or policy.read_permission(endpoint)
    ):
        responses["403"] = ref("FORBIDDEN")
    return {"security": [{BEARER: []}], "responses": responses}


def document_security(app: Flask) -> None:
    """Say in the OpenAPI document which operations need a bearer token and what they may answer."""
    api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    api.spec.components.security_scheme(BEARER, {"type": "http", "scheme": "bearer"})
    endpoints = {
        (_openapi_path(r.rule), m.lower()): r.endpoint
        for r in app.url_map.iter_rules()
        for m in r.methods or ()
    }
    ref = functools.partial(api.spec.components.get_ref, "response")
    for path, operations in api.spec._paths.items():  # apispec keeps no public accessor
        for method, operation in operations.items():
            endpoint = endpoints.get((path, method))
            if endpoint is None or not isinstance(operation, dict):
                continue
            doc = _operation_doc(endpoint, method, path, ref)
            operation["security"] = doc["security"]
            for status, response in doc["responses"].items():
                operation.setdefault("responses", {}).setdefault(status, response)


def init_auth(app: Flask) -> None:
    """Enforce authentication, the policy, the rate limit and the audit log on this app."""
    runtime = app.extensions["coldchain"]
    app.extensions[EXTENSION] = AuthState(runtime.settings)
    install_audit(runtime.session_factory, audit_context)
    document_security(app)
    app.before_request(guard)
    app.after_request(after_request)
