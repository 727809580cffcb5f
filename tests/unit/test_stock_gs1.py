"""Reading a carton's GS1 element string: (01) GTIN, (10) lot, (17) expiry."""

from __future__ import annotations

import datetime as dt

import pytest

from logistics.domain.gs1 import GS1Error, parse_carton_label


def test_human_readable_string():
    label = parse_carton_label("(01)08901234567890(10)4121Z001(17)270331")
    assert (label.gtin, label.lot_number, label.expiry_date) == (
        "08901234567890",
        "4121Z001",
        dt.date(2027, 3, 31),
    )


def test_raw_string_with_group_separator():
    label = parse_carton_label("010890123456789017270331" + "\x1d" + "104121Z001")
    assert label.lot_number == "4121Z001"
    assert label.expiry_date == dt.date(2027, 3, 31)


def test_wrong_gtin_check_digit_is_refused():
    with pytest.raises(GS1Error, match="check digit"):
        parse_carton_label("(01)08901234567891(10)A(17)270331")


@pytest.mark.parametrize(
    "text", ["(10)A1", "(01)08901234567890(17)270331", "not a barcode", "(17)271399(10)A"]
)
def test_incomplete_or_malformed_strings_are_refused(text):
    with pytest.raises(GS1Error):
        parse_carton_label(text)
