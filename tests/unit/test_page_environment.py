"""The pages' Jinja environment reads `row.field` of a dict as Jinja does, only sooner."""

from __future__ import annotations

from flask import Flask

from logistics.web import PageEnvironment


def render(source: str, **context: object) -> str:
    environment = PageEnvironment(Flask(__name__))
    return environment.from_string(source).render(**context)


def test_a_dicts_field_is_its_key():
    row = {"kind": "receipt", "doses": 40}
    assert render("{{ row.kind }} {{ row.doses + 2 }}", row=row) == "receipt 42"


def test_a_dicts_own_attributes_stay_attributes_even_where_a_key_has_their_name():
    row = {"items": "a key", "get": "another key", "kind": "issue"}
    assert render("{{ row.items()|list|length }} {{ row.get('kind') }}", row=row) == "3 issue"


def test_a_missing_key_is_undefined_and_objects_keep_their_attributes():
    class Lot:
        number = "B-17"

    assert render("[{{ row.missing }}] {{ row.missing is undefined }}", row={}) == "[] True"
    assert render("{{ lot.number }}", lot=Lot()) == "B-17"
