"""HTTP API: health of the service."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView
from flask_smorest import Blueprint

blp = Blueprint("system", __name__, url_prefix="/api", description="Health of the service")
BLUEPRINTS = [blp]


class HealthSchema(ma.Schema):
    status = ma.fields.String(required=True)


@blp.route("/health")
class Health(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, str]:
        """Tell that the web process is up (no database access: a baseline for benchmarks)."""
        return {"status": "ok"}
