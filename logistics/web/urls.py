"""`url_for` in templates, with a fast path for the links of a table's rows.

Flask's url_for builds each URL through werkzeug's routing map: about 18 us a call on this kind of
machine, and a district's planner, its tiles or a lot trace link a hundred rows. A row's link
differs from its neighbour's only by ids. So for a call whose values are all whole numbers, the
URL is built once per endpoint and set of names, by url_for itself, with marker numbers in place
of the values; later calls put the ids where the markers were. Any other call (text values,
`_external`, `_anchor`, a relative endpoint, a negative number) goes to url_for as before.

The shape is kept per script root, so an app mounted under a path prefix links under it. It is
right only while the URL of a whole number is its decimal digits in that place, which holds for
werkzeug's `int` converter and the query string, and while no url_defaults function adds values
per request: `install` declines when the app has any.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

# Markers far from any id the service hands out, distinct per value.
_MARKER = 907_100_000_000_000_003
_NO_SHAPE = object()


class RowUrls:
    """A drop-in for the templates' url_for (see the module's doc)."""

    def __init__(self, app: Flask):
        self._url_for = app.url_for
        self._shapes: dict[tuple[str, str, tuple[str, ...]], Any] = {}

    def __call__(self, endpoint: str, **values: Any) -> str:
        if not values or endpoint[0] == ".":
            return self._url_for(endpoint, **values)
        for name, value in values.items():
            if type(value) is not int or value < 0 or name[0] == "_":
                return self._url_for(endpoint, **values)
        key = (request.script_root, endpoint, tuple(values))
        shape = self._shapes.get(key)
        if shape is None:
            shape = self._shapes[key] = self._shape(endpoint, key[2])
        if shape is _NO_SHAPE:
            return self._url_for(endpoint, **values)
        return str(shape.format(*values.values()))

    def _shape(self, endpoint: str, names: tuple[str, ...]) -> Any:
        """The URL as a format string with a field per value, or _NO_SHAPE."""
        markers = [str(_MARKER + index) for index in range(len(names))]
        url = self._url_for(endpoint, **{n: _MARKER + i for i, n in enumerate(names)})
        if any(url.count(marker) != 1 for marker in markers):
            return _NO_SHAPE
        shape = url.replace("{", "{{").replace("}", "}}")
        for index, marker in enumerate(markers):
            shape = shape.replace(marker, f"{{{index}}}")
        return shape


def install(app: Flask) -> None:
    """Use RowUrls as the templates' url_for, unless the app has url_defaults functions."""
    if any(app.url_default_functions.values()):
        return
    app.jinja_env.globals["url_for"] = RowUrls(app)
