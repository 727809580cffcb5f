"""Reading the pages' forms, and recording each submitted form once.

A form arrives as text; `Form` turns its fields into values, collecting an error per field.
Domain errors from a service carry the field they are about, so each appears next to its field.

Every form carries a `client_id` (a UUID put in the page when it is rendered). `submit_once` stores
the outcome of a form under that id and its user in the same transaction as the use case (the
API's idempotency records, logistics.services.idempotency), so a double click, a resent form or a
queued offline retry gets the first outcome back and records nothing twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from flask import request
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from logistics.api.context import current_actor, new_uow
from logistics.clock import utcnow
from logistics.db import UnitOfWork
from logistics.domain.errors import DomainError
from logistics.services import idempotency as keys

MAX_INT = 100_000_000
SKIPPED = ("csrf_token",)


def new_client_id() -> str:
    """A fresh client id for a form about to be rendered."""
    return str(uuid.uuid4())


@dataclasses.dataclass
class FormState:
    """What a form shows: the values typed, the errors by field, a message after success."""

    values: dict[str, Any] = dataclasses.field(default_factory=dict)
    errors: dict[str, str] = dataclasses.field(default_factory=dict)
    message: str | None = None
    client_id: str = dataclasses.field(default_factory=new_client_id)

    def get(self, name: str, default: Any = "") -> Any:
        """The value typed in a field (for re-showing it)."""
        value = self.values.get(name)
        return default if value is None else value


class Form:
    """The submitted form's fields, read one by one into values, with an error per field."""

    def __init__(self, data: Any | None = None):
        self.data = data if data is not None else request.form
        self.errors: dict[str, str] = {}

    def _raw(self, name: str) -> str:
        return (self.data.get(name) or "").strip()

    def text(self, name: str, *, required: bool = False, max_length: int = 2000) -> str | None:
        """A free text field."""
        raw = self._raw(name)
        if not raw:
            if required:
                self.errors[name] = _("This field is required.")
            return None
        if len(raw) > max_length or "\x00" in raw:
            self.errors[name] = _("At most %(n)s characters.", n=max_length)
            return None
        return raw

    def integer(
        self, name: str, *, required: bool = True, minimum: int = 1, maximum: int = MAX_INT
    ) -> int | None:
        """A whole number within [minimum, maximum]."""
        raw = self._raw(name)
        if not raw:
            if required:
                self.errors[name] = _("This field is required.")
            return None
        try:
            value = int(raw)
        except ValueError:
            self.errors[name] = _("Enter a whole number.")
            return None
        if not minimum <= value <= maximum:
            self.errors[name] = _(
                "Enter a number from %(low)s to %(high)s.", low=minimum, high=maximum
            )
            return None
        return value

    def choice(self, name: str, choices: Sequence[str], *, required: bool = True) -> str | None:
        """One of a fixed list of values."""
        raw = self._raw(name)
        if not raw and not required:
            return None
        if raw not in choices:
            self.errors[name] = _("Choose one of the options.")
            return None
        return raw

    def day(self, name: str, *, required: bool = True) -> dt.date | None:
        """A calendar date (YYYY-MM-DD, as a date input sends it)."""
        raw = self._raw(name)
        if not raw:
            if required:
                self.errors[name] = _("This field is required.")
            return None
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            self.errors[name] = _("Enter a date.")
            return None

    def client_id(self) -> str | None:
        """The form's client id (a UUID)."""
        raw = self._raw("client_id")
        try:
            return str(uuid.UUID(raw))
        except ValueError:
            self.errors["_form"] = _("This form is out of date: reload the page.")
            return None

    def state(self) -> FormState:
        """The form as typed, with its errors, to show again."""
        values = {k: self.data.get(k) for k in self.data if k not in SKIPPED}
        return FormState(
            values=values,
            errors=dict(self.errors),
            client_id=self._raw("client_id") or new_client_id(),
        )


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a submitted form did: a message for the person, and whether it was a replay."""

    message: str
    replayed: bool = False


def _fingerprint(data: Any, path: str) -> str:
    fields = sorted((k, data.get(k)) for k in data if k not in SKIPPED)
    text = json.dumps([path, fields], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _key(owner: str, client_id: str) -> str:
    # Scoped per user, as the API's Idempotency-Keys are: two users' forms never meet.
    return hashlib.sha256(f"web-form:{owner}\x00{client_id}".encode()).hexdigest()


def _attempt(action: Callable[[UnitOfWork], str], key: str, digest: str, owner: str) -> Outcome:
    with new_uow() as uow:
        # Claimed before the use case runs: a concurrent twin waits on this key, then replays.
        first = keys.claim_or_find(
            uow, key=key, client_id=None, owner=owner, fingerprint=digest, now=utcnow()
        )
        if first is not None:
            return Outcome(json.loads(first.response_json or "{}").get("message", ""), True)
        message = action(uow)
        keys.remember(uow, key, status_code=200, body={"message": message})
        uow.commit()
        return Outcome(message)


def submit_once(
    client_id: str,
    action: Callable[[UnitOfWork], str],
    data: Any | None = None,
    path: str | None = None,
) -> Outcome:
    """Run a form's use case once per client id; a repeat gets the first outcome back.

    A queued offline entry (logistics/web/views/sync.py) passes the form's fields and the path
    it would have been posted to, so it meets the same record as the form posted directly.
    """
    data = request.form if data is None else data
    owner = current_actor()
    key, digest = _key(owner, client_id), _fingerprint(data, path or request.path)
    try:
        return _attempt(action, key, digest, owner)
    except IntegrityError:
        return _attempt(action, key, digest, owner)


# Fields a person does not type (hidden, or named in the URL): their errors belong to the form.
UNSEEN_FIELDS = frozenset(
    {
        "client_id",
        "occurred_at",
        "store_id",
        "session_id",
        "shipment_id",
        "alert_id",
        "review_id",
        "Idempotency-Key",
        "bucket",
    }
)


def field_errors(error: DomainError) -> dict[str, str]:
    """A service's refusal as an error next to the field it names (or the whole form)."""
    field = error.field if error.field and error.field not in UNSEEN_FIELDS else "_form"
    return {field: f"{_(error.title)}: {error.detail}"}
