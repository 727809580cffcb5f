"""The paperwork pages of issue 19 through HTTP, and the lot trace cut to the reader's stores."""

from __future__ import annotations

import pytest

from logistics.services import trace

pytestmark = pytest.mark.integration


def _names(runtime, full: dict) -> set[str]:
    from logistics.models.catalog import Store

    ids = {row["store_id"] for row in full["locations"]} | {
        row["store_id"] for row in full["movements"]
    }
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
    khed_doses = sum(
        row["doses"] for row in full["locations"] if row["store_code"] == "PUN-PHC-KHED"
    )
    assert f"In stock: <strong>{khed_doses:,}</strong>" in page.replace("\n", "")


def _post(client, page_url: str, action: str, data: dict):
    import uuid

    from tests.web.conftest import csrf_of

    html = client.get(page_url).get_data(as_text=True)
    return client.post(
        action, data={"csrf_token": csrf_of(html), "client_id": str(uuid.uuid4()), **data}
    )


def _this_and_last_month(timezone: str = "Asia/Kolkata"):
    """This month and the last at the site (a month is the site's calendar month)."""
    import datetime as dt

    from logistics.clock import local_date

    today = local_date(dt.datetime.now(dt.UTC), timezone)
    last = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    return f"{today:%Y-%m}", f"{last:%Y-%m}"


def test_the_monthly_report_page_shows_the_services_figures_and_downloads(demo, person, runtime):
    import datetime as dt

    from babel import numbers

    from logistics.services import reports

    district = demo["stores"]["MH-DVS-PUNE"]
    this_month, _last = _this_and_last_month(runtime.settings.site_timezone)
    client = person("district_officer", "MH-DVS-PUNE")
    page = client.get(f"/stores/{district}/report?month={this_month}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    with runtime.uow() as uow:
        report = reports.stock_report_document(
            reports.monthly_stock_report(
                uow,
                store_id=district,
                month=dt.date.fromisoformat(f"{this_month}-01"),
                timezone=runtime.settings.site_timezone,
                now=dt.datetime.now(dt.UTC),
            )
        )
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


def test_a_temperature_log_page_shows_the_month_and_is_signed_off_once_after_it(
    demo, person, runtime
):
    from logistics.models.paperwork import TemperatureLogSignoff

    unit = demo["units"]["PUN-PHC-KHED/ILR-1"]
    this_month, last_month = _this_and_last_month(runtime.settings.site_timezone)
    client = person("centre_officer", "PUN-PHC-KHED")
    current = client.get(f"/units/{unit}/log?month={this_month}").get_data(as_text=True)
    assert 'data-chart="chart-data-' in current and 'id="log-days"' in current
    assert "once it has ended" in current and 'id="form-signoff"' not in current
    refused = _post(
        client,
        f"/units/{unit}/log?month={last_month}",
        f"/units/{unit}/log/sign-off",
        {"month": this_month, "comment": "too early"},
    )
    assert refused.status_code == 422 and "not over yet" in refused.get_data(as_text=True)

    viewer = person("viewer", "PUN-PHC-KHED")
    page = viewer.get(f"/units/{unit}/log?month={last_month}").get_data(as_text=True)
    assert 'id="form-signoff"' not in page and "Not signed off yet." in page
    assert (
        _post(
            viewer,
            f"/units/{unit}/log?month={last_month}",
            f"/units/{unit}/log/sign-off",
            {"month": last_month},
        ).status_code
        == 403
    )

    signed = _post(
        client,
        f"/units/{unit}/log?month={last_month}",
        f"/units/{unit}/log/sign-off",
        {"month": last_month, "comment": "checked the 30-DTR"},
    )
    assert signed.status_code == 303
    page = client.get(signed.headers["Location"]).get_data(as_text=True)
    assert 'id="signed"' in page and "checked the 30-DTR" in page
    again = _post(
        client,
        f"/units/{unit}/log?month={last_month}",
        f"/units/{unit}/log/sign-off",
        {"month": last_month},
    )
    assert again.status_code == 422 and "already signed off" in again.get_data(as_text=True)
    with runtime.uow() as uow:
        from sqlalchemy import select

        rows = [
            (r.unit_id, f"{r.month:%Y-%m}", r.comment)
            for r in uow.session.scalars(select(TemperatureLogSignoff))
        ]
    assert rows == [(unit, last_month, "checked the 30-DTR")]
    pdf = client.get(f"/units/{unit}/log.pdf?month={last_month}")
    assert pdf.data.startswith(b"%PDF")


def test_an_indent_goes_from_request_to_receipt_through_the_forms(demo, person, runtime):
    import datetime as dt

    from logistics.models.paperwork import Indent

    khed, district = demo["stores"]["PUN-PHC-KHED"], demo["stores"]["MH-DVS-PUNE"]
    product = demo["products"]["COVISHIELD"]
    needed_by = (dt.date.today() + dt.timedelta(days=10)).isoformat()
    centre = person("centre_officer", "PUN-PHC-KHED")
    hint = centre.get(
        f"/stores/{khed}/indents/suggestion?product_id={product}&needed_by={needed_by}"
    ).get_data(as_text=True)
    assert "Suggested quantity" in hint
    raised = _post(
        centre,
        f"/stores/{khed}/indents",
        f"/stores/{khed}/indents",
        {"product_id": product, "needed_by": needed_by, "doses": "500"},
    )
    assert raised.status_code == 303
    with runtime.uow() as uow:
        from sqlalchemy import select

        indent_id = uow.session.scalars(select(Indent.id)).one()
    url = f"/indents/{indent_id}"
    page = centre.get(url).get_data(as_text=True)
    assert 'id="form-approve"' not in page and 'id="form-cancel"' in page
    assert _post(centre, url, f"{url}/approve", {"doses": "400"}).status_code == 403

    officer = person("district_officer", "MH-DVS-PUNE")
    page = officer.get(url).get_data(as_text=True)
    assert 'id="form-approve"' in page and 'id="form-reject"' in page
    fewer = _post(officer, url, f"{url}/approve", {"doses": "400"})
    assert fewer.status_code == 422
    assert 'id="approve-reason-error"' in fewer.get_data(as_text=True)  # next to its field
    assert (
        _post(
            officer, url, f"{url}/approve", {"doses": "400", "reason": "stock kept for Baramati"}
        ).status_code
        == 303
    )
    assert _post(officer, url, f"{url}/ship", {}).status_code == 303
    page = centre.get(url).get_data(as_text=True)
    assert 'id="form-receive-indent"' in page
    received = _post(
        centre, url, f"{url}/receive", {"unit_id": demo["units"]["PUN-PHC-KHED/ILR-1"]}
    )
    assert received.status_code == 303
    with runtime.uow() as uow:
        indent = uow.session.get(Indent, indent_id)
        trail = [(e.state, e.doses, e.comment) for e in indent.events]
        assert indent.state == "received" and indent.doses_approved == 400
        shipment = indent.shipment_id
    assert trail == [
        ("requested", 500, None),
        ("approved", 400, "stock kept for Baramati"),
        ("shipped", 400, f"shipment {shipment}"),
        ("received", 400, None),
    ]
    assert district != khed


def test_a_unit_marked_not_working_shows_the_doses_to_move_and_where(demo, person, runtime):
    from logistics.models.paperwork import UnitStatusChange

    unit = demo["units"]["PUN-PHC-KHED/ILR-1"]
    centre = person("centre_officer", "PUN-PHC-KHED")
    url = f"/units/{unit}/equipment"
    page = centre.get(url).get_data(as_text=True)
    assert 'id="form-status"' in page and 'id="form-register"' not in page  # stores.write
    assert _post(centre, url, f"{url}/status", {"status": "broken"}).status_code == 422
    done = _post(centre, url, f"{url}/status", {"status": "not_working", "note": "compressor"})
    assert done.status_code == 303
    page = centre.get(url).get_data(as_text=True)
    assert 'id="evacuation"' in page and "must move" in page and "compressor" in page
    with runtime.uow() as uow:
        from sqlalchemy import select

        changes = [
            (c.from_status, c.to_status, c.note)
            for c in uow.session.scalars(select(UnitStatusChange))
        ]
    assert changes == [("working", "not_working", "compressor")]
    officer = person("district_officer", "MH-DVS-PUNE")
    table = officer.get("/equipment/functional").get_data(as_text=True)
    assert "District Vaccine Store, Pune" in table and "Nashik" not in table


def test_the_register_form_records_what_the_unit_is_and_the_functional_table_counts_it(
    demo, person, runtime
):
    import re

    unit = demo["units"]["PUN-PHC-KHED/ILR-1"]
    url = f"/units/{unit}/equipment"
    officer = person("district_officer", "MH-DVS-PUNE")
    wrong = _post(officer, url, url, {"make": "Vestfrost", "year_installed": "1890"})
    assert wrong.status_code == 422
    assert 'id="register-year_installed-error"' in wrong.get_data(as_text=True)
    saved = _post(
        officer,
        url,
        url,
        {
            "make": "Vestfrost",
            "model": "MK 304",
            "pqs_code": "E003/046",
            "year_installed": "2019",
            "energy_source": "electricity",
            "capacity_doses": "24000",
        },
    )
    assert saved.status_code == 303
    with runtime.uow() as uow:
        from logistics.models.catalog import StorageUnit

        row = uow.session.get(StorageUnit, unit)
        assert (
            row.make,
            row.model,
            row.pqs_code,
            row.year_installed,
            row.energy_source,
            row.capacity_doses,
        ) == ("Vestfrost", "MK 304", "E003/046", 2019, "electricity", 24000)
    assert _post(officer, url, f"{url}/status", {"status": "needs_repair"}).status_code == 303
    other = demo["units"]["PUN-PHC-BARAMATI/ILR-1"]
    assert (
        _post(
            officer,
            f"/units/{other}/equipment",
            f"/units/{other}/equipment/status",
            {"status": "not_working"},
        ).status_code
        == 303
    )
    table = officer.get("/equipment/functional").get_data(as_text=True)
    cells = re.findall(r'<td class="num">([^<]*)</td>', table)
    # Pune's district store and its two centres: one ILR each (written out by hand).
    assert cells == ["3", "1", "1", "1", "2 (67 %)"]


def test_a_download_of_a_malformed_month_is_refused(demo, person):
    district = demo["stores"]["MH-DVS-PUNE"]
    unit = demo["units"]["MH-DVS-PUNE/ILR-1"]
    client = person("district_officer", "MH-DVS-PUNE")
    for url in (f"/stores/{district}/report.pdf?month=May", f"/units/{unit}/log.csv?month=2026-00"):
        response = client.get(url)
        assert response.status_code == 422, url
        assert "YYYY-MM" in response.get_data(as_text=True)


def test_the_lot_trace_page_pages_its_movements(demo, person, runtime, monkeypatch):
    import re

    from logistics.web.views import overview

    lot_id = demo["lots"]["4121Z001"]
    with runtime.uow() as uow:
        everything = trace.lot_trace(uow, lot_id)["movements"]
    assert len(everything) >= 5  # the demo's receipt, issues and receipts of this lot
    monkeypatch.setattr(overview, "MOVEMENTS_PAGE", 2)
    admin = person("admin")
    url, pages, shown = f"/lots/{lot_id}/trace", 0, []
    while url:
        page = admin.get(url).get_data(as_text=True)
        listed = re.search(r'<ol class="list" id="movements">(.*?)</ol>', page, re.S).group(1)
        items = re.findall(r"<li>(.*?)</li>", listed, re.S)
        assert len(items) <= 2
        shown += items
        pages += 1
        assert ("First movements" in page) == (pages > 1)
        following = re.search(r'<a rel="next" href="([^"]+)"', page)
        url = following.group(1).replace("&amp;", "&") if following else None
    # Every movement once, oldest first, as the whole trace lists them; no empty last page.
    assert pages == -(-len(everything) // 2)
    assert [item.rsplit(" · ", 1)[1].strip() for item in shown] == [
        row["actor"] for row in everything
    ]
    assert [item.split(" · ")[3] for item in shown] == [
        f"{row['doses']:,} doses" for row in everything
    ]
