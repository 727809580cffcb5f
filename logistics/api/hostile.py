"""Refuse hostile input before any view, schema or query sees it (issue 12).

Every request passes `refuse_hostile_input` first (before authentication, so the public login is
covered too). It answers a problem+json instead of letting the input reach code that would fail
with a 500:

- a JSON body nested deeper than MAX_JSON_DEPTH (the decoder recurses once per level; 50,000
  levels exhaust Python's stack). The size limit (http.max_body_bytes) is Werkzeug's, also
  applied before parsing: 413.
- NUL characters (PostgreSQL text cannot hold them) and lone UTF-16 surrogates (no encoding can
  send them to the database) in the path, in query names and values, and in any string of a JSON
  body, keys included.
- timestamps whose UTC offset takes them out of the calendar once applied
  (0001-01-01T00:00:00+05:30, 9999-12-31T23:59:59-14:00): Python cannot represent them in UTC.

The OpenAPI document says the same (`document_strings`): every string without a stricter pattern
carries NO_NUL_PATTERN, so the document is as strict as this check.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, request

from logistics.api.problems import problem_response

MAX_JSON_DEPTH = 32
# JSON Schema patterns are ECMA 262 regular expressions; this one refuses NUL.
NO_NUL_PATTERN = "^[^\\u0000]*$"
_BAD_CHARS = re.compile("[\\x00\\ud800-\\udfff]")
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2}(:?\d{2})?)", re.ASCII
)
_OPENERS = re.compile(rb"[\[{]")


def refuse_hostile_input() -> Response | None:
    """Answer 400/422 for hostile input; None lets the request go on."""
    if _BAD_CHARS.search(request.path):
        return problem_response(400, "the path holds a NUL character or a lone surrogate")
    errors = dict(_query_errors())
    if not errors and request.content_length != 0 and request.is_json:
        body = request.get_data(cache=True)
        if _nesting_exceeds(body, MAX_JSON_DEPTH):
            return problem_response(
                400, f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels"
            )
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return None  # not JSON: the view's parser answers its own 400/422
        errors = dict(_json_errors(data, ""))
    if errors:
        first = next(iter(errors))
        return problem_response(422, f"invalid value for '{first}'", errors=errors)
    return None


def _query_errors() -> Iterator[tuple[str, list[str]]]:
    for name, values in request.args.lists():
        for value in (name, *values):
            problem = _string_problem(value)
            if problem:
                yield _readable(name), [problem]
                break


def _json_errors(value: Any, path: str) -> Iterator[tuple[str, list[str]]]:
    if isinstance(value, str):
        problem = _string_problem(value)
        if problem:
            yield path or "json", [problem]
    elif isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{_readable(key)}" if path else _readable(key)
            if _BAD_CHARS.search(key):
                yield where, ["names may not hold NUL characters or lone surrogates"]
            yield from _json_errors(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _json_errors(item, f"{path}.{index}" if path else str(index))


def _string_problem(value: str) -> str | None:
    if _BAD_CHARS.search(value):
        return "NUL characters and lone surrogates are not allowed"
    if _ISO_DATETIME.fullmatch(value.strip()) and not _fits_in_utc(value.strip()):
        return "this time is out of range once its UTC offset is applied"
    return None


def _fits_in_utc(text: str) -> bool:
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return True  # not a timestamp after all: the schema judges it
    try:
        parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed
    except OverflowError:
        return False
    return True


def _readable(name: str) -> str:
    return _BAD_CHARS.sub("\ufffd", name)[:100]


def _nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether brackets open deeper than `limit` (outside strings; escapes understood)."""
    if len(_OPENERS.findall(body)) <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        elif byte in b"]}":
            depth -= 1
    return False


# Answers any operation may give, whatever its own: hostile input (400, 422), a body over
# http.max_body_bytes (413), and a database outage (503, with Retry-After).
ANY_OPERATION = {
    "400": "BAD_REQUEST",
    "413": "REQUEST_ENTITY_TOO_LARGE",
    "422": "UNPROCESSABLE_ENTITY",
    "503": "SERVICE_UNAVAILABLE",
}


def document_input_rules(app: Flask) -> None:
    """Say in the OpenAPI document what refuse_hostile_input and an outage may answer.

    Every string without a pattern, format or enum gets NO_NUL_PATTERN; every operation lists
    ANY_OPERATION among its responses.
    """
    api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    for schema in api.spec.components.schemas.values():
        _patch_strings(schema)
    for path, operations in api.spec._paths.items():  # apispec keeps no public accessor
        for method, operation in operations.items():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                _patch_strings(parameter.get("schema", {}))
            responses = operation.setdefault("responses", {})
            for status, name in ANY_OPERATION.items():
                if path.startswith("/api/openapi") or "docs" in path or method == "options":
                    break
                responses.setdefault(status, api.spec.components.get_ref("response", name))


def _patch_strings(schema: Any) -> None:
    if isinstance(schema, list):
        for item in schema:
            _patch_strings(item)
        return
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "string" and not ({"pattern", "format", "enum"} & schema.keys()):
        schema["pattern"] = NO_NUL_PATTERN
    for key, value in schema.items():
        if key in ("properties", "patternProperties") and isinstance(value, dict):
            for item in value.values():
                _patch_strings(item)
        elif key in ("items", "additionalProperties", "allOf", "anyOf", "oneOf", "not", "schema"):
            _patch_strings(value)
