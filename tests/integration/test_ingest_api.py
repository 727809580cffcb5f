"""The readings API over HTTP: sensors (register, move, retire), readings, latest per store."""

from __future__ import annotations

import datetime as dt

import pytest

from logistics.domain.readings import SensorReading
from logistics.models.catalog import StorageUnit, Store
from logistics.services.readings import record_readings

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def tree(runtime) -> dict[str, int]:
    """A district with a centre below it; one ILR each."""
    with runtime.uow() as uow:
        district = Store(code="DVS-1", name="District", level_code="district", path="/")
        uow.session.add(district)
        uow.session.flush()
        district.path = f"/{district.id}/"
        centre = Store(
            code="PHC-1", name="Centre", level_code="centre", parent_id=district.id, path="/"
        )
        uow.session.add(centre)
        uow.session.flush()
        centre.path = f"{district.path}{centre.id}/"
        units = [
            StorageUnit(store_id=s.id, code="ILR-1", kind="ilr", min_temp_c=2, max_temp_c=8)
            for s in (district, centre)
        ]
        uow.session.add_all(units)
        uow.commit()
        return {
            "district": district.id,
            "centre": centre.id,
            "d_unit": units[0].id,
            "c_unit": units[1].id,
        }


def register(client, sensor_id: str, unit_id: int, since: dt.datetime):
    return client.post(
        "/api/sensors",
        json={"sensor_id": sensor_id, "unit_id": unit_id, "valid_from": since.isoformat()},
    )


def store_readings(runtime, sensor_id: str, points: list[tuple[dt.datetime, float]]) -> None:
    with runtime.uow() as uow:
        record_readings(uow, [SensorReading(sensor_id, ts, temp, NOW) for ts, temp in points], NOW)
        uow.commit()


def test_register_move_retire_and_history(client, runtime):
    ids = tree(runtime)
    created = register(client, "S-1", ids["c_unit"], NOW - dt.timedelta(days=1))
    assert created.status_code == 201 and created.json["status"] == "active"
    again = register(client, "S-1", ids["c_unit"], NOW)
    assert again.status_code == 409 and again.content_type == "application/problem+json"
    moved = client.post(
        "/api/sensors/S-1/moves", json={"unit_id": ids["d_unit"], "valid_from": NOW.isoformat()}
    )
    assert moved.status_code == 200
    backwards = client.post(
        "/api/sensors/S-1/moves",
        json={"unit_id": ids["c_unit"], "valid_from": (NOW - dt.timedelta(days=2)).isoformat()},
    )
    assert backwards.status_code == 409
    detail = client.get("/api/sensors/S-1").json
    assert [(a["unit_id"], a["valid_to"] is None) for a in detail["assignments"]] == [
        (ids["c_unit"], False),
        (ids["d_unit"], True),
    ]
    assert client.post("/api/sensors/S-1/retirement").json["status"] == "retired"
    assert client.post("/api/sensors/S-1/retirement").status_code == 409


def test_validation_errors_are_problems(client, runtime):
    ids = tree(runtime)
    bad = client.post("/api/sensors", json={"sensor_id": "a/b#", "unit_id": ids["c_unit"]})
    assert bad.status_code == 422 and "sensor_id" in bad.json["errors"]
    naive = client.post(
        "/api/sensors",
        json={"sensor_id": "ok", "unit_id": ids["c_unit"], "valid_from": "2021-04-28T10:00:00"},
    )
    assert naive.status_code == 422
    assert register(client, "ok", 999999, NOW).status_code == 404
    assert client.get("/api/sensors/none").status_code == 404


def test_move_reassigns_readings_already_stored(client, runtime):
    ids = tree(runtime)
    register(client, "S-2", ids["c_unit"], NOW - dt.timedelta(days=1))
    store_readings(runtime, "S-2", [(NOW - dt.timedelta(hours=h), 5.0) for h in range(4)])
    client.post(
        "/api/sensors/S-2/moves",
        json={
            "unit_id": ids["d_unit"],
            "valid_from": (NOW - dt.timedelta(hours=1, minutes=30)).isoformat(),
        },
    )
    start, end = NOW - dt.timedelta(days=1), NOW + dt.timedelta(minutes=1)
    query = f"start={start.isoformat()}&end={end.isoformat()}"
    centre = client.get(f"/api/units/{ids['c_unit']}/readings?{query.replace('+', '%2B')}").json[
        "readings"
    ]
    district = client.get(f"/api/units/{ids['d_unit']}/readings?{query.replace('+', '%2B')}").json[
        "readings"
    ]
    assert len(centre) == 2 and len(district) == 2


def test_unit_readings_raw_and_downsampled(client, runtime):
    ids = tree(runtime)
    register(client, "S-3", ids["c_unit"], NOW - dt.timedelta(days=1))
    start = NOW.replace(minute=0, second=0) - dt.timedelta(hours=2)
    store_readings(
        runtime, "S-3", [(start + dt.timedelta(minutes=5 * k), 4.0 + k % 3) for k in range(24)]
    )
    params = {"start": start.isoformat(), "end": (start + dt.timedelta(hours=2)).isoformat()}
    raw = client.get(f"/api/units/{ids['c_unit']}/readings", query_string=params)
    assert raw.status_code == 200 and len(raw.json["readings"]) == 24
    assert raw.json["readings"][0]["ts"] < raw.json["readings"][-1]["ts"]
    buckets = client.get(
        f"/api/units/{ids['c_unit']}/readings", query_string={**params, "bucket": "1h"}
    ).json
    assert buckets["bucket_s"] == 3600
    assert [(b["count"], b["min_temp_c"], b["max_temp_c"]) for b in buckets["buckets"]] == [
        (12, 4, 6),
        (12, 4, 6),
    ]
    assert (
        client.get(
            f"/api/units/{ids['c_unit']}/readings", query_string={**params, "bucket": "7 weeks"}
        ).status_code
        == 422
    )
    assert (
        client.get(
            f"/api/units/{ids['c_unit']}/readings",
            query_string={"start": params["end"], "end": params["start"]},
        ).status_code
        == 422
    )


def test_latest_per_store_and_district_subtree(client, runtime):
    ids = tree(runtime)
    register(client, "S-4", ids["c_unit"], NOW - dt.timedelta(days=1))
    store_readings(
        runtime,
        "S-4",
        [(NOW - dt.timedelta(minutes=10), 4.5), (NOW - dt.timedelta(minutes=1), 7.5)],
    )
    own = client.get(f"/api/stores/{ids['district']}/latest-readings").json
    assert [u["unit_id"] for u in own] == [ids["d_unit"]] and own[0]["sensor"] is None
    subtree = client.get(f"/api/stores/{ids['district']}/latest-readings?subtree=true").json
    by_unit = {u["unit_id"]: u for u in subtree}
    assert set(by_unit) == {ids["d_unit"], ids["c_unit"]}
    assert by_unit[ids["c_unit"]]["sensor"]["last_temp_c"] == 7.5
    assert client.get("/api/stores/999999/latest-readings").status_code == 404


def test_every_column_of_a_batch_is_stored_as_read_nulls_included(client, runtime):
    from sqlalchemy import select

    from logistics.models.readings import Reading

    ids = tree(runtime)
    assert register(client, "S-9", ids["c_unit"], NOW - dt.timedelta(days=1)).status_code == 201
    early = NOW - dt.timedelta(hours=2, microseconds=250)
    sent = [
        SensorReading("S-9", early, -0.1, NOW, 87.5, "battery", 2**31 - 1),
        SensorReading("S-9", NOW - dt.timedelta(minutes=1), 4.0000000000000036, NOW),
        SensorReading("S-9", NOW, 1e-05, NOW, 0.0, "mains", 0),
    ]
    with runtime.uow() as uow:
        record_readings(uow, sent, NOW, late_after_s=900)
        uow.commit()
    with runtime.uow() as uow:
        stored = uow.session.execute(
            select(
                Reading.ts,
                Reading.temp_c,
                Reading.battery_pct,
                Reading.power,
                Reading.seq,
                Reading.unit_id,
                Reading.received_at,
                Reading.late,
            ).order_by(Reading.ts)
        ).all()
    assert [tuple(row) for row in stored] == [
        (early, -0.1, 87.5, "battery", 2**31 - 1, ids["c_unit"], NOW, True),
        (
            NOW - dt.timedelta(minutes=1),
            4.0000000000000036,
            None,
            None,
            None,
            ids["c_unit"],
            NOW,
            False,
        ),
        (NOW, 1e-05, 0.0, "mains", 0, ids["c_unit"], NOW, False),
    ]
