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


def _post(client, page_url: str, action: str, data: dict):
    import uuid

    from tests.web.conftest import csrf_of

    html = client.get(page_url).get_data(as_text=True)
    return client.post(action, data={"csrf_token": csrf_of(html), "client_id": str(uuid.uuid4()),
                                     **data})


def _this_and_last_month():
    import datetime as dt

    today = dt.date.today()
    last = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    return f"{today:%Y-%m}", f"{last:%Y-%m}"


def test_the_monthly_report_page_shows_the_services_figures_and_downloads(demo, person, runtime):
    import datetime as dt

    from babel import numbers

    from logistics.services import reports

    district = demo["stores"]["MH-DVS-PUNE"]
    this_month, _last = _this_and_last_month()
    client = person("district_officer", "MH-DVS-PUNE")
    page = client.get(f"/stores/{district}/report?month={this_month}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    with runtime.uow() as uow:
        report = reports.stock_report_document(reports.monthly_stock_report(
            uow, store_id=district, month=dt.date.today().replace(day=1), timezone=runtime.settings.site_timezone,
            now=dt.datetime.now(dt.UTC)))
    assert report["lines"]
    for line in report["lines"]:  # each closing balance, in Indian grouping (1,00,000)
        closing = numbers.format_decimal(line["closing_doses"], "#,##,##0", locale="en_IN")
        assert f"<strong>{closing}</strong>" in html
    pdf = client.get(f"/stores/{district}/report.pdf?month={this_month}")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    csv = client.get(f"/stores/{district}/report.csv?month={this_month}")
    assert csv.status_code == 200 and b"COVISHIELD" in csv.data
    assert client.get(f"/stores/{district}/report?month=2026-13").status_code == 422
    # another district's report is not this officer's to read
    other = demo["stores"]["MH-DVS-NASHIK"]
    assert client.get(f"/stores/{other}/report.pdf?month={this_month}").status_code == 404
