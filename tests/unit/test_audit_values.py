"""Values written into the audit log are plain JSON, cut to a limit."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json

from logistics.services.audit import MAX_VALUE_CHARS, _jsonable


class Colour(enum.Enum):
    RED = "red"


def test_values_become_json():
    value = {
        "at": dt.datetime(2021, 4, 28, 16, 0, tzinfo=dt.UTC),
        "day": dt.date(2021, 4, 28),
        "doses": decimal.Decimal("10.5"),
        "colour": Colour.RED,
        "ids": (1, 2),
        "none": None,
    }
    assert _jsonable(value) == {
        "at": "2021-04-28T16:00:00+00:00",
        "day": "2021-04-28",
        "doses": "10.5",
        "colour": "red",
        "ids": [1, 2],
        "none": None,
    }
    json.dumps(_jsonable(value))


def test_long_text_is_cut():
    assert len(_jsonable("x" * (MAX_VALUE_CHARS + 50))) == MAX_VALUE_CHARS
