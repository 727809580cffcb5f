"""A lot's movements and its trace come a page at a time, through the HTTP API (issue 17)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from tests.support.ledger import build_network

pytestmark = pytest.mark.integration
START = dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def net(uow):
    return build_network(uow, dt.datetime.now(dt.UTC).date())


def receive(client, net, lot, doses, minutes):
    client_id = uuid.uuid4().hex
    response = client.post(
        "/api/receipts",
        json={
            "client_id": client_id,
            "store_id": net.state,
            "unit_id": net.state_ilr,
            "lot_id": lot,
            "doses": doses,
            "occurred_at": (START + dt.timedelta(minutes=minutes)).isoformat(),
        },
    )
    assert response.status_code == 201, response.json
    return response.json["id"]


@pytest.fixture
def five_receipts(client, net):
    """Receipts of 1..5 doses of one lot, recorded out of time order, another lot's between."""
    ids = {}
    for doses, minutes in ((3, 30), (1, 10), (5, 50), (2, 20), (4, 40)):
        ids[doses] = receive(client, net, net.lot_late, doses, minutes)
        receive(client, net, net.lot_early, 7, minutes)
    return ids


def test_a_lots_movements_come_newest_first_two_by_two(client, net, five_receipts):
    url = f"/api/movements?lot_id={net.lot_late}&limit=2"
    pages, before = [], None
    while True:
        response = client.get(url + (f"&before_id={before}" if before else ""))
        assert response.status_code == 200, response.json
        if not response.json:
            break
        pages.append([sum(e["doses"] for e in m["entries"]) for m in response.json])
        before = response.json[-1]["id"]
    # Newest recorded first: recorded 3, 1, 5, 2, 4.
    assert pages == [[4, 2], [5, 1], [3]]


def test_a_lots_trace_comes_oldest_first_a_page_at_a_time(client, net, five_receipts):
    url = f"/api/lots/{net.lot_late}/trace?limit=2"
    pages, after = [], None
    while True:
        response = client.get(url + (f"&after_entry_id={after}" if after else ""))
        assert response.status_code == 200, response.json
        pages.append([row["doses"] for row in response.json["movements"]])
        after = response.json["next_after_entry_id"]
        if after is None:
            break
    # In the order the doses moved (occurred_at), not the order they were recorded.
    assert pages == [[1, 2], [3, 4], [5]]
    assert response.json["doses_in_stock"] == 15


def test_the_trace_pages_up_to_500_movements(client, net):
    response = client.get(f"/api/lots/{net.lot_late}/trace?limit=501")
    assert response.status_code == 422
    assert "limit" in response.json["errors"]


def test_a_stores_recent_movements_sum_their_entries_newest_first(app, client, net, five_receipts):
    """The store page's table: one line a movement, its entries' doses added up (a transfer
    between two units of the store: 0), the newest first, as many as asked."""
    moved = client.post(
        "/api/transfers",
        json={
            "client_id": uuid.uuid4().hex,
            "store_id": net.state,
            "from_unit_id": net.state_ilr,
            "to_unit_id": net.state_wic,
            "lot_id": net.lot_late,
            "doses": 3,
            "occurred_at": (START + dt.timedelta(minutes=60)).isoformat(),
        },
    )
    assert moved.status_code == 201, moved.json
    from logistics.db import UnitOfWork
    from logistics.services.stock import recent_movements

    with UnitOfWork(app.extensions["coldchain"].session_factory) as uow:
        lines = recent_movements(uow, store_id=net.state, limit=4)
    # Recorded last: the transfer; before it the receipts of (4 late, 7 early), (2 late, 7 early).
    assert [(line.kind, line.doses) for line in lines] == [
        ("transfer", 0),
        ("receipt", 7),
        ("receipt", 4),
        ("receipt", 7),
    ]
    assert lines[0].id == moved.json["id"]
    assert lines[2].id == five_receipts[4]
    assert [line.occurred_at for line in lines[:3]] == [
        START + dt.timedelta(minutes=60),
        START + dt.timedelta(minutes=40),
        START + dt.timedelta(minutes=40),
    ]
