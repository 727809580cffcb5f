"""The per-worker cache of checked tokens never outlives a token's expiry or its own time."""

from __future__ import annotations

import datetime as dt

from logistics.auth.web import TokenCache
from logistics.services.auth import Principal

NOW = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)


def _principal(expires_at: dt.datetime) -> Principal:
    return Principal(1, "asha", (), 7, expires_at)


def test_a_cached_principal_is_returned_until_its_token_expires():
    cache = TokenCache(ttl_s=60)
    cache.put("h", _principal(NOW + dt.timedelta(minutes=1)))
    assert cache.get("h", NOW).username == "asha"
    assert cache.get("h", NOW + dt.timedelta(minutes=1)) is None


def test_entries_older_than_the_cache_time_are_not_used():
    clock = iter([100.0, 100.5, 102.0])
    cache = TokenCache(ttl_s=1, clock=lambda: next(clock))
    cache.put("h", _principal(NOW + dt.timedelta(hours=1)))
    assert cache.get("h", NOW) is not None
    assert cache.get("h", NOW) is None


def test_a_zero_cache_time_keeps_nothing_and_clear_forgets_all():
    off = TokenCache(ttl_s=0)
    off.put("h", _principal(NOW + dt.timedelta(hours=1)))
    assert off.get("h", NOW) is None
    on = TokenCache(ttl_s=60)
    on.put("h", _principal(NOW + dt.timedelta(hours=1)))
    on.clear()
    assert on.get("h", NOW) is None
