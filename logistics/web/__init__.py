"""The web app for people: server-rendered pages (Jinja2), htmx for partial updates, uPlot charts.

The pages call the same services as the API (logistics/services) and the same policy table
(logistics/domain/policy.py); no business rule lives here, in a template or in the browser's JS.
Login is a session cookie holding an API token, so users, roles and revocation are the API's.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from flask import Flask
from flask.templating import Environment

from logistics.config import Settings

_DICT_NAMES = frozenset(dir(dict))


class PageEnvironment(Environment):
    """The pages' Jinja environment: `row.field` on a plain dict looks the key up at once.

    Jinja's getattr tries the attribute first and, for a dict's key, raises and catches an
    AttributeError before it reads the key: the services hand rows as dicts (a lot trace shows
    a hundred locations and fifty movements), so that cost ran into the thousands per page. The
    answer is the same: a name that is not one of dict's own attributes can only be a key.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_NAMES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        try:  # Jinja's own order from here: the attribute, else the item, else undefined
            return getattr(obj, attribute)
        except AttributeError:
            return super().getattr(obj, attribute)


def _secret_key(settings: Settings) -> str:
    """The configured key, else one made once and kept in a file that every worker reads."""
    if settings.web_secret_key:
        return settings.web_secret_key
    path = Path(settings.web_key_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: of several workers starting at once, one writes the key and the rest read it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_text().strip()
        if key:
            return key
        raise RuntimeError(f"{path} is empty: delete it or set web.secret_key") from None
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def init_web(app: Flask) -> None:
    """Serve the pages under / on this app: blueprint, session cookie, translations."""
    from logistics.web import alert_text, i18n, labels, urls, views
    from logistics.web.blueprint import web

    settings = app.extensions["coldchain"].settings
    # Before anything makes the app's environment (Flask makes it on first use, then keeps it).
    if "jinja_env" in app.__dict__:
        raise RuntimeError("init_web must come before any use of app.jinja_env")
    app.jinja_environment = PageEnvironment
    app.config.update(
        SECRET_KEY=_secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.web_secure_cookie,
        SESSION_COOKIE_NAME="coldchain_session",
    )
    i18n.init_i18n(app, settings)
    app.jinja_env.filters.update(
        label=i18n.in_request_language(labels.label),
        vvm=i18n.in_request_language(labels.vvm),
        code_label=i18n.in_request_language(labels.code_label),
        alert_text=i18n.in_request_language(alert_text.describe),
        attr_pairs=labels.attr_pairs,
        option_tags=labels.option_tags,
    )
    views.load()
    app.register_blueprint(web)
    urls.install(app)
