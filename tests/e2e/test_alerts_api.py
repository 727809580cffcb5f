"""The alerts API over HTTP: filters, acknowledge, resolve, excursions, reviews, MKT, rules."""

from __future__ import annotations

import datetime as dt

import pytest

from logistics.models.stock import StockBalance
from tests.support.alerts_fixtures import add_sensor, ingest, make_tree, readings

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
T0 = dt.datetime(2021, 1, 9, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


@pytest.fixture
def tree(runtime):
    from logistics.services.stock import receive_stock, recorded

    with runtime.uow() as uow:
        tree = make_tree(uow)
        uow.session.query(StockBalance).delete()
        add_sensor(uow, tree.ilr.id)
        uow.commit()
        receive_stock(
            uow,
            store_id=tree.centre.id,
            unit_id=tree.ilr.id,
            doses=500,
            rec=recorded("asha", T0 - 2 * H, None),
            lot={"lot_id": tree.lot.id},
        )
        uow.commit()
    ingest(runtime, readings(T0, (30, 5.0), (601, 9.0), (30, 5.0)), T0 + 12 * H)
    return tree


def q(**params):
    return {k: v.isoformat() if isinstance(v, dt.datetime) else v for k, v in params.items()}


def test_alerts_filtered_by_subtree_kind_and_state(client, tree):
    got = client.get("/api/alerts", query_string=q(store_id=tree.district.id, kind="heat_alarm"))
    assert got.status_code == 200
    [alert] = got.json
    assert alert["state"] == "resolved"  # back in range at the end of the trace
    assert client.get("/api/alerts", query_string=q(store_id=tree.other_district.id)).json == []
    assert client.get("/api/alerts", query_string=q(state="open", kind="heat_alarm")).json == []
    assert client.get("/api/alerts", query_string=q(since=T0 + 13 * H)).json == []
    missing = client.get("/api/alerts", query_string=q(store_id=9999))
    assert missing.status_code == 404 and missing.content_type == "application/problem+json"


def test_acknowledge_and_resolve_over_http(client, runtime, tree):
    from logistics.services.alerts import raise_alert

    with runtime.uow() as uow:
        alert = raise_alert(
            uow,
            kind="sensor_silent",
            subject_type="sensor",
            subject_id="S-9",
            store_id=tree.centre.id,
            severity="alarm",
            message="silent",
            details={},
            now=T0,
        )
        uow.commit()
    url = f"/api/alerts/{alert.id}"
    bad = client.post(url + "/acknowledge", json={})
    assert bad.status_code == 422 and bad.content_type == "application/problem+json"
    assert "comment" in bad.json["errors"]
    ok = client.post(url + "/acknowledge", json={"comment": "checking the ILR"})
    assert (
        ok.status_code == 200 and ok.json["state"] == "acknowledged" and ok.json["acknowledged_by"]
    )
    again = client.post(url + "/acknowledge", json={"comment": "again"})
    assert again.status_code == 409 and again.content_type == "application/problem+json"
    done = client.post(url + "/resolve", json={"comment": "logger replaced"})
    assert done.json["state"] == "resolved"
    assert [e["event"] for e in client.get(url).json["events"]] == [
        "opened",
        "acknowledged",
        "resolved",
    ]
    assert client.get("/api/alerts/999999").status_code == 404


def test_excursions_and_quarantine_review(client, tree):
    excursions = client.get(
        "/api/excursions", query_string=q(store_id=tree.state.id, kind="heat_alarm")
    ).json
    assert len(excursions) == 1 and excursions[0]["minutes_outside"] == 600
    assert excursions[0]["lots"][0]["doses"] == 500
    [review] = client.get(
        "/api/quarantine-reviews", query_string=q(store_id=tree.centre.id, state="pending")
    ).json
    assert review["reason"] == "heat_exposure"
    assert (
        client.post(f"/api/quarantine-reviews/{review['id']}/release", json={}).status_code == 422
    )
    released = client.post(
        f"/api/quarantine-reviews/{review['id']}/release", json={"comment": "VVM 1"}
    )
    assert released.status_code == 200 and released.json["state"] == "released"
    assert (
        client.post(f"/api/quarantine-reviews/{review['id']}/discard", json={}).status_code == 409
    )


def test_mkt_and_thermal_history(client, tree):
    mkt = client.get(
        f"/api/units/{tree.ilr.id}/mkt", query_string=q(start=T0, end=T0 + 11 * H)
    ).json
    assert 5.0 < mkt["mkt_c"] < 9.0 and mkt["readings"] > 600
    history = client.get(
        f"/api/lots/{tree.lot.id}/thermal-history",
        query_string=q(start=T0 - 3 * H, end=T0 + 12 * H),
    ).json
    [stay] = history["stays"]
    assert stay["unit_id"] == tree.ilr.id and stay["store_id"] == tree.centre.id
    assert sorted(e["kind"] for e in stay["excursions"]) == ["heat_alarm", "heat_warning"]
    assert history["mkt_c"] == pytest.approx(stay["mkt_c"], abs=0.05)
    bad = client.get(f"/api/units/{tree.ilr.id}/mkt", query_string=q(start=T0, end=T0 - H))
    assert bad.status_code == 422


def test_rules_get_and_set(client, tree):
    got = client.get(f"/api/temperature-rules/products/{tree.product.id}").json
    assert got["source"] == "defaults"
    assert {(r["side"], r["level"], r["duration_min"]) for r in got["rules"]} >= {
        ("heat", "alarm", 600)
    }
    body = {
        "min_temp_c": 2,
        "max_temp_c": 8,
        "rules": [
            {
                "side": "heat",
                "level": "alarm",
                "limit_c": 8,
                "mode": "cumulative",
                "duration_min": 120,
                "window_min": 1440,
            }
        ],
    }
    put = client.put(f"/api/temperature-rules/units/{tree.ilr.id}", json=body)
    assert put.status_code == 200 and put.json["source"] == "unit"
    body["rules"][0]["window_min"] = 60
    assert client.put(f"/api/temperature-rules/units/{tree.ilr.id}", json=body).status_code == 422
    assert client.delete(f"/api/temperature-rules/units/{tree.ilr.id}").status_code == 204
    assert client.get(f"/api/temperature-rules/units/{tree.ilr.id}").json["source"] == "products"
