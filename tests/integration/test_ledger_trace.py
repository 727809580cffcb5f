"""Traceability and demo data on PostgreSQL: subtree stock, days of stock, append-only ledger."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from logistics.models.stock import LedgerEntry, Movement, Shipment, StockBalance
from logistics.services import stock, trace
from logistics.services.demo import load_demo
from tests.support.ledger import build_network, rec, receive

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC)


def test_district_subtree_stock_includes_its_centres(uow):
    net = build_network(uow, NOW.date())
    receive(uow, net, net.state_ilr, net.lot_late, 1000, at=NOW - dt.timedelta(days=3))
    issue = stock.issue_stock(
        uow,
        store_id=net.state,
        to_store_id=net.district,
        doses=600,
        product_id=net.covishield,
        rec=rec(NOW - dt.timedelta(days=2), now=NOW),
    )
    uow.commit()
    stock.receive_shipment(
        uow,
        store_id=net.district,
        unit_id=net.district_ilr,
        shipment_id=issue.shipment_id,
        rec=rec(NOW - dt.timedelta(days=2), now=NOW),
    )
    uow.commit()
    to_centre = stock.issue_stock(
        uow,
        store_id=net.district,
        to_store_id=net.centre,
        doses=200,
        lot_id=net.lot_late,
        rec=rec(NOW - dt.timedelta(days=1), now=NOW),
    )
    uow.commit()
    stock.receive_shipment(
        uow,
        store_id=net.centre,
        unit_id=net.centre_ilr,
        shipment_id=to_centre.shipment_id,
        rec=rec(NOW - dt.timedelta(hours=20), now=NOW),
    )
    stock.record_consumption(
        uow,
        store_id=net.centre,
        unit_id=net.centre_ilr,
        lot_id=net.lot_late,
        doses=70,
        actor="t",
        occurred_at=NOW - dt.timedelta(hours=2),
    )
    uow.commit()
    own = trace.store_stock(uow, net.district, now=NOW, window_days=7)
    subtree = trace.store_stock(uow, net.district, now=NOW, window_days=7, subtree=True)
    assert own["products"][0]["doses"] == 400
    assert (
        own["products"][0]["days_of_stock"] is None
    )  # nothing consumed in the district store itself
    row = subtree["products"][0]
    assert row["doses"] == 530 and row["consumed_doses"] == 70
    assert row["days_of_stock"] == round(530 / 10, 1)
    assert {u["store_id"] for u in row["lots"][0]["units"]} == {net.district, net.centre}
    lot = trace.lot_trace(uow, net.lot_late)
    assert {(r["store_id"], r["doses"]) for r in lot["locations"]} == {
        (net.state, 400),
        (net.district, 400),
        (net.centre, 130),
    }
    assert [m["kind"] for m in lot["movements"]][:2] == ["receipt", "issue"]


def test_ledger_rows_cannot_be_edited_or_deleted(uow):
    net = build_network(uow, NOW.date())
    receive(uow, net, net.state_ilr, net.lot_late, 100)
    entry = uow.session.scalars(select(LedgerEntry)).one()
    entry.doses = 1000
    with pytest.raises(ValueError, match="append-only"):
        uow.session.flush()
    uow.rollback()
    uow.session.delete(uow.session.scalars(select(Movement)).one())
    with pytest.raises(ValueError, match="append-only"):
        uow.session.flush()


def test_demo_data_is_consistent_and_loads_once(runtime):
    with runtime.uow() as uow:
        first = load_demo(uow, NOW)
        uow.commit()
    with runtime.uow() as uow:
        again = load_demo(uow, NOW)
        uow.commit()
        assert again == first
        assert len(first["centre_ilrs"]) == 4 and len(first["stores"]) == 7
        stored = {(b.unit_id, b.lot_id): b.doses for b in uow.session.scalars(select(StockBalance))}
        assert stock.ledger_sums(uow) == {
            k: v for k, v in stored.items() if k in stock.ledger_sums(uow)
        }
        assert set(stock.ledger_sums(uow)) >= {k for k, v in stored.items() if v}
        assert all(s.status == "received" for s in uow.session.scalars(select(Shipment)))
        centre = trace.store_stock(uow, first["stores"]["PUN-PHC-KHED"], now=NOW, window_days=30)
        codes = {row["product_code"]: row for row in centre["products"]}
        assert codes["COVISHIELD"]["doses"] == 3000 - 3 * 150
        assert codes["COVISHIELD"]["days_of_stock"] is not None
        expiries = [lot["expiry_date"] for row in centre["products"] for lot in row["lots"]]
        assert min(expiries) <= NOW.date() + dt.timedelta(days=30)
