"""The page views; importing a module adds its routes to the blueprint."""

from __future__ import annotations


def load() -> None:
    """Import every view module (once), so each registers its routes."""
    from logistics.web.views import (  # noqa: F401
        alerts,
        equipment,
        home,
        indents,
        overview,
        paperwork,
        planner,
        session,
        store,
        sync,
        transit,
        units,
    )
