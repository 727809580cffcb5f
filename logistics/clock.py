"""The one clock of the service, and the site's calendar date.

Business rules never read the clock: the edges (views, jobs, the ingestion) call `utcnow()` once
and pass `now` down.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


def utcnow() -> dt.datetime:
    """The current time, timezone-aware (UTC)."""
    return dt.datetime.now(dt.UTC)


def local_date(now: dt.datetime, site_timezone: str | None) -> dt.date:
    """The calendar date at the site (session dates and expiry dates are site dates)."""
    return now.astimezone(ZoneInfo(site_timezone) if site_timezone else dt.UTC).date()
