"""HTTP API: one blueprint per area, registered on the app in `register_blueprints`."""

from __future__ import annotations

import marshmallow as ma
from flask_smorest import Api


def register_blueprints(api: Api) -> None:
    """Register the blueprint of every area of the API."""
    from logistics.api import (
        alerts,
        auth,
        catalog,
        equipment,
        fields,
        indents,
        readings,
        reports,
        sessions,
        stock,
        system,
        transit,
    )

    # CoWIN dates are DD-MM-YYYY strings, not OpenAPI "date"s (its pattern says which).
    api.register_field(sessions.CowinDate, "string", None)
    api.register_field(ma.fields.Time, "string", None)
    # Strict request timestamps and dates: a pattern, not an OpenAPI format (api/fields.py).
    api.register_field(fields.Timestamp, "string", None)
    api.register_field(fields.Day, "string", None)
    paperwork = (reports, indents, equipment)
    for module in (system, catalog, stock, readings, alerts, sessions, auth, *paperwork, transit):
        for blueprint in getattr(module, "BLUEPRINTS", ()):
            api.register_blueprint(blueprint)
