"""CSRF protection of the pages' forms: a per-session token, sent back in a field or a header.

Every POST of the pages must carry the session's token in the form field `csrf_token` or the
header `X-CSRF-Token` (htmx sends it, see base.html). A forged cross-site form cannot read the
token, so it cannot send it. The session cookie is also SameSite=Lax.
"""

from __future__ import annotations

import hmac
import secrets

from flask import request, session

FIELD, HEADER, KEY = "csrf_token", "X-CSRF-Token", "csrf"


def token() -> str:
    """This session's CSRF token (made on first use)."""
    if KEY not in session:
        session[KEY] = secrets.token_urlsafe(32)
    return session[KEY]


def is_valid() -> bool:
    """Tell whether this request carries the session's token."""
    expected = session.get(KEY)
    sent = request.form.get(FIELD) or request.headers.get(HEADER) or ""
    return bool(expected) and hmac.compare_digest(expected.encode(), sent.encode())


def leave_unstarted() -> None:
    """Send no session cookie for a session this request began only to render its answer (the
    token minted for an error page): the browser keeps the session, and token, it has."""
    session.clear()
    session.modified = False


def rotate() -> None:
    """Give the session a new token (at login and logout: a token never outlives its login)."""
    session[KEY] = secrets.token_urlsafe(32)
