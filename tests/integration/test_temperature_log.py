"""A unit's monthly temperature log through the API on PostgreSQL: daily min/max, times outside,
excursions with their reviews and decisions, MKT, the officer's sign-off; JSON, CSV and PDF
(issue 19, point 2)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import math

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from logistics.models.alerts import QuarantineReview
from logistics.models.auth import AuditEntry
from logistics.services import quarantine
from tests.support.alerts_fixtures import add_sensor, ingest, make_tree, readings

pytestmark = pytest.mark.integration
MARCH_START = dt.datetime(2026, 2, 28, 18, 30, tzinfo=dt.UTC)  # 1 March, midnight in India
DAY = 1440
# Readings every 10 minutes through March (site days): four times outside the +2..+8 C range.
SEGMENTS = [
    (600, 5.0),
    (120, 9.5),
    (720, 4.0),  # 1 March: 2 h at 9.5 C
    (DAY, 5.0),
    (600, 5.0),
    (60, 1.0),
    (780, 5.0),  # 3 March: 1 h at 1 C
    (DAY, 5.0),
    (600, 5.0),
    (660, 9.5),
    (180, 5.0),  # 5 March: 11 h at 9.5 C, a heat alarm
    (26 * DAY, 5.0),
]


@pytest.fixture
def tree(runtime, uow):
    tree = make_tree(uow)
    add_sensor(uow, tree.ilr.id, since=MARCH_START - dt.timedelta(days=1))
    uow.commit()
    now = dt.datetime.now(dt.UTC)
    ingest(runtime, readings(MARCH_START, *SEGMENTS, step_min=10), now)
    review = uow.session.scalars(select(QuarantineReview)).one()
    quarantine.release_review(
        uow, review_id=review.id, comment="VVM stage 1, release", actor="officer-a", now=now
    )
    uow.commit()
    return tree


def log_of(client, tree, month="2026-03", suffix=""):
    return client.get(f"/api/temperature-logs/{tree.ilr.id}/{month}{suffix}")


def expected_mkt():
    """USP <1160> by hand: every reading stands for 10 minutes (shared/domain.md, dH/R 10,000 K)."""
    counts = {9.5: 12 + 66, 4.0: 72, 1.0: 6}
    counts[5.0] = 31 * 144 - sum(counts.values())
    total = sum(n * math.exp(-10_000 / (t + 273.15)) for t, n in counts.items())
    return 10_000 / -math.log(total / (31 * 144)) - 273.15


def test_the_months_days_times_outside_excursions_and_mkt(client, tree):
    response = log_of(client, tree)
    assert response.status_code == 200, response.json
    log = response.json
    days = [
        (d["day"], d["readings"], d["min_temp_c"], d["max_temp_c"], d["minutes_outside"])
        for d in log["days"]
    ]
    assert len(days) == 31
    assert days[:6] == [
        ("2026-03-01", 144, 4.0, 9.5, 120.0),
        ("2026-03-02", 144, 5.0, 5.0, 0.0),
        ("2026-03-03", 144, 1.0, 5.0, 60.0),
        ("2026-03-04", 144, 5.0, 5.0, 0.0),
        ("2026-03-05", 144, 5.0, 9.5, 660.0),
        ("2026-03-06", 144, 5.0, 5.0, 0.0),
    ]
    assert [(o["side"], o["start"], o["minutes"], o["peak_temp_c"]) for o in log["outside"]] == [
        ("heat", "2026-03-01T04:30:00+00:00", 120.0, 9.5),
        ("cold", "2026-03-03T04:30:00+00:00", 60.0, 1.0),
        ("heat", "2026-03-05T04:30:00+00:00", 660.0, 9.5),
    ]
    assert [(e["kind"], e["started_at"]) for e in log["excursions"]] == [
        ("heat_warning", "2026-03-01T04:30:00+00:00"),
        ("cold_warning", "2026-03-03T04:30:00+00:00"),
        ("heat_alarm", "2026-03-05T04:30:00+00:00"),
        ("heat_warning", "2026-03-05T04:30:00+00:00"),
    ]
    alarm = log["excursions"][2]
    assert [(r["doses"], r["state"], r["decided_by"], r["comment"]) for r in alarm["reviews"]] == [
        (500, "released", "officer-a", "VVM stage 1, release")
    ]
    assert log["mkt_c"] == pytest.approx(expected_mkt(), abs=0.01)
    assert log["readings"] == 31 * 144 and log["signoff"] is None


def test_the_officer_signs_the_month_off_once_and_it_is_audited(client, uow, tree):
    url = f"/api/temperature-logs/{tree.ilr.id}/2026-03/sign-off"
    signed = client.post(url, json={"comment": "two excursions reviewed"})
    assert signed.status_code == 201, signed.json
    assert (signed.json["signed_by"], signed.json["month"]) == ("test-admin", "2026-03")
    again = client.post(url, json={})
    assert again.status_code == 409 and again.content_type == "application/problem+json"
    this_month = dt.datetime.now(dt.UTC).strftime("%Y-%m")
    early = client.post(f"/api/temperature-logs/{tree.ilr.id}/{this_month}/sign-off", json={})
    assert early.status_code == 409
    assert log_of(client, tree).json["signoff"]["comment"] == "two excursions reviewed"
    audit = uow.session.scalars(
        select(AuditEntry).where(AuditEntry.entity == "temperature_log_signoffs")
    ).one()
    assert (audit.action, audit.actor, audit.after["month"]) == (
        "insert",
        "test-admin",
        "2026-03-01",
    )


def test_csv_and_pdf_show_the_same_figures(client, tree):
    client.post(f"/api/temperature-logs/{tree.ilr.id}/2026-03/sign-off", json={})
    rows = list(csv.reader(io.StringIO(log_of(client, tree, suffix="/csv").get_data(as_text=True))))
    assert rows[0] == ["day", "readings", "min_temp_c", "max_temp_c", "minutes_outside"]
    assert rows[1] == ["2026-03-01", "144", "4.0", "9.5", "120.0"]
    assert rows[5] == ["2026-03-05", "144", "5.0", "9.5", "660.0"]
    assert len(rows) == 32
    pdf = log_of(client, tree, suffix="/pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    assert "Temperature log 2026-03: AS-CAC-SIL (AS-CAC-SIL), unit ILR-1" in text
    assert "Reviewed by test-admin" in text
    assert "2026-03-01 144 4.0 9.5 120.0" in text
    assert "2026-03-05 144 5.0 9.5 660.0" in text
    assert f"MKT {expected_mkt():.1f} C" in text
    assert "heat_alarm from 2026-03-05 04:30 UTC" in text
    assert "500 doses released by officer-a: VVM stage 1, release" in text


def test_bad_months_and_units_get_problems(client, tree):
    assert log_of(client, tree, "2026-3").status_code == 422
    assert log_of(client, tree, "2099-01").status_code == 409
    missing = client.get("/api/temperature-logs/999999/2026-03")
    assert missing.status_code == 404 and missing.content_type == "application/problem+json"


def test_a_unit_code_in_any_script_still_names_the_file_in_an_ascii_header(client, uow, tree):
    # schemathesis against gunicorn: a unit code outside Latin-1 in Content-Disposition made the
    # server answer 400 in HTML; the header must be ASCII, the exact name in filename* (RFC 6266).
    from urllib.parse import unquote

    from logistics.models.catalog import StorageUnit

    uow.session.get(StorageUnit, tree.ilr.id).code = "ILR-शीत-1"
    uow.commit()
    for suffix in ("/csv", "/pdf"):
        response = log_of(client, tree, suffix=suffix)
        header = response.headers["Content-Disposition"]
        assert response.status_code == 200
        header.encode("ascii")
        assert 'filename="temperature-AS-CAC-SIL-ILR-___-1-2026-03' in header
        assert unquote(header.split("filename*=UTF-8''")[1]) == (
            f"temperature-AS-CAC-SIL-ILR-शीत-1-2026-03{suffix.replace('/', '.')}"
        )
