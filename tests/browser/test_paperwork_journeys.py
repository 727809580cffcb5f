"""The paperwork of issue 19 in Debian's chromium: the monthly report and its PDF, an indent from
request to receipt, a unit that stops working, a temperature log signed off.

Each journey keeps screenshots under tests/artifacts/, runs axe-core on every page it sees, and
looks at its pages on a 360 px phone too (nothing scrolls sideways).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from logistics.models.paperwork import Indent, TemperatureLogSignoff

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _on_a_phone(journey, label: str) -> None:
    """The page as it is now, on a 360 px phone: nothing sideways, nothing serious for axe."""
    page = journey.page
    size = page.viewport_size
    page.set_viewport_size({"width": 360, "height": 740})
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 360, (label, width)
    journey.check("phone-" + label)
    page.set_viewport_size(size)


def _log_out(page) -> None:
    page.get_by_role("button", name="Log out").click()


def test_district_officer_opens_the_monthly_report_and_downloads_the_pdf(journey, world):
    page = journey.page
    journey.login("dev")
    tile = page.locator(".tile", has_text="District Vaccine Store, Pune")
    tile.get_by_role("link", name="Monthly stock report").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Monthly stock report")
    expect(page.locator("#report-table")).to_contain_text("COVISHIELD")
    journey.check("report")
    _on_a_phone(journey, "report")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF").click()
    body = Path(download.value.path()).read_bytes()
    assert body.startswith(b"%PDF")
    assert download.value.suggested_filename.startswith("stock-MH-DVS-PUNE-")
    page.get_by_label("Add up the stores below").check()
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#report-table")).to_contain_text("PHC Khed")  # the subtree's lines
    journey.check("report-subtree")


def test_centre_raises_an_indent_the_district_approves_fewer_ships_and_the_centre_receives(
    journey, world, runtime
):
    page = journey.page
    khed = world.ids["stores"]["PUN-PHC-KHED"]
    journey.login("kiran")
    page.locator(".tile", has_text="PHC Khed").get_by_role("link", name="Indents").click()
    form = page.locator("#form-indent")
    form.get_by_label("Product").select_option(label="COVISHIELD")
    form.get_by_label("Needed by").fill((dt.date.today() + dt.timedelta(days=10)).isoformat())
    form.get_by_label("Needed by").dispatch_event("change")
    expect(page.locator("#suggested")).to_contain_text("Suggested quantity")  # shown as typed
    journey.check("indent-form")
    _on_a_phone(journey, "indent-form")
    form.get_by_label("Doses", exact=True).fill("500")
    form.get_by_label("Note").fill("two outreach sessions")
    form.get_by_role("button", name="Raise the indent").click()
    expect(page.locator("p.ok")).to_contain_text("500 doses")
    journey.check("indent-raised")
    _log_out(page)

    journey.login("dev")
    journey.go(f"/stores/{world.ids['stores']['MH-DVS-PUNE']}/indents")
    page.locator("#indent-list a").first.click()
    approve = page.locator("#form-approve")
    approve.get_by_label("Doses to send").fill("400")
    approve.get_by_role("button", name="Approve").click()
    expect(page.locator("#form-approve .field.invalid")).to_contain_text("reason")  # by its field
    journey.check("approve-fewer-without-reason")
    approve = page.locator("#form-approve")
    approve.get_by_label("Reason").fill("Baramati's sessions come first")
    approve.get_by_role("button", name="Approve").click()
    expect(page.locator("#indent-state")).to_have_text("Approved")
    expect(page.locator("#indent-approved")).to_have_text("400")
    journey.check("approved")
    page.get_by_role("button", name="Ship the approved doses").click()
    expect(page.locator("#indent-state")).to_have_text("Shipped")
    journey.check("shipped")
    _on_a_phone(journey, "indent-shipped")
    _log_out(page)

    journey.login("kiran")
    journey.go(f"/stores/{khed}/indents")
    page.locator("#indent-list a").first.click()
    receive = page.locator("#form-receive-indent")
    receive.get_by_label("Into unit").select_option(label="ILR-1")
    receive.get_by_role("button", name="Receive the shipment").click()
    expect(page.locator("#indent-state")).to_have_text("Received")
    expect(page.locator("#indent-trail li")).to_have_count(4)
    journey.check("received")
    with runtime.uow() as uow:
        indent = uow.session.scalars(select(Indent)).one()
        assert (indent.state, indent.doses_requested, indent.doses_approved) == (
            "received",
            500,
            400,
        )
        assert [e.state for e in indent.events] == ["requested", "approved", "shipped", "received"]


def test_cold_chain_officer_marks_the_ilr_not_working_and_sees_the_doses_to_move(
    journey, world, runtime
):
    from logistics.services.equipment import update_register

    page = journey.page
    # Only units with a recorded capacity are offered: the district's ILR (one step up the tree)
    # and Baramati's (a sibling centre, two steps).
    with runtime.uow() as uow:
        for unit in ("MH-DVS-PUNE/ILR-1", "PUN-PHC-BARAMATI/ILR-1"):
            update_register(
                uow, unit_id=world.ids["units"][unit], fields={"capacity_doses": 1_000_000}
            )
            uow.commit()
    journey.login("kiran")
    journey.go(f"/stores/{world.ids['stores']['PUN-PHC-KHED']}")
    page.get_by_role("link", name="Equipment: ILR-1").click()
    expect(page.locator("#working-status")).to_have_text("Working")
    journey.check("equipment")
    form = page.locator("#form-status")
    form.get_by_label("Working status").select_option(label="Not working")
    form.get_by_label("Fault or repair").fill("compressor failed")
    form.get_by_role("button", name="Record the status").click()
    expect(page.locator("#working-status")).to_have_text("Not working")
    expect(page.locator("#h-move")).to_contain_text(re.compile(r"[\d,]+ doses must move"))
    expect(page.locator("#evacuation tbody tr").first).to_be_visible()
    expect(page.locator("#destinations li")).to_have_count(2)
    expect(page.locator("#destinations li").first).to_contain_text("District Vaccine Store, Pune")
    expect(page.locator("#destinations li").nth(1)).to_contain_text("PHC Baramati")
    expect(page.locator("#repairs")).to_contain_text("compressor failed")
    journey.check("not-working")
    _on_a_phone(journey, "not-working")


def test_a_temperature_log_shows_the_chart_and_is_signed_off_for_a_past_month(
    journey, world, runtime
):
    page = journey.page
    journey.login("kiran")
    journey.go(f"/units/{world.khed_unit}")
    page.get_by_role("link", name="Monthly temperature log").click()
    page.wait_for_selector(".chart canvas")  # uPlot drew the month
    expect(page.locator("#log-days tbody tr").first).to_be_visible()
    expect(page.locator("#signoff")).to_contain_text("once it has ended")
    journey.check("log-this-month")
    _on_a_phone(journey, "log-this-month")
    page.get_by_role("link", name="Previous month").click()
    page.wait_for_selector(".chart canvas")
    page.get_by_label("Comment").fill("30-DTR read and filed")
    page.get_by_role("button", name="Sign the month off").click()
    expect(page.locator("#signed")).to_contain_text("Signed off by kiran")
    journey.check("log-signed")
    with runtime.uow() as uow:
        signed = [
            (s.unit_id, s.signed_by, s.comment)
            for s in uow.session.scalars(select(TemperatureLogSignoff))
        ]
    assert signed == [(world.khed_unit, "kiran", "30-DTR read and filed")]
