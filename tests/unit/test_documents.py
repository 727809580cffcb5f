"""Printable forms render without a database: any text, with DejaVu or with the core fonts."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from pypdf import PdfReader

from logistics.domain import reports as rules
from logistics.models.catalog import Product, Store
from logistics.services import documents, reports

UTC = dt.UTC


def a_report(store_name: str) -> reports.StockReport:
    store = Store(id=1, code="DVS", name=store_name)
    product = Product(id=1, code="COVISHIELD", name="Covishield", doses_per_vial=10)
    figures = rules.stock_figures(
        2000,
        [rules.Flow("receipt", None, 3000), rules.Flow("consumption", None, -310)],
        rules.Excursions(),
        31,
    )
    line = reports.ReportLine(store, product, figures)
    return reports.StockReport(
        store,
        dt.date(2026, 5, 1),
        False,
        dt.datetime(2026, 4, 30, 18, 30, tzinfo=UTC),
        dt.datetime(2026, 5, 31, 18, 30, tzinfo=UTC),
        31,
        dt.datetime(2026, 6, 1, tzinfo=UTC),
        [line],
        [reports.ReportLine(None, product, figures)],
    )


def text_of(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


@pytest.mark.skipif(not documents.DEJAVU_DIR.exists(), reason="Debian's DejaVu fonts absent")
def test_dejavu_shows_names_beyond_latin_1():
    text = text_of(documents.stock_report_pdf(a_report("Śivamogga district store")))
    assert "Śivamogga district store" in text
    assert "DVS COVISHIELD 2000 3000 0 310 0 0 4690 469.0" in text


def test_without_dejavu_the_core_font_replaces_what_it_cannot_show(monkeypatch, tmp_path):
    monkeypatch.setattr(documents, "DEJAVU_DIR", tmp_path)
    text = text_of(documents.stock_report_pdf(a_report("Śivamogga district store")))
    assert "?ivamogga district store" in text
    assert "DVS COVISHIELD 2000 3000 0 310 0 0 4690 469.0" in text


def test_the_csv_has_a_total_row_and_wastage_columns_per_reason():
    csv_text = documents.stock_report_csv(a_report("District"))
    lines = csv_text.splitlines()
    assert lines[0].startswith("month,store_code,product_code,opening_doses,receipts_doses")
    assert lines[1].startswith("2026-05,DVS,COVISHIELD,2000,3000,0,310,0,0,0,4690,469.0")
    assert lines[2].startswith("2026-05,TOTAL,COVISHIELD,2000,3000")
