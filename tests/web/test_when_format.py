"""Timestamps on the pages: babel's Indian patterns, looked up once per language and style."""

from __future__ import annotations

import datetime as dt

import pytest

pytestmark = pytest.mark.integration

# 20:00 UTC on 1 Dec 2026 is 01:30 on 2 Dec in the site zone (Asia/Kolkata), as CLDR writes it.
SHOWN = {
    ("en", "short"): "02/12/26, 1:30\u202fAM",
    ("en", "medium"): "2 Dec 2026, 1:30:00\u202fAM",
    ("hi", "short"): "2/12/26, 1:30 am",
    ("hi", "medium"): "2 दिस॰ 2026, 1:30:00 am",
}


@pytest.mark.parametrize(("language", "style"), list(SHOWN))
def test_a_timestamp_is_shown_in_the_site_zone_with_the_languages_pattern(app, language, style):
    from logistics.web import i18n

    with app.test_request_context("/", headers={"Accept-Language": language}):
        at = dt.datetime(2026, 12, 1, 20, 0, tzinfo=dt.UTC)
        assert i18n.datetime(at, style) == SHOWN[(language, style)]
        # The same instant given in another zone, or naive (taken as UTC), reads the same.
        assert (
            i18n.datetime(at.astimezone(dt.timezone(dt.timedelta(hours=-5))), style)
            == SHOWN[(language, style)]
        )
        assert i18n.datetime(at.replace(tzinfo=None), style) == SHOWN[(language, style)]


DAYS = {
    ("en", "short"): "02/12/26",
    ("en", "medium"): "2 Dec 2026",
    ("hi", "short"): "2/12/26",
    ("hi", "medium"): "2 दिस॰ 2026",
}


@pytest.mark.parametrize(("language", "style"), list(DAYS))
def test_a_day_is_shown_with_the_languages_pattern_each_time(app, language, style):
    from logistics.web import i18n

    with app.test_request_context("/", headers={"Accept-Language": language}):
        day = dt.date(2026, 12, 2)
        assert [i18n.date(day, style) for _ in range(3)] == [DAYS[(language, style)]] * 3
        assert i18n.date(day, "d MMM") == DAYS[(language, "medium")].rsplit(" ", 1)[0]
