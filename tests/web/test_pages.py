"""The web app through HTTP as a browser sends it: login, CSRF, forms recorded once, errors by
their field, the policy, languages and Indian formats, the chart's size (issue 14)."""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
import tomllib
import uuid
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from logistics.models.catalog import StorageUnit
from logistics.models.readings import Reading, Sensor, SensorAssignment
from logistics.models.stock import StockBalance
from logistics.services.readings import rebuild_hours
from tests.web.conftest import csrf_of, login

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
GS1 = "(01)08901234567890(10)WEB777(17){expiry}"


def _balance(runtime, unit_id: int, lot_number: str) -> int:
    from logistics.models.catalog import Lot

    with runtime.uow() as uow:
        lot = uow.session.scalars(select(Lot).where(Lot.lot_number == lot_number)).one()
        row = uow.session.scalars(
            select(StockBalance).where(
                StockBalance.unit_id == unit_id, StockBalance.lot_id == lot.id
            )
        ).one_or_none()
        return row.doses if row else 0


def _form(client, page_url: str) -> tuple[str, str]:
    html = client.get(page_url).get_data(as_text=True)
    return html, csrf_of(html)


def test_pages_need_a_login_and_the_login_form_uses_username_and_password(app, demo, runtime):
    client = app.test_client()
    response = client.get("/stores/1")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    page = client.get("/login").get_data(as_text=True)
    assert 'name="username"' in page and 'name="password"' in page
    from logistics.services.auth import create_user

    with runtime.uow() as uow:
        create_user(uow, username="ana", password="correct horse battery", roles=["admin"])
        uow.commit()
    assert login(client, "ana", "wrong password").status_code == 401
    assert login(client, "ana").status_code == 303
    assert client.get("/stores/1").status_code == 200


def test_logout_revokes_the_session_token(person, demo):
    client = person("admin")
    html, token = _form(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/").status_code == 302  # the cookie's token is revoked


def test_a_post_without_the_csrf_token_is_refused_and_records_nothing(person, demo, runtime):
    client = person("admin")
    before = _balance(runtime, demo["units"]["MH-SVS-PUNE/WIC-1"], "4121Z045")
    data = {
        "client_id": str(uuid.uuid4()),
        "unit_id": demo["units"]["MH-SVS-PUNE/WIC-1"],
        "lot_id": demo["lots"]["4121Z045"],
        "doses": 10,
        "reason": "breakage",
    }
    response = client.post("/stores/1/forms/wastage", data=data)
    assert response.status_code == 400
    assert _balance(runtime, demo["units"]["MH-SVS-PUNE/WIC-1"], "4121Z045") == before


def test_a_receipt_by_gs1_is_recorded_once_however_often_the_form_is_sent(person, demo, runtime):
    client = person("district_officer", "MH-DVS-PUNE")
    unit = demo["units"]["MH-DVS-PUNE/ILR-1"]
    expiry = (dt.date.today() + dt.timedelta(days=300)).strftime("%y%m%d")
    html, token = _form(client, "/stores/2")
    client_id = re.search(
        r'id="form-receipt".*?name="client_id" value="([^"]+)"', html, re.S
    ).group(1)
    data = {
        "csrf_token": token,
        "client_id": client_id,
        "gs1": GS1.format(expiry=expiry),
        "manufacturer": "Serum Institute of India",
        "unit_id": unit,
        "doses": 500,
    }
    first = client.post("/stores/2/forms/receipt", data=data, headers={"HX-Request": "true"})
    again = client.post("/stores/2/forms/receipt", data=data, headers={"HX-Request": "true"})
    assert first.status_code == again.status_code == 200
    assert "WEB777" in first.get_data(as_text=True)
    assert first.headers["HX-Trigger"] == "stock-changed"
    assert _balance(runtime, unit, "WEB777") == 500  # twice sent, once recorded


def test_a_refused_issue_shows_the_service_error_next_to_the_doses_field(person, demo, runtime):
    client = person("district_officer", "MH-DVS-PUNE")
    html, token = _form(client, "/stores/2")
    data = {
        "csrf_token": token,
        "client_id": str(uuid.uuid4()),
        "to_store_id": 4,
        "product_id": demo["products"]["COVISHIELD"],
        "doses": 90_000_000,
    }
    response = client.post("/stores/2/forms/issue", data=data, headers={"HX-Request": "true"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    error = re.search(r'id="issue-doses-error">([^<]+)<', body)
    assert error and "usable doses" in error.group(1)
    assert 'aria-invalid="true" aria-describedby="issue-doses-error"' in body


def test_a_form_without_javascript_redirects_after_success(person, demo, runtime):
    client = person("admin")
    unit = demo["units"]["MH-SVS-PUNE/WIC-1"]
    before = _balance(runtime, unit, "4121Z045")
    html, token = _form(client, "/stores/1")
    data = {
        "csrf_token": token,
        "client_id": str(uuid.uuid4()),
        "unit_id": unit,
        "lot_id": demo["lots"]["4121Z045"],
        "doses": 10,
        "reason": "breakage",
    }
    response = client.post("/stores/1/forms/wastage", data=data)
    assert response.status_code == 303
    assert "10" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert _balance(runtime, unit, "4121Z045") == before - 10


def test_a_store_outside_the_users_subtree_is_not_shown(person, demo):
    client = person("centre_officer", "PUN-PHC-KHED")
    assert client.get("/stores/4").status_code == 200
    assert client.get("/stores/1").status_code == 404
    assert client.get("/units/3").status_code == 404


def test_the_policy_refuses_a_form_the_role_may_not_send(person, demo, runtime):
    client = person("planner", "PUN-PHC-KHED")
    unit = demo["units"]["PUN-PHC-KHED/ILR-1"]
    before = _balance(runtime, unit, "4121Z001")
    html, token = _form(client, "/stores/4")
    data = {
        "csrf_token": token,
        "client_id": str(uuid.uuid4()),
        "unit_id": unit,
        "lot_id": demo["lots"]["4121Z001"],
        "doses": 1,
        "reason": "breakage",
    }
    response = client.post("/stores/4/forms/wastage", data=data)
    assert response.status_code == 422
    assert "stock.write" in response.get_data(as_text=True)
    assert _balance(runtime, unit, "4121Z001") == before


def test_hindi_from_the_browser_and_a_remembered_switch(person, demo):
    client = person("admin")
    hindi = client.get("/", headers={"Accept-Language": "hi-IN,hi;q=0.9,en;q=0.5"})
    assert '<html lang="hi">' in hindi.get_data(as_text=True)
    assert "मुखपृष्ठ" in hindi.get_data(as_text=True)
    switched = client.get("/language/en?next=/", headers={"Accept-Language": "hi"})
    assert switched.status_code == 303
    english = client.get("/", headers={"Accept-Language": "hi"}).get_data(as_text=True)
    assert '<html lang="en">' in english and "Home" in english


def test_every_string_has_its_hindi_translation():
    from babel.messages.mofile import read_mo

    with open(ROOT / "logistics/web/translations/hi/LC_MESSAGES/messages.mo", "rb") as fh:
        catalog = read_mo(fh)
    from tools.hindi import HINDI

    ids = {m.id for m in catalog if m.id}
    assert ids and all(catalog[i].string for i in ids)
    assert set(HINDI) >= ids


def test_the_num_filter_writes_indian_numbers_in_both_languages(app):
    template = app.jinja_env.from_string(
        "{% for n in whole %}{{ n|num }};{% endfor %}|{{ 1234.5|num(1) }}|{{ none|num }}"
    )
    whole = (0, -7, 999, -1000, 99999, -99999, 100000, -100000, 1234567)
    for language in ("en", "hi"):
        with app.test_request_context("/", headers={"Accept-Language": language}):
            assert template.render(whole=whole, none=None) == (
                "0;-7;999;-1,000;99,999;-99,999;1,00,000;-1,00,000;12,34,567;|1,234.5|—"
            )


def test_numbers_and_dates_use_the_indian_formats_in_the_site_time_zone(app, person, demo):
    from logistics.web import i18n

    for language in ("en", "hi"):
        with app.test_request_context("/", headers={"Accept-Language": language}):
            assert i18n.number(1234567) == "12,34,567"  # lakh grouping, never 1,234,567
            shown = {n: i18n.number(n) for n in (0, -7, 999, -1000, 99999, 100000, -100000, 10**7)}
            assert shown == {
                0: "0",
                -7: "-7",
                999: "999",
                -1000: "-1,000",
                99999: "99,999",
                100000: "1,00,000",
                -100000: "-1,00,000",
                10**7: "1,00,00,000",
            }
            # 20:00 UTC on 1 Dec is 01:30 on 2 Dec in the site zone (Asia/Kolkata).
            shown = i18n.datetime(dt.datetime(2026, 12, 1, 20, 0, tzinfo=dt.UTC))
            assert "2/12/26" in shown and "1:30" in shown
    # babel's format_datetime(value, "short", tzinfo=Asia/Kolkata) for en_IN and hi_IN, copied.
    expected = {
        ("en", dt.datetime(2026, 12, 1, 20, 0, tzinfo=dt.UTC)): "02/12/26, 1:30\u202fAM",
        ("en", dt.datetime(2026, 12, 1, 7, 59, 59, tzinfo=dt.UTC)): "01/12/26, 1:29\u202fPM",
        ("en", dt.datetime(2026, 12, 2, 7, 59, 59, tzinfo=dt.UTC)): "02/12/26, 1:29\u202fPM",
        ("hi", dt.datetime(2026, 12, 1, 20, 0, tzinfo=dt.UTC)): "2/12/26, 1:30 am",
        ("hi", dt.datetime(2026, 12, 1, 7, 59, 59, tzinfo=dt.UTC)): "1/12/26, 1:29 pm",
        ("hi", dt.datetime(2026, 12, 1, 20, 0)): "2/12/26, 1:30 am",  # naive is UTC
    }
    for (language, moment), text in expected.items():
        with app.test_request_context("/", headers={"Accept-Language": language}):
            assert i18n.datetime(moment) == text, (language, moment)
    with app.test_request_context("/", headers={"Accept-Language": "hi"}):
        assert i18n.date(dt.date(2026, 12, 1)) == "1 दिस॰ 2026"
    page = (
        person("admin").get("/stores/1", headers={"Accept-Language": "en"}).get_data(as_text=True)
    )
    assert re.search(r">[1-9]\d?,\d\d\d<", page)  # doses shown with their grouping


def test_the_unit_page_shows_the_state_of_the_units_current_sensors_only(person, demo, runtime):
    unit = demo["units"]["PUN-PHC-KHED/ILR-1"]
    other = next(u for code, u in demo["units"].items() if u != unit)
    now = dt.datetime.now(dt.UTC)
    day = dt.timedelta(days=1)
    with runtime.uow() as uow:
        for sensor_id, battery in (("NOW-1", 61), ("GONE-1", 17), ("ELSE-1", 33), ("SOON-1", 44)):
            uow.session.add(
                Sensor(
                    sensor_id=sensor_id,
                    registered_at=now - 9 * day,
                    battery_pct=battery,
                    power="battery",
                    connection="online",
                )
            )
        uow.session.flush()
        uow.session.add_all(
            [
                SensorAssignment(sensor_id="NOW-1", unit_id=unit, valid_from=now - 2 * day),
                SensorAssignment(
                    sensor_id="GONE-1", unit_id=unit, valid_from=now - 8 * day, valid_to=now - day
                ),
                SensorAssignment(sensor_id="ELSE-1", unit_id=other, valid_from=now - 8 * day),
                SensorAssignment(sensor_id="SOON-1", unit_id=unit, valid_from=now + day),
            ]
        )
        uow.commit()
    page = person("admin").get(f"/units/{unit}", headers={"Accept-Language": "en"})
    section = page.get_data(as_text=True).split('id="h-sensor"', 1)[1]
    assert "<dd>NOW-1</dd>" in section and "<dd>61 %</dd>" in section
    for absent in ("GONE-1", "ELSE-1", "SOON-1", "17 %", "33 %", "44 %"):
        assert absent not in section


def test_the_day_chart_shades_the_excursions_that_overlap_its_day_only(person, demo, runtime):
    from logistics.models.alerts import Excursion

    unit = demo["units"]["PUN-PHC-KHED/ILR-1"]
    other = next(u for u in demo["units"].values() if u != unit)
    now = dt.datetime.now(dt.UTC)
    hour = dt.timedelta(hours=1)
    with runtime.uow() as uow:
        store_of = {u: uow.session.get(StorageUnit, u).store_id for u in (unit, other)}
        for at_unit, kind, started, ended in (
            (unit, "cold_alarm", now - 30 * hour, now - 26 * hour),  # over before the day began
            (unit, "heat_alarm", now - 30 * hour, now - 20 * hour),  # began before it, ended inside
            (unit, "heat_alarm", now - 2 * hour, None),  # still open
            (other, "cold_alarm", now - 2 * hour, None),  # another unit's
        ):
            uow.session.add(
                Excursion(
                    unit_id=at_unit,
                    store_id=store_of[at_unit],
                    kind=kind,
                    started_at=started,
                    triggered_at=started,
                    ended_at=ended,
                    peak_temp_c=9.5 if kind.startswith("heat") else -1.0,
                    minutes_outside=60.0,
                    thresholds={},
                    updated_at=now,
                )
            )
        uow.commit()
    body = person("admin").get(f"/units/{unit}").get_data(as_text=True)
    data = json.loads(re.search(r'id="chart-data-\d+">(.*?)</script>', body, re.S)[1])
    shaded = data["excursions"]
    # Newest first: the open one (to the chart's end), then the one cut at the day's start.
    assert [kind for _, _, kind in shaded] == ["heat_alarm", "heat_alarm"]
    assert shaded[0][0] == int((now - 2 * hour).timestamp()) and shaded[0][1] == data["end"]
    assert shaded[1] == [data["start"], int((now - 20 * hour).timestamp()), "heat_alarm"]


def test_the_30_day_chart_sends_at_most_2000_points(person, demo, runtime):
    unit = demo["units"]["PUN-PHC-KHED/ILR-1"]
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    start = now - dt.timedelta(days=30)
    with runtime.uow() as uow:
        uow.session.add(Sensor(sensor_id="W-1", expected_interval_s=60, registered_at=start))
        uow.session.flush()
        uow.session.add(SensorAssignment(sensor_id="W-1", unit_id=unit, valid_from=start))
        uow.session.flush()
        rows = [
            {
                "sensor_id": "W-1",
                "unit_id": unit,
                "ts": start + dt.timedelta(minutes=i),
                "temp_c": 5.0 + (i % 7) / 10,
                "received_at": now,
                "late": False,
            }
            for i in range(30 * 1440)
        ]
        uow.session.execute(insert(Reading), rows)
        # The ingestion keeps the hourly aggregates; rows inserted around it need them rebuilt.
        rebuild_hours(uow, [unit], start)
        uow.commit()
    client = person("admin")
    body = client.get(f"/units/{unit}/chart?range=30d").get_data(as_text=True)
    data = json.loads(
        re.search(r'type="application/json"[^>]*>(.*?)</script>', body, re.S).group(1)
    )
    # Beyond two days the chart is drawn from the hourly aggregates (issue 16): one bucket per
    # hour of the 30 days (721 hours are touched, 720 when the readings end on the hour).
    assert data["bucket_s"] == 3600
    assert len(data["t"]) in (720, 721)
    assert len(data["min"]) == len(data["max"]) == len(data["avg"]) == len(data["t"])
    assert min(data["min"]) == 5.0 and max(data["max"]) == 5.6
    assert data["band"] == [2.0, 8.0]


def test_templates_static_and_translations_are_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["logistics"]
    web = ROOT / "logistics" / "web"
    files = [
        p
        for folder in ("templates", "static", "translations")
        for p in (web / folder).rglob("*")
        if p.is_file()
    ]
    assert files
    for path in files:
        relative = path.relative_to(ROOT / "logistics").as_posix()
        assert any(
            fnmatch.fnmatch(relative, pattern) and relative.count("/") == pattern.count("/")
            for pattern in patterns
        ), relative


def test_usability_by_date_answers_as_usability_does_for_each_date(runtime, demo):
    from logistics.services import sessions as svc

    today = dt.date.today()
    dates = [today + dt.timedelta(days=n) for n in (0, 1, 30, 200)]
    with runtime.uow() as uow:
        for product in demo["products"].values():
            each = [
                svc.usability(uow, store_id=4, product_id=product, on_date=d, today=today)
                for d in dates
            ]
            assert (
                svc.usability_by_date(uow, store_id=4, product_id=product, dates=dates, today=today)
                == each
            )


def test_a_refusal_about_a_hidden_field_is_shown_on_the_form(person, demo, runtime):
    from logistics.services import stock

    with runtime.uow() as uow:
        movement = stock.issue_stock(
            uow,
            store_id=2,
            to_store_id=4,
            doses=100,
            rec=stock.recorded("setup", None, None),
            product_id=1,
        )
        uow.commit()
        shipment = movement.shipment_id
    client = person("centre_officer", "PUN-PHC-KHED")
    html, token = _form(client, "/stores/4")
    data = {
        "csrf_token": token,
        "shipment_id": shipment,
        "unit_id": demo["units"]["PUN-PHC-KHED/ILR-1"],
    }
    first = client.post(
        "/stores/4/forms/receive",
        headers={"HX-Request": "true"},
        data={**data, "client_id": str(uuid.uuid4())},
    )
    assert first.status_code == 200
    again = client.post(
        "/stores/4/forms/receive",
        headers={"HX-Request": "true"},
        data={**data, "client_id": str(uuid.uuid4())},
    )  # a new form: refused
    assert again.status_code == 422
    assert re.search(
        rf'role="alert">Conflict: shipment {shipment} is received<', again.get_data(as_text=True)
    )


def test_each_request_shows_its_own_language_however_they_alternate(person, demo):
    # The words, VVM labels and days of a page are kept per request (i18n.PageState): a request
    # in one language must not leave them to the next request in the other.
    client = person("state_officer", "MH-SVS-PUNE")
    store = demo["stores"]["MH-SVS-PUNE"]
    english = ("Recent movements", "Stage 1 (usable)")
    hindi = ("हाल के लेन-देन", "चरण 1 (उपयोग योग्य)")
    for language in ("hi", "en", "en", "hi", "en"):
        page = client.get(f"/stores/{store}", headers={"Accept-Language": language})
        text = page.get_data(as_text=True)
        shown, other = (hindi, english) if language == "hi" else (english, hindi)
        assert all(word in text for word in shown), (language, shown)
        assert not any(word in text for word in other), (language, [w for w in other if w in text])


def test_the_receive_form_offers_the_shipments_coming_to_the_store_not_those_leaving(person, demo):
    district, centre = demo["stores"]["MH-DVS-PUNE"], demo["stores"]["PUN-PHC-KHED"]
    sender = person("district_officer", "MH-DVS-PUNE")
    html, token = _form(sender, f"/stores/{district}")
    data = {
        "csrf_token": token,
        "client_id": str(uuid.uuid4()),
        "to_store_id": centre,
        "product_id": demo["products"]["COVISHIELD"],
        "doses": 20,
    }
    issued = sender.post(f"/stores/{district}/forms/issue", data=data)
    assert issued.status_code == 303

    page = person("centre_officer", "PUN-PHC-KHED").get(f"/stores/{centre}")
    coming = re.search(r'id="form-receive".*?</section>', page.get_data(as_text=True), re.S)[0]
    (shipment,) = re.findall(r'name="shipment_id" value="(\d+)"', coming)
    assert f"Shipment {shipment}" in coming and 'max="20"' in coming
    # The sender's page has no receive form: its shipment is leaving, not coming.
    assert 'id="form-receive"' not in sender.get(f"/stores/{district}").get_data(as_text=True)
