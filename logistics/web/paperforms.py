"""Running a form of the paperwork pages (issue 19): the API's rule, then its use case once.

The store page has its own table of forms; the paperwork pages post one form each, redirect on
success (the message is flashed) and show the page again with the errors by field otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import flash, redirect

from logistics.db import UnitOfWork
from logistics.domain.errors import DomainError, Forbidden
from logistics.web import access
from logistics.web.forms import Form, field_errors, submit_once


def allowed(endpoint: str, values: Mapping[str, Any]) -> bool:
    """Tell whether the API policy lets the user post this endpoint (to show its form)."""
    try:
        with access.read_uow() as uow:
            access.authorize(uow, endpoint, values)
    except DomainError:
        return False
    return True


def record(
    form: Form,
    endpoint: str,
    values: Mapping[str, Any],
    action: Callable[[UnitOfWork], str],
    hidden: tuple[str, ...] = (),
) -> str | None:
    """Authorise the form as its API endpoint and run its use case once (by client id).

    Returns the message, or None with the refusal added to `form.errors` (next to its field, or
    to the whole form for `hidden` fields the person does not type).
    """
    try:
        with access.read_uow() as uow:
            access.authorize(uow, endpoint, values)
        return submit_once(form.client_id() or "", action).message
    except Forbidden:
        raise  # the roles do not allow it: a page of its own (403), not a field's error
    except DomainError as exc:
        errors = field_errors(exc)
        form.errors.update(
            {("_form" if key in hidden else key): text for key, text in errors.items()}
        )
        return None


def done(message: str, target: str) -> Any:
    """After a form succeeded: show the message on the page it leads to (post, redirect, get)."""
    flash(message)
    return redirect(target, code=303)
