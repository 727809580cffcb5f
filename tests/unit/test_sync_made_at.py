"""The time a queued offline entry is recorded at (issue 15): its age on the phone's clock, taken
back from the server's clock."""

from __future__ import annotations

import datetime as dt

from logistics.web.views.sync import made_at

UTC = dt.UTC
SERVER_NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=UTC)


def test_the_age_on_the_phone_is_taken_back_from_the_server_clock():
    # The phone is 3 h 10 min ahead; the entry was made 25 minutes before it was sent.
    entry = {"made_at": "2026-12-02T12:45:00Z"}
    sent = dt.datetime(2026, 12, 2, 13, 10, tzinfo=UTC)
    assert made_at(entry, sent, SERVER_NOW) == dt.datetime(2026, 12, 2, 9, 35, tzinfo=UTC)


def test_an_offset_written_by_the_phone_is_understood():
    entry = {"made_at": "2026-12-02T15:00:00+05:30"}  # 09:30 UTC
    sent = dt.datetime(2026, 12, 2, 9, 50, tzinfo=UTC)
    assert made_at(entry, sent, SERVER_NOW) == dt.datetime(2026, 12, 2, 9, 40, tzinfo=UTC)


def test_an_entry_made_after_it_was_sent_counts_as_made_now():
    entry = {"made_at": "2026-12-02T10:05:00Z"}
    sent = dt.datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    assert made_at(entry, sent, SERVER_NOW) == SERVER_NOW


def test_without_the_sending_time_the_phone_time_is_used_but_never_after_now():
    assert made_at({"made_at": "2026-12-02T08:00:00Z"}, None, SERVER_NOW) == dt.datetime(
        2026, 12, 2, 8, 0, tzinfo=UTC
    )
    assert made_at({"made_at": "2026-12-03T08:00:00Z"}, None, SERVER_NOW) == SERVER_NOW


def test_a_missing_or_unreadable_time_means_made_now():
    for value in (None, "", "yesterday", "2026-12-02T08:00:00", 12345, "9" * 100):
        assert made_at({"made_at": value}, SERVER_NOW, SERVER_NOW) is None
