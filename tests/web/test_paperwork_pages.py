"""The paperwork pages of issue 19 through HTTP, and the lot trace cut to the reader's stores."""

from __future__ import annotations

import pytest

from logistics.services import trace

pytestmark = pytest.mark.integration


def _names(runtime, full: dict) -> set[str]:
    from logistics.models.catalog import Store

    ids = {row["store_id"] for row in full["locations"]} | {
        row["store_id"] for row in full["movements"]}
    with runtime.uow() as uow:
        return {uow.session.get(Store, i).name for i in ids}


def test_the_lot_trace_page_shows_only_the_readers_stores_like_the_api(demo, person, runtime):
    lot_id = demo["lots"]["4121Z001"]
    with runtime.uow() as uow:
        full = trace.lot_trace(uow, lot_id)
    everywhere = _names(runtime, full)
    assert {"PHC Khed", "District Vaccine Store, Pune"} <= everywhere
    admin_page = person("admin").get(f"/lots/{lot_id}/trace").get_data(as_text=True)
    assert all(name in admin_page for name in everywhere)

    centre = person("centre_officer", "PUN-PHC-KHED")
    page = centre.get(f"/lots/{lot_id}/trace").get_data(as_text=True)
    assert "PHC Khed" in page
    for name in everywhere - {"PHC Khed"}:
        assert name not in page, name
    khed_doses = sum(row["doses"] for row in full["locations"]
                     if row["store_code"] == "PUN-PHC-KHED")
    assert f"In stock: <strong>{khed_doses:,}</strong>" in page.replace("\n", "")
