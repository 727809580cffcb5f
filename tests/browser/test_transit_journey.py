"""The trip on the lot's chart (issue 18), in Debian's chromium: a freeze on the road shows."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import expect

from logistics.services.auth import create_user
from tests.browser import scenario
from tests.support.alerts_fixtures import ingest, readings
from tests.support.transit_fixtures import issue_in_box, make_route, receive

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

COUNT = """(test) => {
    const c = document.querySelector('#journey-chart canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    const match = new Function('r', 'g', 'b', 'return ' + test);
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i+3] > 20 && match(d[i], d[i+1], d[i+2])) n++;
    return n; }"""
# The trip's shading is blue (11, 92, 173); the freeze's red shading over it comes out near
# (117, 43, 70): no line of the chart has these colours.
BLUE = "r < 60 && g < 140 && b > 140"
RED = "r > 100 && g < 90 && b < 110"


def test_the_lot_chart_shows_the_trip_and_the_freeze_on_the_road(journey, runtime):
    with runtime.uow() as uow:
        route = make_route(uow, runtime.settings)
        create_user(uow, username="dio", password=scenario.PASSWORD, roles=[("admin", None)])
        uow.commit()  # the test is the edge: services never commit
    t0 = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) - dt.timedelta(hours=30)
    with runtime.uow() as uow:
        shipment_id = issue_in_box(uow, route, 300, t0, "issue-1")
    # A 4 h trip: 90 min at +5 C, 40 min against a frozen ice pack, then +5 C.
    trip = readings(t0, (90, 5.0), (40, -3.0), (110, 5.0), sensor_id="CB-1-LOG")
    ingest(runtime, trip, t0 + dt.timedelta(hours=4))
    with runtime.uow() as uow:
        receive(uow, route, shipment_id, t0 + dt.timedelta(hours=4), "receipt-1")

    page = journey.page
    journey.login("dio")
    journey.go(f"/lots/{route.lot.id}/trace")
    expect(page.locator("#trips")).to_contain_text("CB-1 (300)")
    expect(page.locator("#trips")).to_contain_text("held after an alarm on the road")
    journey.check("trace-with-trip")
    page.get_by_role("link", name="Temperature on the way").click()
    expect(page.locator("#journey-chart canvas").first).to_be_visible()
    rows = page.locator("#legs tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(1)).to_contain_text("CB-1")
    expect(rows.nth(1)).to_contain_text("Freeze alarm")
    expect(rows.nth(1).locator("td.num").nth(1)).to_have_text("40")
    # The trip is shaded blue and the freeze red on the (transparent) canvas.
    blue = page.evaluate(COUNT, BLUE)
    red = page.evaluate(COUNT, RED)
    journey.check("lot-journey")
    assert blue > 1000
    assert red > 300
