"""An alert's text in the reader's language, with times in the site's time zone.

The service stores each alert's message in English for machines, logs and webhooks (UTC times in
ISO 8601). The pages say the same from the alert's kind and details instead: translated, numbers
grouped the Indian way, times shown where the store is. A kind or detail this module does not know
falls back to the stored message, so a new kind of alert is never shown blank.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from logistics.web.i18n import date, datetime, number


def _time(value: Any) -> str:
    return datetime(dt.datetime.fromisoformat(value)) if isinstance(value, str) else "—"


def _day(value: Any) -> str:
    return date(dt.date.fromisoformat(value)) if isinstance(value, str) else "—"


def _logger(d: Mapping[str, Any]) -> str:
    return _(" (logger %(sensor)s)", sensor=d["sensor_id"]) if d.get("sensor_id") else ""


def _excursion(words: Any) -> Callable[[Mapping[str, Any]], str]:
    def text(d: Mapping[str, Any]) -> str:
        return _(
            "%(what)s%(logger)s since %(start)s: %(minutes)s min outside the safe range, "
            "peak %(peak)s °C.",
            what=str(words),
            logger=_logger(d),
            start=_time(d["started_at"]),
            minutes=number(d["minutes_outside"]),
            peak=number(d["peak_temp_c"], 1),
        )

    return text


def _silent(d: Mapping[str, Any]) -> str:
    return _(
        "Logger %(sensor)s in %(unit)s has sent nothing since %(last)s.",
        sensor=d["sensor_id"],
        unit=d["unit_code"],
        last=_time(d["last_reading_ts"]),
    )


def _battery(d: Mapping[str, Any]) -> str:
    return _(
        "Logger %(sensor)s: battery at %(pct)s%%.",
        sensor=d["sensor_id"],
        pct=number(d["battery_pct"]),
    )


def _power_off(d: Mapping[str, Any]) -> str:
    return _(
        "Power off at %(unit)s (logger %(sensor)s).", unit=d["unit_code"], sensor=d["sensor_id"]
    )


def _power_failure(d: Mapping[str, Any]) -> str:
    return _(
        "Mains power lost at %(unit)s: logger %(sensor)s on battery since %(since)s.",
        unit=d["unit_code"],
        sensor=d["sensor_id"],
        since=_time(d["on_battery_since"]),
    )


def _expiry(expired: bool) -> Callable[[Mapping[str, Any]], str]:
    def text(d: Mapping[str, Any]) -> str:
        if expired:
            return _(
                "Lot %(lot)s expired on %(day)s: %(doses)s doses still on hand.",
                lot=d["lot_number"],
                day=_day(d["expiry_date"]),
                doses=number(d["doses"]),
            )
        return _(
            "Lot %(lot)s expires on %(day)s: %(doses)s doses on hand.",
            lot=d["lot_number"],
            day=_day(d["expiry_date"]),
            doses=number(d["doses"]),
        )

    return text


def _stock(d: Mapping[str, Any]) -> str:
    return _(
        "%(product)s: %(doses)s usable doses on hand (minimum %(low)s, maximum %(high)s).",
        product=d["product"],
        doses=number(d["doses"]),
        low=number(d.get("min_doses")),
        high=number(d.get("max_doses")),
    )


def _indent(d: Mapping[str, Any]) -> str:
    return _(
        "Indent %(id)s for %(doses)s doses, needed by %(day)s, is unanswered.",
        id=d["indent_id"],
        doses=number(d["doses"]),
        day=_day(d["needed_by"]),
    )


def _overcommitted(d: Mapping[str, Any]) -> str:
    listing = "; ".join(
        _(
            "session %(id)s on %(day)s short by %(doses)s",
            id=s["session_id"],
            day=_day(s["date"]),
            doses=number(s["short_doses"]),
        )
        for s in d["sessions"]
    )
    return _(
        "Usable stock no longer covers %(n)s session(s): %(list)s.",
        n=number(len(d["sessions"])),
        list=listing,
    )


# Built once: the words of the excursion kinds are lazy, translated when an alert is said.
_TEXTS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "heat_warning": _excursion(_l("Heat warning")),
    "heat_alarm": _excursion(_l("Heat alarm")),
    "cold_warning": _excursion(_l("Cold warning")),
    "cold_alarm": _excursion(_l("Freeze alarm")),
    "sensor_silent": _silent,
    "sensor_low_battery": _battery,
    "sensor_power_off": _power_off,
    "power_failure": _power_failure,
    "lot_expired": _expiry(True),
    "lot_expiring": _expiry(False),
    "stock_out": _stock,
    "below_min": _stock,
    "above_max": _stock,
    "indent_unanswered": _indent,
    "sessions_overcommitted": _overcommitted,
}


def describe(alert: Any) -> str:
    """The alert's text for the pages; its stored message when its kind or details are unknown."""
    text = _TEXTS.get(alert.kind)
    details = alert.details if isinstance(getattr(alert, "details", None), Mapping) else None
    if text is None or details is None:
        return str(alert.message)
    try:
        return text(details)
    except (KeyError, TypeError, ValueError):
        return str(alert.message)
