"""Storage unit: the temperature chart (24 h, 7 d, 30 d), MKT, and the sensor's state."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import render_template, request, url_for

from logistics.api.context import settings
from logistics.db import UnitOfWork
from logistics.domain.errors import NotFound
from logistics.services import catalog, excursions, readings, thermal
from logistics.web import access
from logistics.web.blueprint import web

# Range shown -> bucket width; each point is a bucket's min/avg/max, so a one-minute spike
# still shows. A day in five-minute buckets is 288 points (a phone's chart is 360 px wide, and
# one-minute buckets sent 1,440 points, five times the bytes and the page's slowest part).
# Beyond two days the buckets are whole hours from the hourly aggregates (at most 2,000 points).
RANGES = {
    "24h": (dt.timedelta(hours=24), 300),
    "7d": (dt.timedelta(days=7), 600),
    "30d": (dt.timedelta(days=30), 1800),
}
MAX_POINTS = 2000


def visible_unit(uow: UnitOfWork, unit_id: int) -> Any:
    """The unit, if the user may see its store."""
    unit = catalog.unit_with_store(uow, unit_id) if 0 < unit_id < 2**31 else None
    if unit is None:
        raise NotFound(f"no unit {unit_id}")
    access.visible_store(uow, unit.store_id)
    return unit


def chart_data(
    uow: UnitOfWork, unit: Any, start: dt.datetime, end: dt.datetime, width_s: int
) -> dict[str, Any]:
    """What the chart draws: buckets, the safe band, the excursions to shade (all from services)."""
    width_s = max(width_s, int((end - start).total_seconds() // MAX_POINTS) + 1)
    after = dt.timedelta(days=settings().readings_aggregate_after_days)
    series = readings.unit_chart_series(uow, unit.id, start, end, width_s, after)
    found = excursions.unit_excursions_within(uow, unit.id, start, end)
    return {
        "t": list(series.t),
        "avg": [round(x, 2) for x in series.avg],
        "min": [round(x, 2) for x in series.low],
        "max": [round(x, 2) for x in series.high],
        "band": [unit.min_temp_c, unit.max_temp_c],
        "excursions": [
            [
                int(max(x.started_at, start).timestamp()),
                int(min(x.ended_at or end, end).timestamp()),
                x.kind,
            ]
            for x in found
        ],
        "start": int(start.timestamp()),
        "end": int(end.timestamp()),
        "bucket_s": series.width_s,
        "tz": settings().site_timezone,
        "summary": {
            "low": min(series.low, default=None),
            "high": max(series.high, default=None),
            "excursions": found,
        },
    }


def _range() -> str:
    chosen = request.args.get("range", "24h")
    return chosen if chosen in RANGES else "24h"


def _unit_chart(uow: UnitOfWork, unit: Any, chosen: str) -> dict[str, Any]:
    span, width_s = RANGES[chosen]
    end = access.now()
    return {
        "chart": chart_data(uow, unit, end - span, end, width_s),
        "range": chosen,
        "ranges": list(RANGES),
        "mkt_url": url_for("web.unit_mkt", unit_id=unit.id, range=chosen),
    }


@web.route("/units/<int:unit_id>")
def unit(unit_id: int) -> str:
    """A unit's temperatures, MKT and sensor."""
    with access.read_uow() as uow:
        found = visible_unit(uow, unit_id)
        chart = _unit_chart(uow, found, _range())
        sensors = readings.unit_sensors(uow, unit_id, access.now())
        return render_template("unit.html", unit=found, store=found.store, sensors=sensors, **chart)


@web.route("/units/<int:unit_id>/chart")
def unit_chart(unit_id: int) -> str:
    """The chart alone, for another range (htmx swaps it in place)."""
    with access.read_uow() as uow:
        found = visible_unit(uow, unit_id)
        return render_template("units/_chart.html", unit=found, **_unit_chart(uow, found, _range()))


@web.route("/units/<int:unit_id>/mkt")
def unit_mkt(unit_id: int) -> str:
    """MKT over the chosen range; fetched after the chart is shown (30 days of readings: the
    slowest figure of the page, so the chart never waits for it)."""
    chosen = _range()
    end = access.now()
    with access.read_uow() as uow:
        visible_unit(uow, unit_id)
        mkt = thermal.unit_mkt(
            uow, settings(), unit_id=unit_id, start=end - RANGES[chosen][0], end=end
        )
        return render_template("units/_mkt.html", mkt=mkt, range=chosen)


@web.app_template_filter("tojson_chart")
def tojson_chart(chart: dict[str, Any]) -> Any:
    """The chart's data as JSON for a <script type="application/json"> (no '<' inside)."""
    import json

    from markupsafe import Markup

    data = {key: value for key, value in chart.items() if key != "summary"}
    return Markup(json.dumps(data, separators=(",", ":")).replace("<", "\\u003c"))
