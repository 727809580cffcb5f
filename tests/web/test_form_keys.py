"""A form's client id is scoped per user, as the API's Idempotency-Keys are (issue 13).

Two people whose forms carry the same client id (a copied page, a reused offline queue) must each
get their own use case run: neither may be handed the other's first outcome.
"""

from __future__ import annotations

import pytest
from flask import g

from logistics.web.forms import submit_once

pytestmark = pytest.mark.integration
FIELDS = {"client_id": "same-form-id", "doses": "10"}
PATH = "/stores/4/forms/consumption"


def _submit(app, actor: str, runs: list[str]):
    def action(uow) -> str:
        runs.append(actor)
        return f"recorded for {actor}"

    with app.test_request_context(PATH, method="POST"):
        g.actor = actor
        return submit_once("same-form-id", action, data=FIELDS, path=PATH)


def test_two_users_with_the_same_client_id_do_not_collide(app):
    runs: list[str] = []
    first = _submit(app, "officer-a", runs)
    other = _submit(app, "officer-b", runs)
    assert (first.message, first.replayed) == ("recorded for officer-a", False)
    assert (other.message, other.replayed) == ("recorded for officer-b", False)
    assert runs == ["officer-a", "officer-b"]


def test_the_same_user_resending_the_form_gets_the_first_outcome_back(app):
    runs: list[str] = []
    _submit(app, "officer-a", runs)
    again = _submit(app, "officer-a", runs)
    assert (again.message, again.replayed) == ("recorded for officer-a", True)
    assert runs == ["officer-a"]
