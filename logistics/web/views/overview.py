"""District and state: the session planner across centres, status tiles, and lot trace."""

from __future__ import annotations

from typing import Any

from flask import render_template, request
from sqlalchemy import select

from logistics.api import scope
from logistics.api.context import settings
from logistics.clock import local_date
from logistics.db import UnitOfWork
from logistics.domain.alerts import SUPPLY_KINDS, TEMPERATURE_KINDS
from logistics.domain.equipment import path_ids
from logistics.models.catalog import Lot, Store
from logistics.services import alerts as alerts_service
from logistics.services import availability, catalog, lookup, trace
from logistics.web import access
from logistics.web.blueprint import web

RANK = {None: 0, "info": 1, "warning": 2, "alarm": 3}
# Movements of a lot trace per page: a lot can have a million (issue 17), a phone on a slow link
# wants a page, and the API pages the same way (oldest first, on after the page's last entry).
MOVEMENTS_PAGE = 50


def _worst(alerts: list[tuple[str, str, int]], kinds: frozenset[str]) -> str | None:
    """The most severe open alert of these kinds (None: all clear), for a tile's colour."""
    found = [severity for kind, severity, _count in alerts if kind in kinds]
    return max(found, key=lambda s: RANK.get(s, 0)) if found else None


def _tiles(
    store: Store, children: list[Any], counts: list[tuple[str, str, str, int]]
) -> list[dict[str, Any]]:
    # Each count of open alerts to the child whose subtree holds it: the id after the store's own
    # in the path (one pass over the counts, not one per child).
    depth = len(path_ids(store.path))
    by_child: dict[str, list[tuple[str, str, int]]] = {str(child.id): [] for child in children}
    for path, kind, severity, count in counts:
        ids = path_ids(path)
        if len(ids) > depth and ids[depth] in by_child:
            by_child[ids[depth]].append((kind, severity, count))
    tiles = []
    for child in children:
        mine = by_child[str(child.id)]
        tiles.append(
            {
                "store": child,
                "stock": _worst(mine, SUPPLY_KINDS),
                "temperature": _worst(mine, TEMPERATURE_KINDS),
                "alerts": sum(count for _kind, _severity, count in mine),
            }
        )
    return tiles


@web.route("/overview/<int:store_id>")
def overview(store_id: int) -> str:
    """Each child store's stock and temperature status at a glance (the planner table follows)."""
    with access.read_uow() as uow:
        store = access.visible_store(uow, store_id)
        children = catalog.child_store_rows(uow, store_id)
        counts = alerts_service.open_alert_counts(uow, store_path=store.path)
        return render_template("overview.html", store=store, tiles=_tiles(store, children, counts))


@web.route("/overview/<int:store_id>/planner")
def overview_planner(store_id: int) -> str:
    """The session planner across the centres below: usable, in transit, promised, open seats.

    Fetched after the tiles are shown: for a district of a hundred centres it is the heavy part.
    """
    config = settings()
    today = local_date(access.now(), config.site_timezone)
    with access.read_uow() as uow:
        store = access.visible_store(uow, store_id)
        rows = availability.district_view(
            uow,
            district_id=store_id,
            on_date=today,
            today=today,
            window_days=config.sessions_consumption_window_days,
        )
        page = (
            "overview/_planner.html"
            if request.headers.get("HX-Request")
            else "overview_planner.html"
        )
        return render_template(page, store=store, today=today, rows=rows)


@web.route("/lots/trace")
@web.route("/lots/<int:lot_id>/trace")
def lot_trace(lot_id: int | None = None) -> str:
    """Where every dose of a lot is now: stores and units, in transit, and its movements."""
    number = (request.args.get("lot_number") or "").strip()[:64]
    with access.read_uow() as uow:
        matches: list[Lot] = []
        if lot_id is None and number:
            matches = list(uow.session.scalars(select(Lot).where(Lot.lot_number == number)))
            lot_id = matches[0].id if len(matches) == 1 else None
        after = request.args.get("after", type=int)
        after = after if after is not None and 0 < after < 2**62 else None
        # Cut to the user's stores exactly as the API's trace is (READ_SCOPES: filtered).
        found = (
            scope.lot_trace_within(_trace_page(uow, lot_id, after), access.visible_store_ids(uow))
            if lot_id
            else None
        )
        names = _store_names(uow, found) if found else {}
        return render_template(
            "trace.html", found=found, number=number, matches=matches, names=names, after=after
        )


def _trace_page(uow: UnitOfWork, lot_id: int, after: int | None) -> dict[str, Any]:
    """The trace with a page of movements; a next page only when there is one (one row more is
    read to know, so the last page is never an empty one)."""
    found = trace.lot_trace(uow, lot_id, limit=MOVEMENTS_PAGE + 1, after_entry_id=after)
    more = len(found["movements"]) > MOVEMENTS_PAGE
    movements = found["movements"][:MOVEMENTS_PAGE]
    return {
        **found,
        "movements": movements,
        "next_after_entry_id": movements[-1]["entry_id"] if more else None,
    }


def _store_names(uow: UnitOfWork, found: dict[str, Any]) -> dict[int, str]:
    """Names of the stores a trace shows (not of every store in the country)."""
    ids = {row["store_id"] for row in found["locations"]} | {
        row["store_id"] for row in found["movements"]
    }
    for shipment in found["in_transit"]:
        ids |= {shipment["from_store_id"], shipment["to_store_id"]}
    return lookup.store_names(uow, ids)
