"""Home: what needs the person now, across their subtree."""

from __future__ import annotations

from typing import Any

from flask import render_template

from logistics.api.context import settings
from logistics.clock import local_date
from logistics.services import alerts as alerts_service
from logistics.services import quarantine, sessions, stock
from logistics.web import access
from logistics.web.blueprint import web

STOCK_KINDS = ("stock_out", "below_min")


def _by_severity(alerts: list[Any]) -> dict[str, list[Any]]:
    grouped: dict[str, list[Any]] = {"alarm": [], "warning": [], "info": []}
    for alert in alerts:
        grouped.setdefault(alert.severity, []).append(alert)
    return grouped


@web.route("/")
def home() -> str:
    """Open alerts by severity, reviews waiting, shipments coming, stock-outs, sessions at risk."""
    with access.read_uow() as uow:
        path = access.subtree_path(uow)
        stores = access.home_stores(uow)
        alerts = alerts_service.open_alerts(uow, store_path=path)
        today = local_date(access.now(), settings().site_timezone)
        context = {
            "stores": stores,
            "alerts": _by_severity(alerts),
            "stock_alerts": [a for a in alerts if a.kind in STOCK_KINDS],
            "reviews": quarantine.list_reviews(uow, store_path=path, state="pending", limit=50),
            "shipments": stock.shipments_in_transit_to(uow, store_path=path, limit=50),
            "at_risk": sessions.sessions_at_risk(uow, store_path=path, from_date=today),
        }
        return render_template("home.html", **context)
