"""The ledger on SQLite (the one-command demo): concurrent writers never lose an update."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from logistics.clock import utcnow
from logistics.domain.errors import DomainError
from logistics.models.stock import StockBalance
from logistics.services import stock
from tests.support.ledger import build_network, receive
from tests.support.sqlite import sqlite_runtime


def test_concurrent_consumptions_on_sqlite_keep_ledger_and_balance_equal(tmp_path):
    runtime = sqlite_runtime(tmp_path, "l.db")
    with runtime.uow() as uow:
        # Dates relative to today: the lots must still be valid whenever the suite runs.
        net = build_network(uow, today=dt.date.today())
        receive(uow, net, net.state_ilr, net.lot_late, 300, at=utcnow())
    barrier = threading.Barrier(8)

    def consume(_: int) -> int:
        barrier.wait()
        accepted = 0
        for _ in range(10):
            with runtime.uow() as uow:
                try:
                    stock.record_consumption(
                        uow,
                        store_id=net.state,
                        unit_id=net.state_ilr,
                        lot_id=net.lot_late,
                        doses=5,
                        actor="t",
                        client_id=uuid.uuid4().hex,
                    )
                    uow.commit()
                    accepted += 1
                except DomainError:
                    pass
        return accepted

    with ThreadPoolExecutor(8) as pool:
        accepted = sum(pool.map(consume, range(8)))
    with runtime.uow() as uow:
        stored = {(b.unit_id, b.lot_id): b.doses for b in uow.session.scalars(select(StockBalance))}
        assert stock.ledger_sums(uow) == stored
        # 80 tries of 5 doses against 300: exactly 60 go through, however they interleave.
        assert accepted == 60
        assert stored[(net.state_ilr, net.lot_late)] == 0
    runtime.close()
