"""What part of the network the current reader may see (set by the auth guard, per request).

Most reads are checked before the view runs (logistics.domain.policy.READ_SCOPES). A few cross the
whole network by nature (a lot's trace, its thermal history): their views leave out the rows of
stores outside the reader's subtrees with these helpers.
"""

from __future__ import annotations

from typing import Any

from flask import g

from logistics.db import UnitOfWork
from logistics.services.lookup import store_ids_within


def visible_roots() -> tuple[str, ...] | None:
    """Paths of the subtrees the reader may see; None: the whole network."""
    return g.get("visible_roots")


def visible_store_ids(uow: UnitOfWork) -> set[int] | None:
    """Ids of the stores the reader may see; None: every store."""
    return store_ids_within(uow, visible_roots())


_TRIP_ENDS = ("from_store_id", "to_store_id")


def lot_trace_within(trace: dict[str, Any], stores: set[int] | None) -> dict[str, Any]:
    """A lot's trace cut down to these stores (None: unchanged); totals are of what is left."""
    if stores is None:
        return trace
    locations = [row for row in trace["locations"] if row["store_id"] in stores]
    in_transit, lost = (
        [row for row in trace[key] if {row["from_store_id"], row["to_store_id"]} & stores]
        for key in ("in_transit", "lost_in_transit")
    )
    return {
        **trace,
        "locations": locations,
        "in_transit": in_transit,
        "lost_in_transit": lost,
        "doses_in_stock": sum(row["doses"] for row in locations),
        "doses_in_transit": sum(row["doses"] for row in in_transit),
        "movements": [row for row in trace["movements"] if row["store_id"] in stores],
        # A trip's other end outside the reader's stores is not named (issue 18).
        "trips": [
            {**row, **{k: row[k] if row[k] in stores else None for k in _TRIP_ENDS}}
            for row in trace.get("trips", [])
            if {row["from_store_id"], row["to_store_id"]} & stores
        ],
    }


def thermal_history_within(history: dict[str, Any], stores: set[int] | None) -> dict[str, Any]:
    """A lot's thermal history cut down to its stays in these stores (None: unchanged).

    The lot's MKT stays whole: it is a property of the doses (how much heat they took), which
    every holder of the lot needs to judge it, and it names no store.
    """
    if stores is None:
        return history
    return {**history, "stays": [s for s in history["stays"] if s["store_id"] in stores]}
