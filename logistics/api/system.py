"""HTTP API: health of the service (for benchmarks, and for load balancers and orchestrators)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView

from logistics.api.blueprint import Blueprint
from logistics.api.context import runtime
from logistics.api.problems import problem_response
from logistics.metrics import database_answers

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


@blp.route("/health/live")
class Live(MethodView):
    @blp.response(200, HealthSchema)
    def get(self) -> dict[str, str]:
        """Tell that the process is alive (restart it when this stops answering)."""
        return {"status": "ok"}


@blp.route("/health/ready")
class Ready(MethodView):
    @blp.response(200, HealthSchema)
    @blp.alt_response(503, response="SERVICE_UNAVAILABLE")
    def get(self) -> Any:
        """Tell whether the process can serve requests: 503 while the database is unreachable."""
        ok, detail = database_answers(runtime())
        if not ok:
            return problem_response(503, detail, slug="not-ready", headers={"Retry-After": "5"})
        return {"status": "ready"}
