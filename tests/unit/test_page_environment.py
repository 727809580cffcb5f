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


def test_a_selects_options_escape_their_text_and_mark_the_chosen_value():
    from logistics.web.labels import attr_pairs, option_tags

    stores = [{"id": 4, "name": "PHC <Khed>"}, {"id": 12, "name": "CHC Aundh & Co"}]
    assert str(option_tags(attr_pairs(stores, "id", "name"), "12")) == (
        '<option value="4">PHC &lt;Khed&gt;</option>'
        '<option value="12" selected>CHC Aundh &amp; Co</option>'
    )
    assert str(option_tags([(1, "one")], None)) == '<option value="1">one</option>'
