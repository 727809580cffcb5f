"""One journey per role of the card, in Debian's chromium (issue 14).

Each journey keeps screenshots under tests/artifacts/ and runs axe-core on every page it sees.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from logistics.models.stock import StockBalance

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _doses(runtime, unit_id: int, lot_number: str) -> int:
    from logistics.models.catalog import Lot

    with runtime.uow() as uow:
        lot = uow.session.scalars(select(Lot).where(Lot.lot_number == lot_number)).one()
        row = uow.session.scalars(
            select(StockBalance).where(
                StockBalance.unit_id == unit_id, StockBalance.lot_id == lot.id
            )
        ).one_or_none()
        return row.doses if row else 0


def test_district_officer_receives_by_gs1_and_issues_then_the_centre_receives(
    journey, world, runtime
):
    page = journey.page
    journey.login("dev")
    journey.check("district-home")
    journey.go(f"/stores/{world.ids['stores']['MH-DVS-PUNE']}")
    journey.check("district-store")
    expiry = (dt.date.today() + dt.timedelta(days=200)).strftime("%y%m%d")
    receipt = page.locator("#form-receipt")
    scan = receipt.get_by_label("Carton barcode (GS1)")
    scan.click()
    page.keyboard.type(f"(01)08901234567890(10)PUNE42(17){expiry}")
    page.keyboard.press("Enter")  # what a scanner sends last: moves on, does not submit
    expect(receipt.get_by_label("Doses")).to_be_focused()
    receipt.get_by_label("Doses").fill("1000")
    receipt.get_by_label("Manufacturer").fill("Serum Institute of India")
    receipt.get_by_role("button", name="Record receipt").click()
    expect(page.locator("#form-receipt .ok")).to_contain_text("PUNE42")
    expect(page.locator("#stock")).to_contain_text("PUNE42")  # the table reloaded itself
    expect(page.locator("#movements tbody tr").first).to_contain_text("dev")  # and the ledger
    journey.check("received-by-gs1")
    district_unit = world.ids["units"]["MH-DVS-PUNE/ILR-1"]
    assert _doses(runtime, district_unit, "PUNE42") == 1000

    page.reload()  # a refresh shows the page again and records nothing twice
    issue = page.locator("#form-issue")
    issue.get_by_label("To store").select_option(label="PHC Khed")
    issue.get_by_label("Product").select_option(label="COVISHIELD")
    issue.get_by_label("Doses").fill("400")
    expect(page.locator("#fefo")).to_contain_text("4121Z001")  # earliest expiry goes first
    journey.shot("fefo-suggestion")
    issue.get_by_label("Lot").select_option(label="PUNE42")
    issue.get_by_role("button", name="Issue").click()
    expect(page.locator("#form-issue .ok")).to_contain_text("in transit")
    journey.check("issued")
    assert _doses(runtime, district_unit, "PUNE42") == 600

    page.get_by_role("button", name="Log out").click()
    journey.login("kiran")
    expect(page.locator("#h-ship + ul")).to_contain_text("Shipment")
    journey.check("centre-home")
    page.locator("#h-ship + ul a").first.click()
    receive = page.locator("#form-receive")
    receive.get_by_label("Doses received of lot PUNE42").fill("390")
    receive.get_by_label("Reason for lot PUNE42").select_option(label="Damaged")
    journey.shot("receive-short")
    receive.get_by_role("button", name=re.compile("Receive shipment")).click()
    expect(page.locator("#form-receive .ok")).to_contain_text("received")
    journey.check("centre-received")
    assert _doses(runtime, world.khed_unit, "PUNE42") == 390


def test_centre_officer_sees_the_freeze_on_the_chart_and_discards_the_review(
    journey, world, runtime
):
    page = journey.page
    journey.login("kiran")
    journey.go(f"/units/{world.khed_unit}")
    expect(page.locator(".chart canvas").first).to_be_visible()
    expect(page.locator("#chart-card")).to_contain_text("Freeze alarm")
    # The excursion is shaded red on the (transparent) canvas: count the reddish pixels.
    reds = page.evaluate("""() => {
        const c = document.querySelector('.chart canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4)
            if (d[i+3] > 60 && d[i] > 120 && d[i] - d[i+1] > 80) n++;
        return n; }""")
    journey.check("unit-chart-freeze")
    assert reds > 1000
    page.get_by_role("link", name="7 days").click()
    expect(page.locator(".legend")).to_contain_text("each point")
    journey.shot("unit-chart-7d")

    journey.go("/quarantine")
    journey.check("reviews")
    page.locator("main .card a").first.click()
    expect(page.locator("#chart-card")).to_contain_text("Freeze alarm")
    held = int(re.sub(r"\D", "", page.locator(".facts dd strong").first.inner_text()))
    lot_number = page.locator(".facts dd a").first.inner_text()
    before = _doses(runtime, world.khed_unit, lot_number)
    journey.check("review")
    form = page.locator("form", has=page.get_by_role("button", name="Discard the doses"))
    form.get_by_label("Why the doses are discarded").fill("Shake test failed: vials froze")
    form.get_by_role("button", name="Discard the doses").click()
    expect(page.get_by_role("status")).to_contain_text("discarded")
    journey.check("review-discarded")
    assert _doses(runtime, world.khed_unit, lot_number) == before - held


def test_planner_opens_a_session_capped_at_usable_doses_and_files_the_report(
    journey, world, runtime
):
    page = journey.page
    journey.login("priya")
    journey.go(f"/centres/{world.ids['stores']['PUN-PHC-BARAMATI']}/planner")
    journey.check("planner")
    form = page.locator("#form-open")
    form.get_by_label("Product").select_option(label="COVISHIELD")
    capacity = form.get_by_label("Capacity (doses)")
    expect(capacity).not_to_have_value("")
    suggested = int(capacity.input_value())
    assert suggested > 0 and suggested % 10 == 0  # whole vials of 10
    capacity.fill(str(suggested + 10))
    form.get_by_role("button", name="Open session").click()
    error = page.locator("#open-capacity-error")
    expect(error).to_contain_text(str(suggested))
    journey.check("capacity-refused")
    page.locator("#form-open").get_by_label("Capacity (doses)").fill(str(suggested))
    page.locator("#form-open").get_by_role("button", name="Open session").click()
    expect(page.get_by_role("status").first).to_contain_text("opened")
    journey.check("session-opened")

    report = page.locator("form", has=page.get_by_role("button", name="File report"))
    report.get_by_label("Doses given").fill("25")
    report.get_by_label("Vials opened").fill("3")
    report.get_by_role("button", name="File report").click()
    expect(page.get_by_role("status").first).to_contain_text("25 doses given, 5 wasted")
    journey.check("report-filed")


def test_state_officer_acknowledges_an_alert_and_sees_the_districts(journey, world):
    page = journey.page
    journey.login("stella")
    journey.check("state-home")
    page.get_by_role("link", name="Freeze alarm").first.click()
    journey.check("alert")
    form = page.locator("form", has=page.get_by_role("button", name="Acknowledge"))
    form.get_by_label("Comment").fill("Called Khed: ILR thermostat reset, vials held")
    form.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_role("status")).to_contain_text("acknowledged")
    expect(page.locator("#h-hist + ol")).to_contain_text("Called Khed")
    journey.check("alert-acknowledged")
    journey.go(f"/overview/{world.ids['stores']['MH-SVS-PUNE']}")
    expect(page.locator(".tiles.status")).to_contain_text("District Vaccine Store, Pune")
    journey.check("state-overview")
    journey.go(f"/overview/{world.ids['stores']['MH-DVS-PUNE']}")
    expect(page.locator("#h-plan")).to_be_visible()  # the planner table, fetched after the tiles
    expect(page.locator("main")).to_contain_text("PHC Khed")
    journey.check("district-overview")
    journey.go("/lots/trace?lot_number=4121Z045")
    expect(page.locator("#h-where")).to_contain_text("4121Z045")
    journey.check("lot-trace")


def test_a_phone_of_360_px_shows_every_page_without_sideways_scrolling(journey, world):
    page = journey.page
    page.set_viewport_size({"width": 360, "height": 740})
    journey.login("kiran")
    for path in (
        "/",
        f"/stores/{world.ids['stores']['PUN-PHC-KHED']}",
        f"/units/{world.khed_unit}",
        "/alerts",
        "/quarantine",
        f"/centres/{world.ids['stores']['PUN-PHC-KHED']}/planner",
    ):
        journey.go(path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, (path, width)
        journey.check("phone" + path.replace("/", "-"))


def test_the_pages_in_hindi(journey, world):
    page = journey.page
    journey.login("kiran")
    page.get_by_role("link", name="हिन्दी").click()
    expect(page.locator("html")).to_have_attribute("lang", "hi")
    expect(page.get_by_role("heading", level=1)).to_have_text("आज")
    journey.go(f"/stores/{world.ids['stores']['PUN-PHC-KHED']}")
    expect(page.locator("#h-stock")).to_have_text("स्टॉक")
    journey.check("hindi-store")
