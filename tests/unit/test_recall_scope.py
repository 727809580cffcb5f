"""Which stores a recall holds a lot in: its store's subtree, or the whole network."""

from __future__ import annotations

import datetime as dt

from logistics.domain.stock import LotStock, RecallScope, fefo_allocate, recalled

STATE, DISTRICT, CENTRE, OTHER_STATE = "/1/", "/1/4/", "/1/4/17/", "/2/"


def test_a_recall_holds_its_lot_in_its_subtree_only():
    scopes = [RecallScope(lot_id=7, store_path=DISTRICT)]
    assert [recalled(7, path, scopes) for path in (STATE, DISTRICT, CENTRE, OTHER_STATE)] == [
        False,
        True,
        True,
        False,
    ]
    assert recalled(8, CENTRE, scopes) is False


def test_a_network_wide_recall_holds_the_lot_everywhere():
    scopes = [RecallScope(lot_id=7, store_path=None)]
    assert all(recalled(7, path, scopes) for path in (STATE, CENTRE, OTHER_STATE))


def test_fefo_skips_a_recalled_lot_even_when_it_expires_first():
    on = dt.date(2026, 12, 1)
    early = LotStock(1, 7, dt.date(2027, 1, 1), 100, lot_quarantined=True)
    late = LotStock(1, 8, dt.date(2027, 6, 1), 100)
    assert [(a.lot_id, a.doses) for a in fefo_allocate([early, late], 60, on)] == [(8, 60)]
