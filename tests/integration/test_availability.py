"""The public, CoWIN-shaped availability API and the district planner's view, on PostgreSQL."""

from __future__ import annotations

import json

import pytest

from logistics.app import create_app
from logistics.runtime import Runtime
from logistics.services import commitments
from logistics.services import sessions as svc
from logistics.services.availability import AvailabilityCache
from tests.support.sessions_fixtures import (
    SITE_TZ,
    add_store,
    add_unit,
    balance,
    day,
    make_site,
    now,
    receive,
    session_body,
)

pytestmark = pytest.mark.integration

BY_DISTRICT = "/api/v2/appointment/sessions/public/findByDistrict"
BY_CENTRE = "/api/v2/appointment/sessions/public/findByCenter"


def _cowin(date):
    return date.strftime("%d-%m-%Y")


def _open(client, site, capacity, **kw):
    response = client.post("/api/sessions", json=session_body(site, capacity, **kw))
    assert response.status_code == 201, response.json
    return response.json


def _worker(runtime: Runtime):
    """Another web process's app: its own availability cache, the same database."""
    app = create_app(runtime=runtime)
    app.config["TESTING"] = True
    return app.test_client()


def test_find_by_district_has_cowin_shape_and_needs_no_login(client, app, uow):
    site = make_site(uow)
    session = _open(client, site, 100, dose_number="2", min_age=45)
    public = app.test_client()  # no credentials
    response = public.get(
        BY_DISTRICT, query_string={"district_id": site.district.id, "date": _cowin(day(1))}
    )
    assert response.status_code == 200
    (found,) = response.json["sessions"]
    assert found["session_id"] == session["id"]
    assert found["center_id"] == site.centre.id
    assert found["date"] == _cowin(day(1))
    assert (
        found["available_capacity"],
        found["available_capacity_dose1"],
        found["available_capacity_dose2"],
    ) == (
        100,
        0,
        100,
    )
    assert found["min_age_limit"] == 45 and found["vaccine"] == "COVISHIELD"
    assert [slot["time"] for slot in found["slots"]] == [
        "09:00-11:00",
        "11:00-13:00",
        "13:00-15:00",
        "15:00-17:00",
    ]
    other_day = public.get(
        BY_DISTRICT, query_string={"district_id": site.district.id, "date": _cowin(day(2))}
    )
    assert other_day.json == {"sessions": []}


def test_find_by_centre(client, app, uow):
    site = make_site(uow)
    other = add_store(uow, "KA-BLR-PHC2", "centre", site.district)
    unit = add_unit(uow, other)
    uow.commit()
    receive(uow, unit, site.lot, 100)
    _open(client, site, 50)
    response = app.test_client().get(
        BY_CENTRE, query_string={"center_id": other.id, "date": _cowin(day(1))}
    )
    assert response.json == {"sessions": []}
    mine = app.test_client().get(
        BY_CENTRE, query_string={"center_id": site.centre.id, "date": _cowin(day(1))}
    )
    assert len(mine.json["sessions"]) == 1
    missing = app.test_client().get(
        BY_CENTRE, query_string={"center_id": 999999, "date": _cowin(day(1))}
    )
    assert missing.status_code == 404 and missing.content_type == "application/problem+json"


def test_bad_date_is_a_problem(app, uow):
    response = app.test_client().get(
        BY_DISTRICT, query_string={"district_id": 1, "date": "2021-05-01"}
    )
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert "date" in response.json["errors"]


def test_etag_answers_304_and_cache_control_is_set(client, app, uow):
    site = make_site(uow)
    _open(client, site, 100)
    public = app.test_client()
    query = {"district_id": site.district.id, "date": _cowin(day(1))}
    first = public.get(BY_DISTRICT, query_string=query)
    etag = first.headers["ETag"]
    assert "max-age=" in first.headers["Cache-Control"]
    max_age = int(first.headers["Cache-Control"].split("max-age=")[1].split(",")[0])
    assert max_age <= 1
    again = public.get(BY_DISTRICT, query_string=query, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    stale = public.get(
        BY_DISTRICT, query_string=query, headers={"If-None-Match": '"something-else"'}
    )
    assert stale.status_code == 200


def _book(runtime, session, beneficiary="X"):
    """A change made by yet another process (straight through the service)."""
    with runtime.uow() as work:
        svc.book_slot(
            work,
            session_id=session["id"],
            slot_id=session["slots"][0]["id"],
            beneficiary=beneficiary,
            actor="t",
            now=now(),
            site_timezone=SITE_TZ,
        )
        work.commit()


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _available(answer) -> int:
    return json.loads(answer.body)["sessions"][0]["available_capacity"]


def test_cached_answers_are_at_most_version_check_old(client, runtime, uow):
    site = make_site(uow)
    session = _open(client, site, 100)
    clock, check_s = FakeClock(), runtime.settings.availability_version_check_s
    workers = [AvailabilityCache(runtime.uow, check_s, clock=clock) for _ in range(2)]
    assert [_available(w.by_district(site.district.id, day(1))) for w in workers] == [100, 100]
    _book(runtime, session)
    clock.t += check_s * 0.9  # within the check interval a worker may still serve what it has
    assert [_available(w.by_district(site.district.id, day(1))) for w in workers] == [100, 100]
    clock.t += check_s * 0.1  # from then on, every worker asks the database again
    assert [_available(w.by_district(site.district.id, day(1))) for w in workers] == [99, 99]
    assert [_available(w.by_centre(site.centre.id, day(1))) for w in workers] == [99, 99]


def test_staleness_bound_of_the_settings_is_within_one_second(runtime):
    s = runtime.settings
    assert s.availability_version_check_s + s.availability_max_age_s <= 1


def test_a_change_reaches_every_worker_over_http(client, runtime, uow):
    site = make_site(uow)
    session = _open(client, site, 100)
    eager = Runtime(
        runtime.settings.replace(availability_version_check_s=0),
        runtime.engine,
        runtime.session_factory,
    )
    workers = [_worker(eager), _worker(eager)]
    query = {"district_id": site.district.id, "date": _cowin(day(1))}
    before = [w.get(BY_DISTRICT, query_string=query) for w in workers]
    assert all(r.json["sessions"][0]["available_capacity"] == 100 for r in before)
    _book(runtime, session)
    for worker, old in zip(workers, before, strict=True):
        answer = worker.get(
            BY_DISTRICT, query_string=query, headers={"If-None-Match": old.headers["ETag"]}
        )
        assert answer.status_code == 200
        assert answer.json["sessions"][0]["available_capacity"] == 99


def test_stock_change_that_shortens_a_session_is_seen(client, runtime, uow):
    site = make_site(uow, doses=100)
    _open(client, site, 100)
    eager = Runtime(
        runtime.settings.replace(availability_version_check_s=0),
        runtime.engine,
        runtime.session_factory,
    )
    worker = _worker(eager)
    query = {"district_id": site.district.id, "date": _cowin(day(1))}
    assert (
        worker.get(BY_DISTRICT, query_string=query).json["sessions"][0]["available_capacity"] == 100
    )
    balance(uow, site.ilr, site.lot).quarantined_doses = 40
    commitments.check_commitments(uow, site.centre.id, now(), site_timezone=SITE_TZ)
    uow.commit()
    assert (
        worker.get(BY_DISTRICT, query_string=query).json["sessions"][0]["available_capacity"] == 60
    )


def test_district_planner_view(client, runtime, uow):
    site = make_site(uow, doses=500)
    _open(client, site, 100, session_date=day(0).isoformat())
    later = _open(client, site, 200, session_date=day(2).isoformat())
    client.post(
        f"/api/sessions/{later['id']}/bookings",
        json={"slot_id": later["slots"][0]["id"], "beneficiary": "A"},
    )
    first = client.get(f"/api/sessions?store_id={site.centre.id}&date={day(0).isoformat()}").json[0]
    assert (
        client.post(
            f"/api/sessions/{first['id']}/report", json={"doses_given": 90, "vials_opened": 9}
        ).status_code
        == 201
    )

    rows = client.get(f"/api/districts/{site.district.id}/session-planner").json
    (row,) = rows
    assert row["centre_id"] == site.centre.id and row["product_code"] == "COVISHIELD"
    assert row["usable_doses"] == 410
    assert row["promised_doses"] == 200
    assert row["open_capacity"] == 199
    assert row["available_doses"] == 210
    window = runtime.settings.sessions_consumption_window_days
    assert row["daily_doses"] == round(90 / window, 2)
    assert row["days_of_stock"] == round(410 / round(90 / window, 2), 1)
    assert client.get("/api/districts/999999/session-planner").status_code == 404
