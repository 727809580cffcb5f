"""The templates' url_for: row links built from a kept shape are the links url_for builds."""

from __future__ import annotations

import pytest
from flask import Flask
from werkzeug.routing import BuildError

from logistics.web import urls


def _app() -> Flask:
    app = Flask(__name__)
    app.add_url_rule("/centres/<int:store_id>/planner", "planner", lambda store_id: "")
    app.add_url_rule("/units/<int:unit_id>/chart", "chart", lambda unit_id: "")
    app.add_url_rule("/lots/<string:number>", "lot", lambda number: "")
    app.add_url_rule("/alerts", "alerts", lambda: "")
    urls.install(app)
    return app


@pytest.mark.parametrize(
    ("endpoint", "values", "expected"),
    [
        ("planner", {"store_id": 7}, "/centres/7/planner"),
        ("planner", {"store_id": 0}, "/centres/0/planner"),
        ("planner", {"store_id": 123456789012}, "/centres/123456789012/planner"),
        ("chart", {"unit_id": 5, "after": 30}, "/units/5/chart?after=30"),
        ("chart", {"unit_id": 5, "range": "30d"}, "/units/5/chart?range=30d"),
        ("lot", {"number": "A{1}/b"}, "/lots/A%7B1%7D/b"),
        ("alerts", {}, "/alerts"),
        ("alerts", {"severity": 2}, "/alerts?severity=2"),
    ],
)
def test_a_row_link_is_the_link_url_for_builds(endpoint, values, expected):
    app = _app()
    row_url = app.jinja_env.globals["url_for"]
    with app.test_request_context("/"):
        # Twice: the first call keeps the shape, the second is built from it.
        assert [row_url(endpoint, **values), row_url(endpoint, **values)] == [expected, expected]


def test_rows_of_one_shape_get_their_own_ids():
    app = _app()
    row_url = app.jinja_env.globals["url_for"]
    with app.test_request_context("/"):
        links = [row_url("planner", store_id=i) for i in (3, 41, 3, 999)]
    assert links == [
        "/centres/3/planner",
        "/centres/41/planner",
        "/centres/3/planner",
        "/centres/999/planner",
    ]


def test_an_app_under_a_path_prefix_links_under_it():
    app = _app()
    row_url = app.jinja_env.globals["url_for"]
    with app.test_request_context("/"):
        assert row_url("planner", store_id=1) == "/centres/1/planner"
    with app.test_request_context("/", environ_overrides={"SCRIPT_NAME": "/coldchain"}):
        assert row_url("planner", store_id=1) == "/coldchain/centres/1/planner"


@pytest.mark.parametrize(("value", "expected"), [(-1, "/centres/-1/planner"), (True, None)])
def test_numbers_outside_the_shape_are_built_by_url_for(value, expected):
    app = _app()
    row_url = app.jinja_env.globals["url_for"]
    with app.test_request_context("/"):
        built = app.url_for("planner", store_id=value)
        assert row_url("planner", store_id=1) == "/centres/1/planner"
        assert row_url("planner", store_id=value) == built == (expected or built)


def test_a_value_url_for_cannot_place_is_its_error():
    app = _app()
    row_url = app.jinja_env.globals["url_for"]
    with app.test_request_context("/"), pytest.raises(BuildError):
        row_url("lot", lot=1)  # the route's value is named number: url_for's own error


def test_external_and_anchor_links_are_url_fors():
    app = _app()
    row_url = app.jinja_env.globals["url_for"]
    with app.test_request_context("/", base_url="http://example.test"):
        assert row_url("planner", store_id=2, _anchor="top") == "/centres/2/planner#top"
        assert row_url("planner", store_id=2, _external=True) == (
            "http://example.test/centres/2/planner"
        )


def test_an_app_with_url_defaults_keeps_flasks_url_for():
    app = Flask(__name__)
    app.add_url_rule("/<lang>/centres/<int:store_id>", "centre", lambda lang, store_id: "")
    app.url_defaults(lambda endpoint, values: values.setdefault("lang", "hi"))
    urls.install(app)
    assert not isinstance(app.jinja_env.globals["url_for"], urls.RowUrls)
