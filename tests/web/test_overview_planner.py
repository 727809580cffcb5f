"""The district's session planner page: the same numbers as each centre's own answer.

The page reads every centre of the district at once (issue 14, point 6); these tests keep its
answers equal to the per-centre availability answer and its statement count independent of the
number of centres.
"""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from sqlalchemy import event

from logistics.models.catalog import Lot, Product
from logistics.models.stock import Shipment, ShipmentLine
from logistics.services import availability
from tests.support.sessions_fixtures import add_lot, add_store, add_unit, day, receive, today

pytestmark = pytest.mark.integration

ROW = re.compile(
    r'<tr><th scope="row"><a href="[^"]*">([^<]+)</a></th><td>([^<]+)</td>(.*?)</tr>', re.S
)
CELL = re.compile(r'<td class="num">([^<]*)</td>')


def _page_rows(page: str) -> dict[str, list[str]]:
    """Centre name -> the six figures of its row (usable .. days of stock), as shown."""
    return {
        html.unescape(name): [html.unescape(c) for c in CELL.findall(cells)]
        for name, _product, cells in ROW.findall(page)
    }


def _product(uow) -> Product:
    product = Product(
        code="COVISHIELD",
        name="COVISHIELD",
        doses_per_vial=10,
        min_temp_c=2.0,
        max_temp_c=8.0,
        freeze_sensitive=True,
        open_vial_life_min=240,
    )
    uow.session.add(product)
    uow.session.flush()
    return product


def _open(client, centre_id: int, product_id: int, on: dt.date, capacity: int) -> dict:
    body = {
        "store_id": centre_id,
        "product_id": product_id,
        "session_date": on.isoformat(),
        "capacity": capacity,
        "dose_number": "1",
        "min_age": 18,
    }
    response = client.post("/api/sessions", json=body)
    assert response.status_code == 201, response.json
    return response.json


def test_planner_page_numbers_equal_each_centres_own_answer(client, person, runtime, uow):
    assert runtime.settings.sessions_consumption_window_days == 28  # the figures below use it
    state = add_store(uow, "KA", "state", None)
    district = add_store(uow, "KA-BLR", "district", state)
    other = add_store(uow, "KA-MYS", "district", state)
    centres = {name: add_store(uow, name, "centre", district) for name in ("PHC-A", "PHC-B")}
    centres["PHC-C"] = add_store(uow, "PHC-C", "centre", district)
    outside = add_store(uow, "PHC-X", "centre", other)
    units = {name: add_unit(uow, store) for name, store in {**centres, "PHC-X": outside}.items()}
    product = _product(uow)
    lot = add_lot(uow, product, "L-MAIN")
    short = add_lot(uow, product, "L-SHORT", expires_in_days=1)
    held = add_lot(uow, product, "L-HELD")
    uow.commit()
    receive(uow, units["PHC-A"], lot, 500)
    receive(uow, units["PHC-B"], lot, 300)
    receive(uow, units["PHC-B"], short, 40)
    receive(uow, units["PHC-B"], held, 30)
    receive(uow, units["PHC-C"], lot, 200)
    receive(uow, units["PHC-X"], lot, 900)
    uow.session.get(Lot, held.id).quarantined = True
    shipment = Shipment(
        from_store_id=district.id,
        to_store_id=centres["PHC-A"].id,
        status="in_transit",
        issued_at=dt.datetime.now(dt.UTC),
    )
    shipment.lines.append(ShipmentLine(lot_id=lot.id, doses_issued=50))
    uow.session.add(shipment)
    uow.commit()
    ids = {name: store.id for name, store in centres.items()}

    # A: 500 doses, sessions of 100 today (one seat booked) and 200 in two days, 50 in transit.
    first = _open(client, ids["PHC-A"], product.id, day(0), 100)
    _open(client, ids["PHC-A"], product.id, day(2), 200)
    booked = client.post(
        f"/api/sessions/{first['id']}/bookings",
        json={"slot_id": first["slots"][0]["id"], "beneficiary": "A"},
    )
    assert booked.status_code == 201, booked.json
    # B: 300 + 40 expiring tomorrow (+ 30 of a held lot), one session of 100 in three days.
    _open(client, ids["PHC-B"], product.id, day(3), 100)
    # C: 200 doses, today's session of 50 reported with 40 given from 4 vials: 160 left.
    done = _open(client, ids["PHC-C"], product.id, day(0), 50)
    report = client.post(
        f"/api/sessions/{done['id']}/report", json={"doses_given": 40, "vials_opened": 4}
    )
    assert report.status_code == 201, report.json
    _open(client, outside.id, product.id, day(1), 300)

    officer = person("district_officer", district.id)
    page = officer.get(f"/overview/{district.id}/planner", headers={"HX-Request": "true"})
    assert page.status_code == 200
    shown = _page_rows(page.get_data(as_text=True))

    # usable, in transit, promised, open seats, can still promise, days of stock
    assert shown == {
        "PHC-A": ["500", "50", "300", "299", "200", "—"],
        "PHC-B": ["340", "0", "100", "100", "240", "—"],
        "PHC-C": ["160", "0", "0", "0", "160", "111.9"],  # 160 / round(40 / 28, 2)
    }
    # ... and each is what the centre's own availability answer says for today.
    for name, figures in shown.items():
        own = client.get(
            f"/api/centres/{ids[name]}/usable-doses",
            query_string={"product_id": product.id, "date": today().isoformat()},
        ).json
        promised = own["promised_doses"] + own["promised_later_doses"]
        assert [own["usable_doses"], own["in_transit_doses"], promised] == [
            int(x) for x in figures[:3]
        ]
        assert own["available_doses"] == int(figures[4])


def _district_with(uow, client, code: str, centres: int) -> int:
    """A district of `centres` centres, each with stock and an open session of two slots' worth."""
    state = add_store(uow, f"{code}-S", "state", None)
    district = add_store(uow, code, "district", state)
    product = uow.session.query(Product).filter_by(code="COVISHIELD").one_or_none() or _product(uow)
    lot = add_lot(uow, product, f"{code}-LOT")
    stores = [add_store(uow, f"{code}-C{n}", "centre", district) for n in range(centres)]
    units = [add_unit(uow, store) for store in stores]
    uow.commit()
    for store, unit in zip(stores, units, strict=True):
        receive(uow, unit, lot, 100)
        _open(client, store.id, product.id, day(1), 20)
    return district.id


def test_statement_count_does_not_grow_with_the_centres(client, runtime, uow):
    small = _district_with(uow, client, "D3", 3)
    large = _district_with(uow, client, "D12", 12)
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    def run(district_id: int) -> tuple[int, int]:
        statements.clear()
        with runtime.uow() as fresh:
            rows = availability.district_view(
                fresh, district_id=district_id, on_date=today(), today=today(), window_days=28
            )
        return len(rows), len(statements)

    event.listen(runtime.engine, "before_cursor_execute", count)
    try:
        (small_rows, small_count), (large_rows, large_count) = run(small), run(large)
    finally:
        event.remove(runtime.engine, "before_cursor_execute", count)
    assert (small_rows, large_rows) == (3, 12)
    assert small_count == large_count
