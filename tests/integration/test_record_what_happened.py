"""A centre can always record what already happened (issue 11, point 2), through HTTP.

Doses given before an excursion began are not blocked by the alarm that holds the unit now: a
consumption, a wastage and an end-of-session report are judged against the stock that was usable
when they happened.
"""

from __future__ import annotations

import datetime as dt
import uuid
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from logistics.models.alerts import QuarantineReview
from logistics.models.sessions import Session, Slot
from logistics.models.stock import StockBalance
from logistics.services.stock import receive_stock, recorded
from tests.support.alerts_fixtures import add_sensor, ingest, readings
from tests.support.sessions_fixtures import make_site

pytestmark = pytest.mark.integration
H = dt.timedelta(hours=1)


@pytest.fixture
def site(runtime, uow):
    site = make_site(uow, doses=0)
    receive_stock(
        uow,
        store_id=site.centre.id,
        unit_id=site.ilr.id,
        doses=500,
        rec=recorded("asha", dt.datetime.now(dt.UTC) - 48 * H, None),
        lot={"lot_id": site.lot.id},
    )
    add_sensor(uow, site.ilr.id, since=dt.datetime.now(dt.UTC) - 72 * H)
    uow.commit()
    return site


def freeze_from(runtime, start: dt.datetime) -> None:
    """A freeze alarm: the ILR at -1 C for 70 minutes from `start` (and still there)."""
    ingest(runtime, readings(start, (10, 4.0), (70, -1.0)), dt.datetime.now(dt.UTC))


def held(runtime, site) -> tuple[int, int]:
    with runtime.uow() as uow:
        balance = uow.session.scalars(
            select(StockBalance).where(StockBalance.unit_id == site.ilr.id)
        ).one()
        return balance.doses, balance.quarantined_doses


def movement(client, path, site, occurred_at, doses, **extra):
    return client.post(
        path,
        json={
            "client_id": str(uuid.uuid4()),
            "store_id": site.centre.id,
            "unit_id": site.ilr.id,
            "lot_id": site.lot.id,
            "doses": doses,
            "occurred_at": occurred_at.isoformat(),
            **extra,
        },
    )


def test_consumption_and_wastage_dated_before_the_excursion_are_recorded(client, runtime, site):
    start = dt.datetime.now(dt.UTC) - 5 * H
    freeze_from(runtime, start)
    assert held(runtime, site) == (500, 500)

    before = movement(client, "/api/consumptions", site, start - 2 * H, 30)
    assert before.status_code == 201, before.json
    broken = movement(client, "/api/wastages", site, start - H, 10, reason="breakage")
    assert broken.status_code == 201, broken.json
    # The doses given before the freeze never sat through it: the review holds what remains.
    assert held(runtime, site) == (460, 460)
    with runtime.uow() as uow:
        assert uow.session.scalars(select(QuarantineReview.doses)).one() == 460
    # Given 30 minutes into the freeze, before its 60 minutes made it an alarm: usable then.
    early = movement(client, "/api/consumptions", site, start + dt.timedelta(minutes=40), 20)
    assert early.status_code == 201, early.json
    assert held(runtime, site) == (440, 440)

    during = movement(client, "/api/consumptions", site, start + 2 * H, 5)
    assert during.status_code == 409
    assert during.headers["Content-Type"] == "application/problem+json"
    assert during.json["available_doses"] == 0
    assert held(runtime, site) == (440, 440)


def _yesterday_session(runtime, site, slot_end: dt.time) -> int:
    tz = ZoneInfo(runtime.settings.site_timezone)
    yesterday = dt.datetime.now(tz).date() - dt.timedelta(days=1)
    now = dt.datetime.now(dt.UTC)
    with runtime.uow() as uow:
        session = Session(
            store_id=site.centre.id,
            district_id=site.district.id,
            product_id=site.product.id,
            session_date=yesterday,
            capacity=100,
            dose_number="1",
            min_age=18,
            created_at=now - 48 * H,
            created_by="planner",
            updated_at=now - 48 * H,
        )
        uow.session.add(session)
        uow.session.flush()
        uow.session.add(
            Slot(session_id=session.id, starts_at=dt.time(9), ends_at=slot_end, capacity=100)
        )
        uow.commit()
        return session.id


def test_end_of_session_report_of_a_session_over_before_the_alarm_is_recorded(
    client, runtime, site
):
    session_id = _yesterday_session(runtime, site, dt.time(11))
    tz = ZoneInfo(runtime.settings.site_timezone)
    yesterday = dt.datetime.now(tz).date() - dt.timedelta(days=1)
    # The freeze began at 13:00 site time, two hours after the session's last slot ended.
    freeze_from(runtime, dt.datetime.combine(yesterday, dt.time(13), tzinfo=tz))
    assert held(runtime, site) == (500, 500)

    report = client.post(
        f"/api/sessions/{session_id}/report", json={"doses_given": 38, "vials_opened": 4}
    )
    assert report.status_code == 201, report.json
    assert report.json["wasted_doses"] == 2
    assert held(runtime, site) == (460, 460)
