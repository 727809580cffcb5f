"""The monthly stock report: figures from the ledger, tied to its sums and balances (issue 19.1)."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from logistics.models.catalog import Lot
from logistics.models.stock import LedgerEntry, StockBalance
from logistics.services import reports
from tests.support.paperwork import EXPECTED_MAY, build_month

pytestmark = pytest.mark.integration
MAY, JUNE = dt.date(2026, 5, 1), dt.date(2026, 6, 1)
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def month(uow):
    return build_month(uow)


def report(uow, store, month=MAY, **kw):
    found = reports.monthly_stock_report(
        uow, store_id=store, month=month, timezone="Asia/Kolkata", now=NOW, **kw
    )
    return reports.stock_report_document(found)


def figures(row):
    return {key: row[key] for key in EXPECTED_MAY}


def test_the_districts_may_matches_the_figures_worked_out_by_hand(uow, month):
    found = report(uow, month.net.district, product_id=month.net.covishield)
    assert [line["store_code"] for line in found["lines"]] == ["DVS"]
    assert figures(found["lines"][0]) == EXPECTED_MAY
    assert found["lines"][0]["closing_vials"] == 276
    assert found["period_days"] == 31


def test_opening_plus_flows_is_the_closing_balance_and_the_ledger_agrees(uow, month):
    net = month.net
    may = report(uow, net.district, product_id=net.covishield)["lines"][0]
    june = report(uow, net.district, JUNE, product_id=net.covishield)["lines"][0]
    flows = (
        may["receipts_doses"]
        - may["issues_doses"]
        - may["consumption_doses"]
        - may["wastage_doses"]
        + may["adjustments_doses"]
        + may["transfers_doses"]
    )
    assert may["opening_doses"] + flows == may["closing_doses"]
    assert june["opening_doses"] == may["closing_doses"]
    # The ledger's own sum up to the end of May, and today's balances after June's consumption.
    end_of_may = dt.datetime(2026, 5, 31, 18, 30, tzinfo=dt.UTC)  # midnight in India
    ledger = uow.session.scalar(
        select(func.sum(LedgerEntry.doses))
        .join(Lot, Lot.id == LedgerEntry.lot_id)
        .where(
            LedgerEntry.store_id == net.district,
            Lot.product_id == net.covishield,
            LedgerEntry.occurred_at < end_of_may,
        )
    )
    assert ledger == may["closing_doses"] == 2760
    balances = uow.session.scalar(
        select(func.sum(StockBalance.doses))
        .join(Lot, Lot.id == StockBalance.lot_id)
        .where(StockBalance.store_id == net.district, Lot.product_id == net.covishield)
    )
    assert june["closing_doses"] == balances == 2660
    assert june["consumption_doses"] == 100


def test_the_state_store_month_and_the_subtree_totals(uow, month):
    net = month.net
    state = report(uow, net.state, product_id=net.covishield)["lines"][0]
    assert (state["opening_doses"], state["issues_doses"], state["closing_doses"]) == (
        8000,
        3000,
        5000,
    )
    tree = report(uow, net.state, subtree=True)
    assert [(line["store_code"], line["product_code"]) for line in tree["lines"]] == [
        ("SVS", "COVISHIELD"),
        ("DVS", "COVAXIN"),
        ("DVS", "COVISHIELD"),
    ]
    covaxin, total = tree["totals"]
    assert (covaxin["product_code"], covaxin["receipts_doses"], covaxin["closing_doses"]) == (
        "COVAXIN",
        400,
        400,
    )
    # Shipments inside the subtree count as the sender's issue and the receiver's receipt.
    assert (total["opening_doses"], total["receipts_doses"], total["issues_doses"]) == (
        10000,
        3000,
        4500,
    )
    assert total["closing_doses"] == 5000 + 2760
    assert total["wastage_by_reason"] == EXPECTED_MAY["wastage_by_reason"]


def test_a_month_not_yet_begun_is_refused(uow, month):
    from logistics.domain.errors import Conflict

    with pytest.raises(Conflict):
        report(uow, month.net.district, dt.date(2027, 1, 1))


# --- through the API: JSON, CSV and the printable PDF -----------------------------------------


def query(month, **extra):
    args = {
        "store_id": month.net.district,
        "month": "2026-05",
        "product_id": month.net.covishield,
        **extra,
    }
    return "&".join(f"{k}={v}" for k, v in args.items())


def test_the_json_report_carries_the_hand_worked_figures(client, month):
    response = client.get(f"/api/reports/stock?{query(month)}")
    assert response.status_code == 200, response.json
    assert figures(response.json["lines"][0]) == EXPECTED_MAY
    assert response.json["month"] == "2026-05" and response.json["store"]["code"] == "DVS"


def test_the_csv_report_has_a_row_per_store_and_product_then_totals(client, month):
    import csv
    import io

    response = client.get(f"/api/reports/stock/csv?{query(month)}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["store_code"] for row in rows] == ["DVS", "TOTAL"]
    row = rows[0]
    assert (row["opening_doses"], row["receipts_doses"], row["issues_doses"]) == (
        "2000",
        "3000",
        "1500",
    )
    assert (row["consumption_doses"], row["wastage_doses"], row["closing_doses"]) == (
        "600",
        "130",
        "2760",
    )
    assert (row["wastage_open_vial_doses"], row["wastage_heat_exposure_doses"]) == ("20", "100")
    assert row["wastage_rate_pct"] == "17.81" and row["days_of_stock"] == "142.6"


def test_the_pdf_report_renders_and_its_text_shows_the_figures(client, month):
    import io

    from pypdf import PdfReader

    response = client.get(f"/api/reports/stock/pdf?{query(month)}")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(response.data)).pages)
    assert "Monthly stock report 2026-05: District (DVS)" in text
    # The DVS row of the table, cell by cell, in the column order of the form.
    row = next(line for line in text.splitlines() if line.startswith("DVS COVISHIELD "))
    assert row.split() == [
        "DVS",
        "COVISHIELD",
        "2000",
        "3000",
        "1500",
        "600",
        "130",
        "-10",
        "2760",
        "276.0",
        "100",
        "100",
        "17.81",
        "20",
        "19.35",
        "142.6",
    ]
    assert "DVS COVISHIELD: breakage 10, heat_exposure 100, open_vial 20" in text


def test_bad_report_requests_get_problem_documents(client, month):
    bad_month = client.get(f"/api/reports/stock?store_id={month.net.district}&month=2026-13")
    assert bad_month.status_code == 422 and bad_month.content_type == "application/problem+json"
    unknown = client.get("/api/reports/stock?store_id=999999&month=2026-05")
    assert unknown.status_code == 404 and unknown.content_type == "application/problem+json"
    future = client.get(f"/api/reports/stock/pdf?store_id={month.net.district}&month=2099-01")
    assert future.status_code == 409 and future.content_type == "application/problem+json"


def test_the_same_month_on_sqlite_gives_the_same_figures(tmp_path):
    """The one-command demo runs on SQLite: the report's queries must give the same answer."""
    from logistics.config import load_settings
    from logistics.migrate import upgrade
    from logistics.runtime import Runtime
    from logistics.services.reference import seed_reference_data

    url = f"sqlite:///{tmp_path}/paperwork.db"
    upgrade(url)
    runtime = Runtime.from_settings(load_settings({"database_url": url}))
    try:
        with runtime.uow() as uow:
            seed_reference_data(uow)
            uow.commit()
            month = build_month(uow)
            line = report(uow, month.net.district, product_id=month.net.covishield)["lines"][0]
        assert figures(line) == EXPECTED_MAY
    finally:
        runtime.engine.dispose()
