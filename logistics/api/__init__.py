"""HTTP API: one blueprint per area, registered on the app in `register_blueprints`."""

from __future__ import annotations

from flask_smorest import Api


def register_blueprints(api: Api) -> None:
    """Register the blueprint of every area of the API."""
    from logistics.api import (
        alerts,
        auth,
        catalog,
        equipment,
        indents,
        readings,
        reports,
        sessions,
        stock,
        system,
    )

    paperwork = (reports, indents, equipment)
    for module in (system, catalog, stock, readings, alerts, sessions, auth, *paperwork):
        for blueprint in getattr(module, "BLUEPRINTS", ()):
            api.register_blueprint(blueprint)
