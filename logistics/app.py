"""The Flask application factory."""

from __future__ import annotations

from typing import Any

from flask import Flask

from logistics.api import register_blueprints
from logistics.api.hostile import document_input_rules, refuse_hostile_input
from logistics.api.problems import ProblemApi
from logistics.auth.web import init_auth
from logistics.config import Settings, load_settings
from logistics.logs import init_request_logging
from logistics.metrics import init_metrics
from logistics.runtime import Runtime
from logistics.web import init_web


def create_app(
    settings: Settings | None = None, runtime: Runtime | None = None, **overrides: Any
) -> Flask:
    """Build the web app for these settings (default: config/ plus the environment).

    A ready `runtime` (engine and sessions) may be passed in, e.g. by tests sharing one engine.
    """
    settings = runtime.settings if runtime else settings or load_settings(overrides or None)
    app = Flask("logistics")
    app.config.update(
        MAX_CONTENT_LENGTH=settings.http_max_body_bytes,
        API_TITLE="Cold-chain and vaccine stock service",
        API_VERSION="1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="/docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        OPENAPI_REDOC_PATH="/redoc",
        OPENAPI_REDOC_URL="https://cdn.jsdelivr.net/npm/redoc/bundles/redoc.standalone.js",
    )
    app.json.sort_keys = False
    app.extensions["coldchain"] = runtime or Runtime.from_settings(settings)
    api = ProblemApi(app)
    # First of the before-request hooks: hostile input never reaches authentication or a view.
    app.before_request(refuse_hostile_input)
    register_blueprints(api)
    # Before auth: requests it refuses are timed, counted and logged too.
    init_request_logging(app)
    init_metrics(app)
    init_auth(app)
    init_web(app)
    document_input_rules(app)
    return app
