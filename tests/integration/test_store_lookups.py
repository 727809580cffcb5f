"""The stores a user's subtrees hold and the names of some stores, on PostgreSQL and on SQLite
(the statements differ by dialect)."""

from __future__ import annotations

import pytest

from logistics.db import UnitOfWork
from logistics.models.catalog import Store
from logistics.services import lookup
from tests.support.sessions_fixtures import add_store
from tests.support.sqlite import sqlite_runtime

pytestmark = pytest.mark.integration


def _tree(uow: UnitOfWork) -> dict[str, int]:
    state = add_store(uow, "KA", "state", None)
    blr = add_store(uow, "KA-BLR", "district", state)
    mys = add_store(uow, "KA-MYS", "district", state)
    stores = {"KA": state, "KA-BLR": blr, "KA-MYS": mys}
    stores["PHC-1"] = add_store(uow, "PHC-1", "centre", blr)
    stores["PHC-2"] = add_store(uow, "PHC-2", "centre", blr)
    stores["PHC-9"] = add_store(uow, "PHC-9", "centre", mys)
    uow.commit()
    return {code: store.id for code, store in stores.items()}


def _check(uow: UnitOfWork) -> None:
    ids = _tree(uow)
    path = {code: uow.session.get(Store, i).path for code, i in ids.items()}
    assert lookup.store_ids_within(uow, (path["KA-BLR"],)) == {
        ids["KA-BLR"],
        ids["PHC-1"],
        ids["PHC-2"],
    }
    assert lookup.store_ids_within(uow, (path["PHC-9"], path["PHC-2"])) == {
        ids["PHC-9"],
        ids["PHC-2"],
    }
    assert lookup.store_ids_within(uow, ()) == set()
    assert lookup.store_ids_within(uow, None) is None
    assert lookup.store_names(uow, {ids["PHC-9"], ids["KA"]}) == {
        ids["PHC-9"]: "PHC-9",
        ids["KA"]: "KA",
    }
    assert lookup.store_names(uow, set()) == {}


def test_subtrees_and_names_on_postgresql(uow):
    _check(uow)


def test_subtrees_and_names_on_sqlite(tmp_path):
    runtime = sqlite_runtime(tmp_path)
    with runtime.uow() as uow:
        _check(uow)
    runtime.close()
