"""The one blueprint of the pages; the view modules add their routes to it."""

from __future__ import annotations

from flask import Blueprint

web = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/assets",
)
