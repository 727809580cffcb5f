"""HTTP API: indents. A centre or district asks its parent for doses of a product by a date;
the parent approves (possibly fewer doses) or rejects with a reason; an approved indent is
shipped through the ledger's issue and received through its receipt (issue 19, point 3).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from marshmallow import validate

from logistics.api.blueprint import Blueprint
from logistics.api.catalog import day, doses_field, ident, request_uow, text
from logistics.api.context import current_actor, settings
from logistics.api.stock import ReceivedLineSchema
from logistics.domain.indents import NEXT_STATES
from logistics.services import indents

blp = Blueprint("indents", __name__, url_prefix="/api", description="Indents to the parent store")
BLUEPRINTS = [blp]
STATES = list(NEXT_STATES)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _plan() -> indents.Planning:
    config = settings()
    return indents.Planning(
        config.indents_supply_period_days,
        config.ledger_consumption_window_days,
        config.site_timezone,
    )


class IndentEventSchema(ma.Schema):
    state = ma.fields.String(required=True, metadata={"enum": STATES})
    doses = ma.fields.Integer(allow_none=True)
    actor = ma.fields.String(required=True)
    comment = ma.fields.String(allow_none=True)
    at = ma.fields.AwareDateTime(required=True)


class IndentSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    from_store_id = ma.fields.Integer(required=True)
    to_store_id = ma.fields.Integer(required=True)
    product_id = ma.fields.Integer(required=True)
    needed_by = ma.fields.Date(required=True)
    doses_requested = ma.fields.Integer(required=True)
    doses_suggested = ma.fields.Integer(required=True)
    doses_approved = ma.fields.Integer(allow_none=True)
    state = ma.fields.String(required=True, metadata={"enum": STATES})
    note = ma.fields.String(allow_none=True)
    decision_reason = ma.fields.String(allow_none=True)
    requested_by = ma.fields.String(required=True)
    requested_at = ma.fields.AwareDateTime(required=True)
    decided_by = ma.fields.String(allow_none=True)
    decided_at = ma.fields.AwareDateTime(allow_none=True)
    shipment_id = ma.fields.Integer(allow_none=True)
    shipped_at = ma.fields.AwareDateTime(allow_none=True)
    received_at = ma.fields.AwareDateTime(allow_none=True)
    events = ma.fields.List(ma.fields.Nested(IndentEventSchema), required=True)


class IndentInSchema(ma.Schema):
    from_store_id = ident(required=True, metadata={"description": "The store asking its parent"})
    product_id = ident(required=True)
    needed_by = day(
        required=True, metadata={"description": "From the site's today to a year ahead"}
    )
    doses = doses_field(metadata={"description": "Default: the suggested quantity"})
    note = text(2000, load_default=None)


class IndentQuerySchema(ma.Schema):
    store_id = ident(strict=False)
    direction = ma.fields.String(
        load_default="any",
        validate=validate.OneOf(("in", "out", "any")),
        metadata={"description": "in: asked of the store; out: raised by it"},
    )
    state = ma.fields.String(validate=validate.OneOf(STATES))
    limit = ma.fields.Integer(load_default=100, validate=validate.Range(1, 500))
    offset = ma.fields.Integer(load_default=0, validate=validate.Range(0, 1_000_000))


class SuggestionQuerySchema(ma.Schema):
    store_id = ident(strict=False, required=True)
    product_id = ident(strict=False, required=True)
    needed_by = day(
        required=True, metadata={"description": "From the site's today to a year ahead"}
    )


class SuggestionSchema(ma.Schema):
    daily_consumption_doses = ma.fields.Float(allow_none=True)
    lead_days = ma.fields.Integer(required=True)
    period_days = ma.fields.Integer(required=True)
    sessions_before_doses = ma.fields.Integer(required=True)
    sessions_after_doses = ma.fields.Integer(required=True)
    on_hand_doses = ma.fields.Integer(required=True)
    in_transit_doses = ma.fields.Integer(required=True)
    max_level_doses = ma.fields.Float(allow_none=True)
    doses_per_vial = ma.fields.Integer(required=True)
    use_before_doses = ma.fields.Integer(required=True)
    period_needs_doses = ma.fields.Integer(required=True)
    minimum_doses = ma.fields.Integer(required=True)
    maximum_doses = ma.fields.Integer(required=True)
    available_at_delivery_doses = ma.fields.Integer(required=True)
    suggested_doses = ma.fields.Integer(required=True)


class ApproveSchema(ma.Schema):
    doses = doses_field(metadata={"description": "Default: the doses asked"})
    reason = text(
        2000,
        load_default=None,
        metadata={"description": "Needed (not blank) for fewer doses than asked"},
    )


class RejectSchema(ma.Schema):
    reason = text(2000, required=True)


class CancelSchema(ma.Schema):
    reason = text(2000, load_default=None)


class ShipSchema(ma.Schema):
    client_id = text(100, required=True, metadata={"description": "The issue's client id"})
    unit_id = ident(metadata={"description": "Draw from this unit of the parent only"})


class ReceiveSchema(ma.Schema):
    client_id = text(100, required=True, metadata={"description": "The receipt's client id"})
    unit_id = ident(required=True, metadata={"description": "The requesting store's unit"})
    lines = ma.fields.List(ma.fields.Nested(ReceivedLineSchema), validate=validate.Length(max=200))
    note = text(2000, load_default=None)
    vvm_stage = ma.fields.Integer(strict=True, validate=validate.Range(1, 4))


@blp.route("/indents/suggestion")
class IndentSuggestion(MethodView):
    @blp.arguments(SuggestionQuerySchema, location="query")
    @blp.response(200, SuggestionSchema)
    @blp.alt_response(404, description="Unknown store or product")
    @blp.alt_response(409, description="The store has no parent store to ask")
    @blp.alt_response(422, description="A needed-by date in the past or beyond a year")
    def get(self, args: dict[str, Any]) -> Any:
        """The quantity to ask for: consumption rate, planned sessions, maximum stock level."""
        needs, suggestion = indents.suggest_indent(
            request_uow(),
            store_id=args["store_id"],
            product_id=args["product_id"],
            needed_by=args["needed_by"],
            plan=_plan(),
            now=_now(),
        )
        return {**vars(needs), **vars(suggestion)}


@blp.route("/indents")
class Indents(MethodView):
    @blp.arguments(IndentQuerySchema, location="query")
    @blp.response(200, IndentSchema(many=True))
    @blp.alt_response(404, description="Unknown store")
    def get(self, args: dict[str, Any]) -> Any:
        """Indents a store raised or was asked, newest first."""
        return indents.list_indents(request_uow(), **args)

    @blp.arguments(IndentInSchema)
    @blp.response(201, IndentSchema)
    @blp.alt_response(404, description="Unknown store or product")
    @blp.alt_response(
        409, description="No parent store, or nothing to ask for (a suggestion of 0, no doses)"
    )
    @blp.alt_response(422, description="A needed-by date in the past or beyond a year")
    def post(self, body: dict[str, Any]) -> Any:
        """Ask the parent store for doses of a product by a date."""
        uow = request_uow()
        result = indents.raise_indent(
            uow,
            from_store_id=body["from_store_id"],
            product_id=body["product_id"],
            needed_by=body["needed_by"],
            doses=body.get("doses"),
            note=body["note"],
            actor=current_actor(),
            plan=_plan(),
            now=_now(),
        )
        uow.commit()
        return result


@blp.route("/indents/<int:indent_id>")
class IndentItem(MethodView):
    @blp.response(200, IndentSchema)
    @blp.alt_response(404, description="Unknown indent")
    def get(self, indent_id: int) -> Any:
        """One indent with its states: requested, approved or rejected, shipped, received."""
        return indents.get_indent(request_uow(), indent_id)


@blp.route("/indents/<int:indent_id>/approve")
class IndentApprove(MethodView):
    @blp.arguments(ApproveSchema, required=False)  # no body: approve the doses asked
    @blp.response(200, IndentSchema)
    @blp.alt_response(404, description="Unknown indent")
    @blp.alt_response(409, description="Not waiting for an answer, or more doses than asked")
    @blp.alt_response(422, description="Fewer doses than asked without a reason")
    def post(self, body: dict[str, Any], indent_id: int) -> Any:
        """The parent approves the indent, possibly for fewer doses (with a reason)."""
        uow = request_uow()
        result = indents.approve_indent(
            uow,
            indent_id=indent_id,
            doses=body.get("doses"),
            reason=body["reason"],
            actor=current_actor(),
            now=_now(),
        )
        uow.commit()
        return result


@blp.route("/indents/<int:indent_id>/reject")
class IndentReject(MethodView):
    @blp.arguments(RejectSchema)
    @blp.response(200, IndentSchema)
    @blp.alt_response(404, description="Unknown indent")
    @blp.alt_response(409, description="Not waiting for an answer")
    @blp.alt_response(422, description="No reason")
    def post(self, body: dict[str, Any], indent_id: int) -> Any:
        """The parent rejects the indent, with a reason."""
        uow = request_uow()
        result = indents.reject_indent(
            uow,
            indent_id=indent_id,
            reason=body["reason"],
            actor=current_actor(),
            now=_now(),
        )
        uow.commit()
        return result


@blp.route("/indents/<int:indent_id>/cancel")
class IndentCancel(MethodView):
    @blp.arguments(CancelSchema, required=False)  # no body: cancel without a reason
    @blp.response(200, IndentSchema)
    @blp.alt_response(404, description="Unknown indent")
    @blp.alt_response(409, description="Already shipped, answered no, or closed")
    def post(self, body: dict[str, Any], indent_id: int) -> Any:
        """The requesting store withdraws its indent (before it is shipped)."""
        uow = request_uow()
        result = indents.cancel_indent(
            uow,
            indent_id=indent_id,
            reason=body["reason"],
            actor=current_actor(),
            now=_now(),
        )
        uow.commit()
        return result


@blp.route("/indents/<int:indent_id>/ship")
class IndentShip(MethodView):
    @blp.arguments(ShipSchema)
    @blp.response(200, IndentSchema)
    @blp.alt_response(404, description="Unknown indent or unit")
    @blp.alt_response(409, description="Not approved, or not enough usable stock")
    def post(self, body: dict[str, Any], indent_id: int) -> Any:
        """Issue the approved doses to the requesting store (the ledger's issue, FEFO)."""
        uow = request_uow()
        result = indents.ship_indent(
            uow,
            indent_id=indent_id,
            client_id=body["client_id"],
            unit_id=body.get("unit_id"),
            actor=current_actor(),
            now=_now(),
            timezone=settings().site_timezone,
        )
        uow.commit()
        return result


@blp.route("/indents/<int:indent_id>/receive")
class IndentReceive(MethodView):
    @blp.arguments(ReceiveSchema)
    @blp.response(200, IndentSchema)
    @blp.alt_response(404, description="Unknown indent or unit")
    @blp.alt_response(409, description="Not shipped")
    @blp.alt_response(422, description="A short receipt without a reason, or a wrong unit")
    def post(self, body: dict[str, Any], indent_id: int) -> Any:
        """The requesting store receives the shipment (the ledger's receipt)."""
        uow = request_uow()
        result = indents.receive_indent(
            uow,
            indent_id=indent_id,
            unit_id=body["unit_id"],
            client_id=body["client_id"],
            lines=body.get("lines", ()),
            note=body["note"],
            vvm_stage=body.get("vvm_stage"),
            actor=current_actor(),
            now=_now(),
            timezone=settings().site_timezone,
        )
        uow.commit()
        return result
