"""HTTP API: the equipment register. What each storage unit is, whether it works, its repair
history, and functional units by district (issue 19, point 4).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from marshmallow import validate

from logistics.api.blueprint import Blueprint
from logistics.api.catalog import ident, request_uow, text
from logistics.api.context import current_actor
from logistics.domain.equipment import WORKING_STATUSES
from logistics.services import equipment

blp = Blueprint(
    "equipment", __name__, url_prefix="/api", description="Equipment register and repairs"
)
BLUEPRINTS = [blp]
ENERGY_SOURCES = ("electricity", "solar", "solar_battery", "gas", "kerosene", "hybrid", "other")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RegisterInSchema(ma.Schema):
    make = text(100, allow_none=True)
    model = text(100, allow_none=True)
    pqs_code = text(32, allow_none=True, metadata={"description": "WHO PQS code, e.g. E003/070"})
    year_installed = ma.fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(1950, 2100)
    )
    energy_source = ma.fields.String(allow_none=True, validate=validate.OneOf(ENERGY_SOURCES))
    capacity_doses = ma.fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(1, 100_000_000),
        metadata={"description": "Doses the unit holds when full (its room for moved doses)"},
    )


class RegisterSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    store_id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    kind = ma.fields.String(required=True)
    min_temp_c = ma.fields.Float(required=True)
    max_temp_c = ma.fields.Float(required=True)
    active = ma.fields.Boolean(required=True)
    make = ma.fields.String(allow_none=True)
    model = ma.fields.String(allow_none=True)
    pqs_code = ma.fields.String(allow_none=True)
    year_installed = ma.fields.Integer(allow_none=True)
    energy_source = ma.fields.String(allow_none=True)
    capacity_doses = ma.fields.Integer(allow_none=True)
    working_status = ma.fields.String(required=True, metadata={"enum": list(WORKING_STATUSES)})


class StatusInSchema(ma.Schema):
    status = ma.fields.String(required=True, validate=validate.OneOf(WORKING_STATUSES))
    note = text(2000, load_default=None, metadata={"description": "The fault, or the repair"})


class StatusChangeSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    unit_id = ma.fields.Integer(required=True)
    from_status = ma.fields.String(required=True)
    to_status = ma.fields.String(required=True)
    note = ma.fields.String(allow_none=True)
    actor = ma.fields.String(required=True)
    at = ma.fields.AwareDateTime(required=True)


class LotToMoveSchema(ma.Schema):
    lot_id = ma.fields.Integer(required=True)
    lot_number = ma.fields.String(required=True)
    product_id = ma.fields.Integer(required=True)
    product_code = ma.fields.String(required=True)
    doses = ma.fields.Integer(required=True)


class DestinationSchema(ma.Schema):
    unit_id = ma.fields.Integer(required=True)
    unit_code = ma.fields.String(required=True)
    store_id = ma.fields.Integer(required=True)
    store_code = ma.fields.String(required=True)
    store_name = ma.fields.String(required=True)
    free_doses = ma.fields.Integer(required=True)
    steps = ma.fields.Integer(required=True, metadata={"description": "Steps in the store tree"})


class EvacuationSchema(ma.Schema):
    doses = ma.fields.Integer(required=True)
    lots = ma.fields.List(ma.fields.Nested(LotToMoveSchema), required=True)
    destinations = ma.fields.List(
        ma.fields.Nested(DestinationSchema),
        required=True,
        metadata={"description": "Nearest first; empty when no unit with room is known"},
    )


class StatusOutSchema(ma.Schema):
    unit = ma.fields.Nested(RegisterSchema, required=True)
    change = ma.fields.Nested(StatusChangeSchema, required=True)
    evacuation = ma.fields.Nested(EvacuationSchema, allow_none=True)


class FunctionalQuerySchema(ma.Schema):
    within_id = ident(strict=False, metadata={"description": "Districts of this subtree"})


class FunctionalSchema(ma.Schema):
    district_id = ma.fields.Integer(required=True)
    district_code = ma.fields.String(required=True)
    district_name = ma.fields.String(required=True)
    units = ma.fields.Integer(required=True)
    working = ma.fields.Integer(required=True)
    needs_repair = ma.fields.Integer(required=True)
    not_working = ma.fields.Integer(required=True)
    functional = ma.fields.Integer(
        required=True, metadata={"description": "working + needs repair (WHO CCE inventory)"}
    )
    functional_pct = ma.fields.Float(allow_none=True)


@blp.route("/units/<int:unit_id>/equipment")
class UnitEquipment(MethodView):
    @blp.response(200, RegisterSchema)
    @blp.alt_response(404, description="Unknown unit")
    def get(self, unit_id: int) -> Any:
        """The unit's register entry: make, model, PQS code, year, energy, capacity, status."""
        return equipment.get_unit_register(request_uow(), unit_id)

    # No body, like an empty one, changes nothing: the document says the body is optional.
    @blp.arguments(RegisterInSchema, required=False)
    @blp.response(200, RegisterSchema)
    @blp.alt_response(404, description="Unknown unit")
    def patch(self, body: dict[str, Any], unit_id: int) -> Any:
        """Record what the unit is; fields left out keep their value."""
        uow = request_uow()
        result = equipment.update_register(uow, unit_id=unit_id, fields=body)
        uow.commit()
        return result


@blp.route("/units/<int:unit_id>/status")
class UnitStatus(MethodView):
    @blp.arguments(StatusInSchema)
    @blp.response(200, StatusOutSchema)
    @blp.alt_response(404, description="Unknown unit")
    def post(self, body: dict[str, Any], unit_id: int) -> Any:
        """Set the working status; "not working" raises an alarm naming the doses to move."""
        uow = request_uow()
        result = equipment.set_working_status(
            uow,
            unit_id=unit_id,
            status=body["status"],
            note=body["note"],
            actor=current_actor(),
            now=_now(),
        )
        uow.commit()
        return result


@blp.route("/units/<int:unit_id>/repairs")
class UnitRepairs(MethodView):
    @blp.response(200, StatusChangeSchema(many=True))
    @blp.alt_response(404, description="Unknown unit")
    def get(self, unit_id: int) -> Any:
        """The unit's repair history: every change of its working status, oldest first."""
        return equipment.repair_history(request_uow(), unit_id)


@blp.route("/equipment/functional")
class FunctionalUnits(MethodView):
    @blp.arguments(FunctionalQuerySchema, location="query")
    @blp.response(200, FunctionalSchema(many=True))
    @blp.alt_response(404, description="Unknown store")
    def get(self, args: dict[str, Any]) -> Any:
        """Functional storage units per district (the district store and the stores below)."""
        return [
            {
                "district_id": row.district.id,
                "district_code": row.district.code,
                "district_name": row.district.name,
                "units": row.counts.total,
                "working": row.counts.working,
                "needs_repair": row.counts.needs_repair,
                "not_working": row.counts.not_working,
                "functional": row.counts.functional,
                "functional_pct": row.counts.functional_pct,
            }
            for row in equipment.functional_by_district(request_uow(), **args)
        ]
