"""Alerts on the pages: said from their kind and details in the reader's language, with times in
the site's time zone (Asia/Kolkata), not the stored English message with UTC ISO times."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from logistics.web.alert_text import describe

pytestmark = pytest.mark.integration


def _alert(kind, details, message="stored message"):
    return SimpleNamespace(kind=kind, details=details, message=message)


SILENT = _alert(
    "sensor_silent",
    {
        "sensor_id": "PUN-KHED-ILR1-A",
        "unit_code": "KHED-ILR-1",
        "last_reading_ts": "2026-12-01T20:00:00+00:00",
    },
)
FREEZE = _alert(
    "cold_alarm",
    {
        "sensor_id": "L7",
        "started_at": "2026-12-01T18:30:00+00:00",
        "minutes_outside": 1234.4,
        "peak_temp_c": -2.04,
    },
)


def _say(app, alert, language):
    with app.test_request_context("/", headers={"Accept-Language": language}):
        return describe(alert)


def test_a_silent_logger_is_told_in_english_with_the_site_time(app):
    text = _say(app, SILENT, "en")
    assert text.startswith("Logger PUN-KHED-ILR1-A in KHED-ILR-1 has sent nothing since ")
    # 20:00 UTC on 1 December is 01:30 on 2 December in the site zone.
    assert "2/12/26" in text and "1:30" in text
    assert "2026-12-01T20:00" not in text


def test_the_same_alert_in_hindi(app):
    text = _say(app, SILENT, "hi")
    assert text.startswith("KHED-ILR-1 में लॉगर PUN-KHED-ILR1-A ने ")
    assert "2/12/26" in text and text.endswith("से कुछ नहीं भेजा।")


def test_an_excursion_gives_its_figures_grouped_and_rounded(app):
    assert _say(app, FREEZE, "en").endswith(": 1,234 min outside the safe range, peak -2.0 °C.")
    # 18:30 UTC on 1 December is midnight starting 2 December in the site zone.
    assert _say(app, FREEZE, "en").startswith("Freeze alarm (logger L7) since 02/12/26, 12:00")


def test_expiry_and_stock_alerts_name_their_lot_and_product(app):
    expired = _alert(
        "lot_expired", {"lot_number": "4121Z005", "expiry_date": "2026-11-30", "doses": 12000}
    )
    assert _say(app, expired, "en").startswith("Lot 4121Z005 expired on ")
    assert _say(app, expired, "en").endswith(": 12,000 doses still on hand.")
    low = _alert(
        "below_min",
        {"product": "COVISHIELD", "doses": 150000, "min_doses": 200000, "max_doses": None},
    )
    assert (
        _say(app, low, "en")
        == "COVISHIELD: 1,50,000 usable doses on hand (minimum 2,00,000, maximum —)."
    )


def test_an_unknown_kind_or_missing_detail_shows_the_stored_message(app):
    assert _say(app, _alert("carrier_lost", {"x": 1}), "en") == "stored message"
    assert _say(app, _alert("sensor_silent", {"sensor_id": "A"}), "hi") == "stored message"
    assert _say(app, _alert("sensor_silent", None), "en") == "stored message"


def test_the_kind_of_an_excursion_is_said_in_each_request_language(app):
    # The kind's words are translated when the alert is said, not once for every request.
    assert _say(app, FREEZE, "hi").startswith("जमने का अलार्म (")
    assert _say(app, FREEZE, "en").startswith("Freeze alarm (")
    assert _say(app, FREEZE, "hi").startswith("जमने का अलार्म (")
