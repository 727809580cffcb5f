"""Read the GS1 element string of a vaccine carton: (01) GTIN, (10) lot, (17) expiry.

Parsing is done by `biip`, a maintained GS1 library; this module only picks the three application
identifiers a receipt needs and turns library errors into one error type.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from biip import ParseError
from biip.gs1_messages import GS1Message

GROUP_SEPARATOR = "\x1d"


class GS1Error(ValueError):
    """The element string cannot be read, or lacks what a receipt needs."""


@dataclasses.dataclass(frozen=True)
class CartonLabel:
    """What a carton's barcode says about the lot inside it."""

    gtin: str | None
    lot_number: str
    expiry_date: dt.date


def _parse_message(text: str) -> GS1Message:
    text = text.strip()
    try:
        if text.startswith("("):
            return GS1Message.parse_hri(text)
        return GS1Message.parse(text.replace("|", GROUP_SEPARATOR))
    except ParseError as exc:
        raise GS1Error(str(exc)) from exc


def parse_carton_label(text: str) -> CartonLabel:
    """Parse a GS1 element string (HRI with parentheses, or raw with FNC1/GS separators)."""
    strings = _parse_message(text).element_strings
    gtin_es, lot_es, expiry_es = (strings.get(ai=ai) for ai in ("01", "10", "17"))
    if lot_es is None or expiry_es is None:
        raise GS1Error("a receipt needs (10) lot and (17) expiry in the element string")
    if gtin_es is not None and gtin_es.gtin_error:
        raise GS1Error(gtin_es.gtin_error)
    if expiry_es.date is None:
        raise GS1Error("(17) expiry is not a date")
    gtin = gtin_es.value if gtin_es is not None else None
    return CartonLabel(gtin=gtin, lot_number=lot_es.value, expiry_date=expiry_es.date)
