"""Rules the OpenAPI document states only in words, taught to schemathesis's generator.

tools/schemathesis-run loads this module (SCHEMATHESIS_HOOKS). Each hook reshapes a generated
request that is valid by the document so that it also keeps one rule JSON Schema cannot state: a
relation between two fields (end after start, min below max, a window at least its duration), a
fact of the clock or of DNS, or a field needed only in a state the generator cannot see but a
request can always meet (a new lot's manufacturer, a reason for fewer doses than asked). Every
rule is written out here by hand, from the document's description of it, not imported from the
service; tests/integration/test_documented_rules.py shows each refused (422).

Only positive cases are reshaped: a case made to break the document is sent as it was made. No
hook here drops or excuses a failure; they change what is sent, never what is checked.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

import schemathesis

# The document's date-time pattern allows the years 2000-2099 only.
FIRST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
LAST = dt.datetime(2099, 12, 31, 23, 59, tzinfo=dt.UTC)
MAX_SPAN = dt.timedelta(days=400)  # MKT, a lot's thermal history and journey: at most 400 days
MAX_BUCKETS = 5000  # readings downsampled: at most 5,000 buckets per request
BUCKET = re.compile(r"^([0-9]+)([smhd])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
PUBLIC_WEBHOOK = "https://93.184.215.14/coldchain"  # an IP literal: public, and needs no DNS


def _positive(case: Any) -> bool:
    """Whether the case was made to be valid by the document (only those are reshaped)."""
    meta = getattr(case, "meta", None)
    return meta is None or not meta.generation.mode.is_negative


def _instant(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _ordered(start: dt.datetime, end: dt.datetime, longest: dt.timedelta | None) -> tuple:
    """start and end swapped into order, apart by at least a minute and at most `longest`."""
    if end < start:
        start, end = end, start
    span = max(end - start, dt.timedelta(minutes=1))
    if longest is not None:
        span = min(span, longest)
    if start + span <= LAST:
        return start, start + span
    return end - span, end


def _order_range(case: Any, longest: dt.timedelta | None) -> None:
    query = case.query if isinstance(case.query, dict) else None
    if not query:
        return
    start, end = _instant(query.get("start")), _instant(query.get("end"))
    if start is None or end is None:
        return
    start, end = _ordered(start, end, longest)
    query["start"], query["end"] = start.isoformat(), end.isoformat()


@schemathesis.hook("map_case").apply_to(
    path_regex=r"^/api/(units/\{unit_id\}/mkt|lots/\{lot_id\}/(thermal-history|journey))$"
)
def span_in_order(context: Any, case: Any) -> Any:
    """end after start, at most 400 days after it."""
    if _positive(case):
        _order_range(case, MAX_SPAN)
    return case


@schemathesis.hook("map_case").apply_to(path="/api/units/{unit_id}/readings")
def readings_range_in_order(context: Any, case: Any) -> Any:
    """end not before start (an empty range holds no readings); downsampled (a bucket given), end
    after start and at most 5,000 buckets (with an hour's rounding each side)."""
    query = case.query if isinstance(case.query, dict) else {}
    match = BUCKET.match(str(query.get("bucket", "")))
    if not _positive(case):
        return case
    start, end = _instant(query.get("start")), _instant(query.get("end"))
    if not match:
        if start and end and end < start:
            query["start"], query["end"] = query["end"], query["start"]
        return case
    _order_range(case, None)
    start, end = _instant(query.get("start")), _instant(query.get("end"))
    if start and end:
        span_s = (end - start).total_seconds() + 2 * 3600
        width_s = int(match.group(1)) * UNIT_S[match.group(2)]
        if span_s / max(width_s, 1) > MAX_BUCKETS:
            query["bucket"] = f"{math.ceil(span_s / MAX_BUCKETS)}s"
    return case


def _below(body: dict, low: str, high: str, bounds: tuple[float, float], default: tuple) -> None:
    """body[low] < body[high] (each read with its default when absent), within bounds."""
    if not isinstance(body, dict):
        return
    lo, hi = body.get(low, default[0]), body.get(high, default[1])
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (lo, hi)):
        return
    if lo > hi:
        lo, hi = hi, lo
    if lo == hi:
        if hi + 1 <= bounds[1]:
            hi = hi + 1
        else:
            lo = lo - 1
    body[low], body[high] = lo, hi


@schemathesis.hook("map_case").apply_to(path_regex=r"^/api/(units|products)$", method="POST")
def storage_range_in_order(context: Any, case: Any) -> Any:
    """min_temp_c below max_temp_c."""
    if _positive(case):
        _below(case.body, "min_temp_c", "max_temp_c", (-100, 100), (None, None))
    return case


@schemathesis.hook("map_case").apply_to(path="/api/carriers", method="POST")
def carrier_range_in_order(context: Any, case: Any) -> Any:
    """min_temp_c below max_temp_c (defaults +2 and +8)."""
    if _positive(case):
        _below(case.body, "min_temp_c", "max_temp_c", (-100, 100), (2.0, 8.0))
    return case


@schemathesis.hook("map_case").apply_to(path="/api/stock-levels", method="PUT")
def stock_levels_in_order(context: Any, case: Any) -> Any:
    """min_value below max_value; levels in days need a daily consumption above 0."""
    body = case.body
    if not _positive(case) or not isinstance(body, dict):
        return case
    _below(body, "min_value", "max_value", (0, 1e9), (None, None))
    if body.get("basis") == "days" and not body.get("daily_consumption_doses"):
        body["daily_consumption_doses"] = 10.0
    return case


@schemathesis.hook("map_case").apply_to(path_regex=r"^/api/temperature-rules/")
def temperature_rules_in_order(context: Any, case: Any) -> Any:
    """min_temp_c below max_temp_c; one rule per side and level; a cumulative rule's window
    at least its duration."""
    body = case.body
    if not _positive(case) or not isinstance(body, dict):
        return case
    _below(body, "min_temp_c", "max_temp_c", (-90, 60), (None, None))
    rules, seen = [], set()
    for rule in body.get("rules") or []:
        if not isinstance(rule, dict) or (rule.get("side"), rule.get("level")) in seen:
            continue
        seen.add((rule.get("side"), rule.get("level")))
        duration = rule.get("duration_min")
        if rule.get("mode") == "cumulative" and isinstance(duration, int):
            rule["window_min"] = max(rule.get("window_min") or 0, duration)
        rules.append(rule)
    if rules:
        body["rules"] = rules
    return case


def _ahead(value: Any) -> Any:
    """A needed-by date from tomorrow to a year ahead (UTC; the site's today is at most a day
    later), chosen from the date the generator made."""
    try:
        made = dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        return value
    days = made.toordinal() % 365 + 1
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


@schemathesis.hook("map_case").apply_to(path="/api/indents", method="POST")
def indent_needed_within_a_year(context: Any, case: Any) -> Any:
    """needed_by from the site's today to a year ahead (the clock)."""
    if _positive(case) and isinstance(case.body, dict) and "needed_by" in case.body:
        case.body["needed_by"] = _ahead(case.body["needed_by"])
    return case


@schemathesis.hook("map_case").apply_to(path="/api/indents/suggestion", method="GET")
def suggestion_needed_within_a_year(context: Any, case: Any) -> Any:
    """needed_by from the site's today to a year ahead (the clock)."""
    if _positive(case) and isinstance(case.query, dict) and "needed_by" in case.query:
        case.query["needed_by"] = _ahead(case.query["needed_by"])
    return case


@schemathesis.hook("map_case").apply_to(path="/api/notification-targets", method="POST")
def webhook_resolves_publicly(context: Any, case: Any) -> Any:
    """A webhook's host must resolve, to a public address (DNS): a public IP literal; and a
    webhook needs a secret to sign its deliveries."""
    body = case.body
    if _positive(case) and isinstance(body, dict) and body.get("channel") == "webhook":
        body["address"] = PUBLIC_WEBHOOK
        body["secret"] = body.get("secret") or "a webhook's signing secret"
    return case


@schemathesis.hook("map_case").apply_to(
    path_regex=r"^/api/(consumptions|wastages|issues|carried-issues|transfers|receipts|counts)$",
    method="POST",
)
def movement_not_in_the_future(context: Any, case: Any) -> Any:
    """occurred_at at most five minutes ahead of the server's clock: a later one is moved back
    by as far as it was ahead of now (still a time the generator made, in the past)."""
    body = case.body
    if not _positive(case) or not isinstance(body, dict):
        return case
    occurred = _instant(body.get("occurred_at"))
    now = dt.datetime.now(dt.UTC)
    if occurred is not None and occurred > now:
        back = min(occurred - now, now - FIRST)
        body["occurred_at"] = (now - back).isoformat()
    return case


@schemathesis.hook("map_case").apply_to(path="/api/indents/{indent_id}/approve", method="POST")
def fewer_doses_with_a_reason(context: Any, case: Any) -> Any:
    """Approving fewer doses than asked needs a reason (not blank): the generator cannot know the
    doses asked, so it gives a reason whenever it names doses."""
    body = case.body
    if not _positive(case) or not isinstance(body, dict) or "doses" not in body:
        return case
    if not (isinstance(body.get("reason"), str) and body["reason"].strip()):
        body["reason"] = "district stock is low"
    return case


def _clock(value: Any) -> dt.time | None:
    try:
        return dt.time.fromisoformat(value)
    except (TypeError, ValueError):
        return None


@schemathesis.hook("map_case").apply_to(path="/api/sessions", method="POST")
def slots_in_order(context: Any, case: Any) -> Any:
    """Slots each start before they end and do not overlap (touching is fine): each slot's ends
    are put in order, then a slot overlapping an earlier kept one is left out."""
    body = case.body
    if not _positive(case) or not isinstance(body, dict) or not isinstance(body.get("slots"), list):
        return case
    kept: list[tuple[dt.time, dt.time, dict]] = []
    for slot in body["slots"]:
        begin, end = _clock(slot.get("start")), _clock(slot.get("end"))
        if begin is None or end is None or begin == end:
            continue
        if end < begin:
            slot["start"], slot["end"] = slot["end"], slot["start"]
            begin, end = end, begin
        if all(end <= b or e <= begin for b, e, _ in kept):
            kept.append((begin, end, slot))
    body["slots"] = [slot for _, _, slot in kept]
    return case


def _gtin14(digits: str) -> str:
    """A GTIN-14 made from the generator's digits, with its check digit (GS1 General
    Specifications 7.9: weights 3 and 1 from the right)."""
    body = (digits or "0")[-13:].rjust(13, "0")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def _gs1_lot(text: Any) -> str:
    """A lot number GS1 (10) can carry: up to 20 of its characters (letters and digits here)."""
    kept = "".join(c for c in str(text or "") if c.isascii() and c.isalnum())[:20]
    return kept or "LOT1"


@schemathesis.hook("map_case").apply_to(path="/api/lots", method="POST")
def lot_label_parses(context: Any, case: Any) -> Any:
    """A GS1 string parses: (01) GTIN with its check digit, (17) expiry YYMMDD, (10) lot; made
    from the body's own gtin, expiry_date and lot_number where it has them. A lot not yet
    recorded needs its manufacturer."""
    body = case.body
    if not _positive(case) or not isinstance(body, dict):
        return case
    if "gs1" in body:
        expiry = body.get("expiry_date")
        yymmdd = expiry[2:4] + expiry[5:7] + expiry[8:10] if isinstance(expiry, str) else "271231"
        gtin = _gtin14(body.get("gtin") or "0890123456789")
        body["gs1"] = f"(01){gtin}(17){yymmdd}(10){_gs1_lot(body.get('lot_number'))}"
    body.setdefault("manufacturer", "Serum Institute of India")
    return case


def _future_day(value: Any) -> str:
    """A date from tomorrow to two years ahead, chosen from the date the generator made."""
    try:
        days = dt.date.fromisoformat(value).toordinal() % 730 + 1
    except (TypeError, ValueError):
        days = 365
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=days)).isoformat()


@schemathesis.hook("map_case").apply_to(path="/api/receipts", method="POST")
def receipt_lot_usable(context: Any, case: Any) -> Any:
    """From a supplier: a lot not expired (the clock), a GS1 string that parses, a new lot's
    manufacturer. Of a shipment: a reason on each line (needed when fewer doses than issued
    arrive; the generator cannot know how many were issued)."""
    body = case.body
    if not _positive(case) or not isinstance(body, dict):
        return case
    if "shipment_id" in body:
        for line in body.get("lines") or []:
            if isinstance(line, dict):
                line.setdefault("reason", "damaged")
        return case
    if "expiry_date" in body or "gs1" in body:
        body["expiry_date"] = _future_day(body.get("expiry_date"))
    if "gs1" in body:
        expiry = body["expiry_date"]
        gtin = _gtin14(body.get("gtin") or "0890123456789")
        yymmdd = expiry[2:4] + expiry[5:7] + expiry[8:10]
        body["gs1"] = f"(01){gtin}(17){yymmdd}(10){_gs1_lot(body.get('lot_number'))}"
    body.setdefault("manufacturer", "Serum Institute of India")
    return case


@schemathesis.hook("map_case").apply_to(path="/api/transfers", method="POST")
def transfer_between_two_units(context: Any, case: Any) -> Any:
    """A transfer needs two different units."""
    body = case.body
    if not _positive(case) or not isinstance(body, dict):
        return case
    source = body.get("from_unit_id")
    if isinstance(source, int) and source == body.get("to_unit_id"):
        body["to_unit_id"] = source + 1 if source < 2**31 - 1 else source - 1
    return case
