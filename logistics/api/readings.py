"""HTTP API: readings."""

from __future__ import annotations

from flask_smorest import Blueprint

BLUEPRINTS: list[Blueprint] = []
