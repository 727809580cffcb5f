"""Concurrent writes and retries on PostgreSQL: no overdraw, one movement per idempotency key."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from logistics.models.stock import LedgerEntry, Movement, StockBalance
from logistics.services import stock
from tests.support.ledger import build_network, receive

pytestmark = pytest.mark.integration


@pytest.fixture
def net(uow):
    import datetime as dt

    return build_network(uow, dt.datetime.now(dt.UTC).date())


def _clients(app, client, count):
    made = []
    for _ in range(count):
        twin = app.test_client()
        twin.environ_base.update(client.environ_base)
        made.append(twin)
    return made


def _all_at_once(calls):
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def _running_balances_never_negative(uow, unit, lot):
    query = (
        select(LedgerEntry.doses)
        .where(LedgerEntry.unit_id == unit, LedgerEntry.lot_id == lot)
        .order_by(LedgerEntry.occurred_at, LedgerEntry.id)
    )
    running, lowest = 0, 0
    for doses in uow.session.scalars(query):
        running += doses
        lowest = min(lowest, running)
    return lowest >= 0


def test_fifty_concurrent_issues_never_overdraw(app, client, runtime, net):
    with runtime.uow() as uow:
        receive(uow, net, net.state_ilr, net.lot_late, 1000)
    clients = _clients(app, client, 50)
    calls = [
        lambda c=c: c.post(
            "/api/issues",
            json={
                "client_id": uuid.uuid4().hex,
                "store_id": net.state,
                "to_store_id": net.district,
                "lot_id": net.lot_late,
                "doses": 30,
            },
        )
        for c in clients
    ]
    statuses = [response.status_code for response in _all_at_once(calls)]
    accepted = statuses.count(201)
    assert accepted == 1000 // 30 and statuses.count(409) == 50 - accepted
    with runtime.uow() as uow:
        held = uow.session.scalars(
            select(StockBalance).where(StockBalance.unit_id == net.state_ilr)
        ).one()
        assert held.doses == 1000 - 30 * accepted
        stored = {(b.unit_id, b.lot_id): b.doses for b in uow.session.scalars(select(StockBalance))}
        assert stock.ledger_sums(uow) == stored
        assert _running_balances_never_negative(uow, net.state_ilr, net.lot_late)
        issues = uow.session.scalar(select(func.count()).where(Movement.kind == "issue"))
        assert issues == accepted


def test_fifty_concurrent_issues_through_services_with_own_sessions(runtime, net):
    with runtime.uow() as uow:
        receive(uow, net, net.state_ilr, net.lot_late, 500)
        receive(uow, net, net.state_wic, net.lot_early, 200)

    def issue():
        with runtime.uow() as uow:
            try:
                stock.issue_stock(
                    uow,
                    store_id=net.state,
                    to_store_id=net.district,
                    doses=40,
                    product_id=net.covishield,
                    rec=stock.recorded("t", None, uuid.uuid4().hex),
                )
                uow.commit()
                return True
            except stock.InsufficientStock:
                return False

    accepted = sum(_all_at_once([issue] * 50))
    assert accepted == 700 // 40
    with runtime.uow() as uow:
        stored = {(b.unit_id, b.lot_id): b.doses for b in uow.session.scalars(select(StockBalance))}
        assert sum(stored.values()) == 700 - 40 * accepted
        assert stock.ledger_sums(uow) == stored
        assert all(doses >= 0 for doses in stored.values())


def _consume(net, client_id, doses=5):
    return {
        "client_id": client_id,
        "store_id": net.state,
        "unit_id": net.state_ilr,
        "lot_id": net.lot_late,
        "doses": doses,
    }


def test_repeat_with_same_key_returns_first_result_and_records_nothing(client, runtime, net):
    with runtime.uow() as uow:
        receive(uow, net, net.state_ilr, net.lot_late, 100)
    headers = {"Idempotency-Key": "press-1"}
    first = client.post("/api/consumptions", json=_consume(net, "c-1"), headers=headers)
    again = client.post("/api/consumptions", json=_consume(net, "c-1"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json == again.json
    assert again.headers["Idempotent-Replayed"] == "true"
    changed = client.post("/api/consumptions", json=_consume(net, "c-1", doses=6), headers=headers)
    assert changed.status_code == 409
    assert changed.content_type == "application/problem+json"
    assert "idempotency" in changed.json["type"]
    by_client_id = client.post("/api/consumptions", json=_consume(net, "c-1"))
    assert by_client_id.status_code == 201 and by_client_id.json == first.json
    with runtime.uow() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Movement)) == 2  # receipt + 1
        assert stock.get_balance(uow, unit_id=net.state_ilr, lot_id=net.lot_late).doses == 95


def test_concurrent_duplicates_resolve_to_one_movement(app, client, runtime, net):
    with runtime.uow() as uow:
        receive(uow, net, net.state_ilr, net.lot_late, 100)
    clients = _clients(app, client, 12)
    calls = [
        lambda c=c: c.post(
            "/api/consumptions", json=_consume(net, "dup-1"), headers={"Idempotency-Key": "dup-key"}
        )
        for c in clients
    ]
    responses = _all_at_once(calls)
    assert {r.status_code for r in responses} == {201}
    assert len({r.get_data() for r in responses}) == 1
    with runtime.uow() as uow:
        assert uow.session.scalar(select(func.count()).where(Movement.kind == "consumption")) == 1
        assert stock.get_balance(uow, unit_id=net.state_ilr, lot_id=net.lot_late).doses == 95


def test_opposite_transfers_at_once_do_not_deadlock(runtime, net):
    with runtime.uow() as uow:
        receive(uow, net, net.state_ilr, net.lot_late, 1000)
        receive(uow, net, net.state_wic, net.lot_late, 1000)

    def transfer(from_unit, to_unit):
        def call():
            with runtime.uow() as uow:
                stock.transfer_stock(
                    uow,
                    store_id=net.state,
                    from_unit_id=from_unit,
                    to_unit_id=to_unit,
                    lot_id=net.lot_late,
                    doses=10,
                    rec=stock.recorded("t", None, uuid.uuid4().hex),
                )
                uow.commit()
            return True

        return call

    calls = [transfer(net.state_ilr, net.state_wic), transfer(net.state_wic, net.state_ilr)] * 10
    assert all(_all_at_once(calls))
    with runtime.uow() as uow:
        stored = {(b.unit_id, b.lot_id): b.doses for b in uow.session.scalars(select(StockBalance))}
        assert stored == {(net.state_ilr, net.lot_late): 1000, (net.state_wic, net.lot_late): 1000}
        assert stock.ledger_sums(uow) == stored


def test_receiving_and_reversing_one_issue_at_once_cannot_both_succeed(runtime, net):
    with runtime.uow() as uow:
        receive(uow, net, net.state_ilr, net.lot_late, 100)
    outcomes = []
    for _ in range(5):
        with runtime.uow() as uow:
            issue = stock.issue_stock(
                uow,
                store_id=net.state,
                to_store_id=net.district,
                doses=10,
                lot_id=net.lot_late,
                rec=stock.recorded("t", None, uuid.uuid4().hex),
            )
            uow.commit()

        def attempt(action):
            def call():
                with runtime.uow() as uow:
                    try:
                        action(uow)
                        uow.commit()
                        return True
                    except stock.Conflict:
                        return False

            return call

        outcomes.append(
            _all_at_once(
                [
                    attempt(
                        lambda uow, i=issue: stock.receive_shipment(
                            uow,
                            store_id=net.district,
                            unit_id=net.district_ilr,
                            shipment_id=i.shipment_id,
                            rec=stock.recorded("t", None, uuid.uuid4().hex),
                        )
                    ),
                    attempt(
                        lambda uow, i=issue: stock.reverse_movement(
                            uow, movement_id=i.id, actor="t", client_id=uuid.uuid4().hex
                        )
                    ),
                ]
            )
        )
    assert all(sum(pair) == 1 for pair in outcomes), outcomes
    with runtime.uow() as uow:
        stored = {(b.unit_id, b.lot_id): b.doses for b in uow.session.scalars(select(StockBalance))}
        assert sum(stored.values()) == 100
        assert stock.ledger_sums(uow) == {
            k: v for k, v in stored.items() if k in stock.ledger_sums(uow)
        }
