"""Strict timestamp and date fields for requests: exactly what the OpenAPI document states.

Python's fromisoformat (behind marshmallow's DateTime) takes far more than RFC 3339 (week dates,
a NUL as separator, any year), and the document cannot say "from 2000 to 2099" for a date-time.
These fields accept only the pattern they publish, so a request valid by the document is valid,
and one invalid by the document is refused (issue 12).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import marshmallow as ma

_DAY = (
    r"20[0-9]{2}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
    r"|(?:0[13578]|1[02])-31)|20(?:0[048]|[2468][048]|[13579][26])-02-29"
)
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
_OFFSET = r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
# A date of 2000-2099 that exists (29 February in leap years only), in ASCII digits.
DAY_PATTERN = f"^(?:{_DAY})$"
# RFC 3339 with its offset, 2000-2099 as written (the offset may move the instant by a day).
TIMESTAMP_PATTERN = f"^(?:{_DAY})T{_TIME}{_OFFSET}$"
# A month YYYY-MM of 2000-2099 (the monthly paperwork, issue 19), in ASCII digits.
MONTH_PATTERN = r"^20[0-9]{2}-(?:0[1-9]|1[0-2])$"
_DAY_RE, _TIMESTAMP_RE = re.compile(DAY_PATTERN), re.compile(TIMESTAMP_PATTERN)


class Timestamp(ma.fields.DateTime):
    """An RFC 3339 timestamp with its UTC offset, from 2000 to 2099."""

    default_error_messages = {  # noqa: RUF012 (marshmallow merges these per class)
        "invalid": "Not a timestamp YYYY-MM-DDTHH:MM:SS[.ffffff] with Z or +HH:MM, years 2000-2099."
    }

    def __init__(self, **kwargs: Any):
        metadata = {"pattern": TIMESTAMP_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(format="iso", metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.datetime:
        if not isinstance(value, str) or not _TIMESTAMP_RE.fullmatch(value):
            raise self.make_error("invalid")
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


class Day(ma.fields.Date):
    """A calendar date YYYY-MM-DD from 2000 to 2099."""

    default_error_messages = {"invalid": "Not a date YYYY-MM-DD of the years 2000-2099."}  # noqa: RUF012

    def __init__(self, **kwargs: Any):
        metadata = {"pattern": DAY_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> dt.date:
        if not isinstance(value, str) or not _DAY_RE.fullmatch(value):
            raise self.make_error("invalid")
        return dt.date.fromisoformat(value)


class Flag(ma.fields.Boolean):
    """A JSON true or false in a request body (marshmallow's Boolean also takes 0, 1, "yes")."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value
