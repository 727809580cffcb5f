"""A lot's journey (issue 18): every stay and trip on one chart, MKT and minutes outside per leg."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import abort, render_template, request
from flask_babel import gettext as _

from logistics.api.context import settings
from logistics.api.transit import within
from logistics.domain.errors import NotFound
from logistics.services import journeys
from logistics.web import access
from logistics.web.blueprint import web

RANGES = {"7d": dt.timedelta(days=7), "30d": dt.timedelta(days=30), "90d": dt.timedelta(days=90)}
MAX_POINTS = 600


def _range() -> str:
    chosen = request.args.get("range", "7d")
    return chosen if chosen in RANGES else "7d"


def _label(leg: dict[str, Any]) -> str:
    if leg["kind"] == "stay":
        return f"{leg['unit_code']} · {leg['store_code']}"
    carrier = leg["unit_code"] or _("no carrier named")
    return _(
        "Trip %(from)s → %(to)s in %(carrier)s",
        **{
            "from": leg["from_store_code"] or "—",
            "to": leg["to_store_code"] or "—",
            "carrier": carrier,
        },
    )


def _stamp(at: dt.datetime) -> int:
    return int(at.timestamp())


def chart_data(
    journey: dict[str, Any], series: list[dict[int, float]], width_s: int
) -> dict[str, Any]:
    """What journey.js draws: a line per leg, trips and excursions to shade, the safe band."""
    t = sorted({ts for points in series for ts in points})
    legs = journey["legs"]
    return {
        "t": t,
        "series": [[points.get(ts) for ts in t] for points in series],
        "legs": [{"label": _label(leg), "kind": leg["kind"]} for leg in legs],
        "trips": [
            [_stamp(leg["from"]), _stamp(leg["to"])] for leg in legs if leg["kind"] == "trip"
        ],
        "excursions": [
            [
                _stamp(max(x.started_at, leg["from"])),
                _stamp(min(x.ended_at or leg["to"], leg["to"])),
            ]
            for leg in legs
            for x in leg["excursions"]
        ],
        "band": [journey["min_temp_c"], journey["max_temp_c"]],
        "start": _stamp(journey["start"]),
        "end": _stamp(journey["end"]),
        "bucket_s": width_s,
        "tz": settings().site_timezone,
    }


@web.route("/lots/<int:lot_id>/journey")
def lot_journey(lot_id: int) -> str:
    """Where the lot's doses stayed and travelled, and what temperatures they went through."""
    chosen = _range()
    end = access.now()
    start = end - RANGES[chosen]
    width_s = max(60, int(RANGES[chosen].total_seconds()) // MAX_POINTS)
    with access.read_uow() as uow:
        try:
            journey = journeys.lot_journey(uow, settings(), lot_id=lot_id, start=start, end=end)
        except NotFound:
            abort(404)
        journey = within(journey, access.visible_store_ids(uow))
        chart = chart_data(journey, journeys.journey_series(uow, journey, width_s), width_s)
        return render_template(
            "journey.html", journey=journey, chart=chart, range=chosen, ranges=list(RANGES)
        )
