"""HTTP API: stock movements (receipt, issue, transfer, consumption, wastage, count, reversal),
balances, shipments in transit and traceability.

Every movement POST is idempotent: send an Idempotency-Key header (or rely on the body's client_id).
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from marshmallow import validate

from logistics.api import scope
from logistics.api.blueprint import Blueprint
from logistics.api.catalog import (
    LotOutSchema,
    StoreOutSchema,
    day,
    doses_field,
    ident,
    request_uow,
    text,
    vials_of,
    when,
)
from logistics.api.context import current_actor, settings
from logistics.api.fields import Flag
from logistics.api.idempotency import HEADER_DOC, record_once
from logistics.api.problems import PROBLEM_JSON, ProblemSchema
from logistics.clock import utcnow
from logistics.domain import stock as rules
from logistics.services import recalls, stock, trace

blp = Blueprint(
    "stock", __name__, url_prefix="/api", description="Stock movements, balances, traceability"
)
BLUEPRINTS = [blp]

IDEMPOTENCY_DOC = HEADER_DOC


# --- schemas -------------------------------------------------------------------------------------


class MovementInSchema(ma.Schema):
    """Fields every movement carries."""

    client_id = text(
        100, required=True, metadata={"description": "Client-generated unique id (UUID)"}
    )
    occurred_at = when(
        load_default=None,
        metadata={
            "description": "When it happened (default now); not later than now (5 minutes of "
            "clock skew allowed)"
        },
    )
    note = text(2000, load_default=None)


class LotRefSchema(ma.Schema):
    lot_id = ident()
    product_id = ident()
    lot_number = text(64)
    manufacturer = text(200, metadata={"description": "Needed for a lot not yet recorded"})
    expiry_date = day(metadata={"description": "Not passed: an expired lot cannot be received"})
    gtin = ma.fields.String(validate=validate.Regexp(r"^\d{8,14}$"))
    gs1 = text(
        200,
        metadata={
            "description": "GS1 element string: (01) GTIN with its check digit, (10) lot, (17) "
            "expiry (not passed); it must parse"
        },
    )


FREEZE_INDICATOR_STATES = ("ok", "alarm", "absent")


class ReceivedLineSchema(ma.Schema):
    lot_id = ident(required=True)
    doses_received = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(0, 100_000_000)
    )
    reason = ma.fields.String(
        validate=validate.OneOf(rules.SHORT_RECEIPT_REASONS),
        metadata={"description": "Needed when fewer doses than issued are received"},
    )


class ReceiptInSchema(MovementInSchema, LotRefSchema):
    # A parent's shipment, or a supplier's doses of a lot named by id, GS1 string, or number and
    # expiry with its product (by id or GTIN).
    OPENAPI_RULES = {
        "anyOf": [
            {"required": ["shipment_id"]},
            {"required": ["doses", "lot_id"]},
            {"required": ["doses", "gs1"]},
            {
                "required": ["doses", "lot_number", "expiry_date"],
                "anyOf": [{"required": ["product_id"]}, {"required": ["gtin"]}],
            },
        ]
    }

    store_id = ident(required=True)
    unit_id = ident(required=True)
    doses = doses_field(metadata={"description": "Doses received (supplier receipts)"})
    vvm_stage = ma.fields.Integer(
        strict=True,
        validate=validate.Range(1, 4),
        metadata={"description": "VVM stage seen on arrival (1-2 usable; default 1)"},
    )
    freeze_indicator = ma.fields.String(
        validate=validate.OneOf(FREEZE_INDICATOR_STATES),
        metadata={"description": "Freeze indicator on arrival"},
    )
    logger_alarm = Flag(metadata={"description": "Shipment logger showed an alarm"})
    supplier = text(200)
    shipment_id = ident(
        metadata={"description": "Receive this shipment issued by the parent store"}
    )
    lines = ma.fields.List(
        ma.fields.Nested(ReceivedLineSchema),
        validate=validate.Length(max=200),
        metadata={"description": "Short or damaged lots of the shipment"},
    )

    @ma.validates_schema
    def _doses_or_shipment(self, data: dict[str, Any], **_: Any) -> None:
        if "shipment_id" not in data and "doses" not in data:
            raise ma.ValidationError("doses is required for a receipt from a supplier", "doses")
        if "shipment_id" not in data and not ({"lot_id", "lot_number", "gs1"} & set(data)):
            raise ma.ValidationError("name the lot: lot_id, lot fields or gs1", "lot_id")


class IssueInSchema(MovementInSchema):
    # Lots are named one by one (lot_id) or chosen FEFO from a product (product_id).
    OPENAPI_RULES = {"anyOf": [{"required": ["product_id"]}, {"required": ["lot_id"]}]}

    store_id = ident(required=True)
    to_store_id = ident(required=True, metadata={"description": "A child store of store_id"})
    doses = doses_field(required=True)
    product_id = ident(metadata={"description": "Lots chosen earliest-expiry-first"})
    lot_id = ident(metadata={"description": "Issue this lot only"})
    unit_id = ident(metadata={"description": "Draw from this unit only"})


class TransferInSchema(MovementInSchema):
    store_id = ident(required=True)
    from_unit_id = ident(required=True)
    to_unit_id = ident(required=True, metadata={"description": "Another unit than from_unit_id"})
    lot_id = ident(required=True)
    doses = doses_field(required=True)


class ConsumptionInSchema(MovementInSchema):
    store_id = ident(required=True)
    unit_id = ident(required=True)
    lot_id = ident(required=True)
    doses = doses_field(required=True)


class WastageInSchema(ConsumptionInSchema):
    reason = ma.fields.String(required=True, validate=validate.OneOf(rules.WASTAGE_REASONS))
    from_quarantine = Flag(load_default=False)


class CountInSchema(MovementInSchema):
    store_id = ident(required=True)
    unit_id = ident(required=True)
    lot_id = ident(required=True)
    counted_doses = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(0, 100_000_000)
    )


class ReversalInSchema(ma.Schema):
    client_id = text(100, required=True)
    reason = text(40, load_default=None)


class EntrySchema(ma.Schema):
    unit_id = ma.fields.Integer(required=True)
    store_id = ma.fields.Integer(required=True)
    lot_id = ma.fields.Integer(required=True)
    lot_number = ma.fields.Function(lambda e: e.lot.lot_number)
    expiry_date = ma.fields.Function(lambda e: e.lot.expiry_date.isoformat())
    doses = ma.fields.Integer(required=True)
    vials = ma.fields.Function(lambda e: vials_of(e.doses, e.lot), metadata={"type": "number"})


class ShipmentLineSchema(ma.Schema):
    lot_id = ma.fields.Integer(required=True)
    lot_number = ma.fields.Function(lambda line: line.lot.lot_number)
    expiry_date = ma.fields.Function(lambda line: line.lot.expiry_date.isoformat())
    doses_issued = ma.fields.Integer(required=True)
    vials_issued = ma.fields.Function(lambda line: vials_of(line.doses_issued, line.lot))
    vvm_stage = ma.fields.Integer(required=True)
    doses_received = ma.fields.Integer(allow_none=True)
    difference_reason = ma.fields.String(allow_none=True)


class ShipmentSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    from_store_id = ma.fields.Integer(required=True)
    to_store_id = ma.fields.Integer(required=True)
    status = ma.fields.String(
        required=True, metadata={"enum": ["in_transit", "received", "cancelled"]}
    )
    issued_at = ma.fields.DateTime(required=True)
    received_at = ma.fields.DateTime(allow_none=True)
    lines = ma.fields.List(ma.fields.Nested(ShipmentLineSchema), required=True)


class MovementSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    client_id = ma.fields.String(required=True)
    kind = ma.fields.String(required=True, metadata={"enum": list(rules.MOVEMENT_KINDS)})
    store_id = ma.fields.Integer(required=True)
    other_store_id = ma.fields.Integer(allow_none=True)
    shipment_id = ma.fields.Integer(allow_none=True)
    reverses_id = ma.fields.Integer(allow_none=True)
    reason = ma.fields.String(allow_none=True)
    note = ma.fields.String(allow_none=True)
    supplier = ma.fields.String(allow_none=True)
    counted_doses = ma.fields.Integer(allow_none=True)
    vvm_stage = ma.fields.Integer(allow_none=True, metadata={"description": "VVM seen on arrival"})
    freeze_indicator = ma.fields.String(allow_none=True)
    logger_alarm = ma.fields.Boolean(allow_none=True)
    actor = ma.fields.String(required=True)
    occurred_at = ma.fields.DateTime(required=True)
    recorded_at = ma.fields.DateTime(required=True)
    doses = ma.fields.Function(
        lambda m: sum(e.doses for e in m.entries),
        metadata={"description": "Net change of doses (signed)"},
    )
    entries = ma.fields.List(ma.fields.Nested(EntrySchema), required=True)
    shipment = ma.fields.Nested(ShipmentSchema, allow_none=True)


class MovementQuerySchema(ma.Schema):
    store_id = ident(strict=False)
    lot_id = ident(strict=False)
    kind = ma.fields.String(validate=validate.OneOf(rules.MOVEMENT_KINDS))
    before_id = ma.fields.Integer(validate=validate.Range(1, 2**62))
    limit = ma.fields.Integer(load_default=100, validate=validate.Range(1, 500))


class BalanceQuerySchema(ma.Schema):
    unit_id = ident(strict=False, required=True)
    lot_id = ident(strict=False, required=True)


class BalanceSchema(ma.Schema):
    store_id = ma.fields.Integer(required=True)
    unit_id = ma.fields.Integer(required=True)
    lot_id = ma.fields.Integer(required=True)
    doses = ma.fields.Integer(required=True)
    vials = ma.fields.Function(lambda b: vials_of(b.doses, b.lot))
    quarantined_doses = ma.fields.Integer(required=True)
    vvm_stage = ma.fields.Integer(required=True)
    updated_at = ma.fields.DateTime(allow_none=True)


class ShipmentQuerySchema(ma.Schema):
    store_id = ident(strict=False)
    status = ma.fields.String(validate=validate.OneOf(["in_transit", "received", "cancelled"]))


class LocationSchema(ma.Schema):
    store_id = ma.fields.Integer()
    store_code = ma.fields.String()
    unit_id = ma.fields.Integer()
    unit_code = ma.fields.String()
    doses = ma.fields.Integer()
    vials = ma.fields.Float()
    quarantined_doses = ma.fields.Integer()
    vvm_stage = ma.fields.Integer()


class TransitSchema(ma.Schema):
    shipment_id = ma.fields.Integer()
    from_store_id = ma.fields.Integer()
    to_store_id = ma.fields.Integer()
    doses = ma.fields.Integer()
    vials = ma.fields.Float()
    issued_at = ma.fields.DateTime()
    reason = ma.fields.String(allow_none=True)


class TraceMovementSchema(ma.Schema):
    entry_id = ma.fields.Integer()
    movement_id = ma.fields.Integer()
    kind = ma.fields.String()
    store_id = ma.fields.Integer()
    unit_id = ma.fields.Integer()
    doses = ma.fields.Integer()
    occurred_at = ma.fields.DateTime()
    recorded_at = ma.fields.DateTime()
    actor = ma.fields.String()
    reason = ma.fields.String(allow_none=True)
    client_id = ma.fields.String()
    other_store_id = ma.fields.Integer(allow_none=True)
    reverses_id = ma.fields.Integer(allow_none=True)


class LotTraceSchema(ma.Schema):
    lot = ma.fields.Nested(LotOutSchema)
    doses_in_stock = ma.fields.Integer()
    doses_in_transit = ma.fields.Integer()
    locations = ma.fields.List(ma.fields.Nested(LocationSchema))
    in_transit = ma.fields.List(ma.fields.Nested(TransitSchema))
    lost_in_transit = ma.fields.List(ma.fields.Nested(TransitSchema))
    movements = ma.fields.List(ma.fields.Nested(TraceMovementSchema))
    # issue 18: where the doses travelled, and in what (logistics/api/transit.py)
    trips = ma.fields.List(ma.fields.Nested("LotTripSchema"))
    next_after_entry_id = ma.fields.Integer(
        allow_none=True, metadata={"description": "after_entry_id of the next page (null: last)"}
    )


class LotTraceQuerySchema(ma.Schema):
    limit = ma.fields.Integer(load_default=100, validate=validate.Range(1, 500))
    after_entry_id = ma.fields.Integer(validate=validate.Range(1, 2**62))


class UnitStockSchema(ma.Schema):
    store_id = ma.fields.Integer()
    unit_id = ma.fields.Integer()
    doses = ma.fields.Integer()
    vvm_stage = ma.fields.Integer()


class LotStockSchema(ma.Schema):
    lot_id = ma.fields.Integer()
    lot_number = ma.fields.String()
    expiry_date = ma.fields.Date()
    doses = ma.fields.Integer()
    vials = ma.fields.Float()
    usable_doses = ma.fields.Integer()
    quarantined_doses = ma.fields.Integer()
    units = ma.fields.List(ma.fields.Nested(UnitStockSchema))


class ProductStockSchema(ma.Schema):
    product_id = ma.fields.Integer()
    product_code = ma.fields.String()
    doses = ma.fields.Integer()
    vials = ma.fields.Float()
    usable_doses = ma.fields.Integer()
    consumed_doses = ma.fields.Integer(metadata={"description": "Consumed within the window"})
    daily_consumption = ma.fields.Float(allow_none=True)
    days_of_stock = ma.fields.Float(
        allow_none=True, metadata={"description": "null until consumption is known"}
    )
    lots = ma.fields.List(ma.fields.Nested(LotStockSchema))


class StoreStockSchema(ma.Schema):
    store = ma.fields.Nested(StoreOutSchema)
    subtree = ma.fields.Boolean()
    as_of = ma.fields.DateTime()
    window_days = ma.fields.Integer()
    products = ma.fields.List(ma.fields.Nested(ProductStockSchema))


class StoreStockQuerySchema(ma.Schema):
    subtree = ma.fields.Boolean(load_default=False, metadata={"description": "include the subtree"})
    window_days = ma.fields.Integer(
        validate=validate.Range(1, 366),
        metadata={"description": "consumption window (default: setting)"},
    )


# --- movement endpoints ---


def recorded_by_caller(args: dict[str, Any]) -> stock.Recorded:
    """Who and when of a movement posted through the API (takes occurred_at and client_id)."""
    return stock.recorded(
        current_actor(),
        args.pop("occurred_at", None),
        args.pop("client_id"),
        settings().site_timezone,
    )


class StockConflictSchema(ProblemSchema):
    """A refused movement: insufficient stock (with the usable doses) or a reused key."""

    available_doses = ma.fields.Integer(metadata={"description": "Doses that could be taken"})


def _document(view: Any) -> Any:
    view = blp.doc(**IDEMPOTENCY_DOC)(view)
    view = blp.alt_response(404, response="NOT_FOUND")(view)
    view = blp.alt_response(
        409,
        schema=StockConflictSchema,
        content_type=PROBLEM_JSON,
        description="Insufficient stock, or a reused Idempotency-Key",
    )(view)
    return blp.response(201, MovementSchema)(view)


_LOT_FIELDS = ("lot_id", "product_id", "lot_number", "manufacturer", "expiry_date", "gtin", "gs1")


def _receive(args: dict[str, Any]) -> Any:
    checks = {name: args.get(name) for name in ("freeze_indicator", "logger_alarm", "note")}
    if args.get("shipment_id"):

        def action(uow: Any) -> Any:
            return stock.receive_shipment(
                uow,
                store_id=args["store_id"],
                unit_id=args["unit_id"],
                shipment_id=args["shipment_id"],
                rec=recorded_by_caller(dict(args)),
                lines=args.get("lines", ()),
                vvm_stage=args.get("vvm_stage"),
                **checks,
            )
    else:
        lot = {name: args[name] for name in _LOT_FIELDS if name in args}

        def action(uow: Any) -> Any:
            return stock.receive_stock(
                uow,
                store_id=args["store_id"],
                unit_id=args["unit_id"],
                doses=args["doses"],
                rec=recorded_by_caller(dict(args)),
                lot=lot,
                vvm_stage=args.get("vvm_stage") or 1,
                supplier=args.get("supplier"),
                **checks,
            )

    return record_once(action, MovementSchema, args["client_id"])


@blp.route("/receipts")
class Receipts(MethodView):
    @blp.arguments(ReceiptInSchema)
    @_document
    def post(self, args: dict[str, Any]) -> Any:
        """Receive doses from a supplier (lot by id, fields or GS1) or a parent's shipment."""
        return _receive(args)


@blp.route("/issues")
class Issues(MethodView):
    @blp.arguments(IssueInSchema)
    @_document
    def post(self, args: dict[str, Any]) -> Any:
        """Issue doses to a child store, FEFO unless a lot is named; lists lots and doses."""
        return record_once(
            lambda uow: stock.issue_stock(
                uow, rec=recorded_by_caller(dict(args)), **_without(args)
            ),
            MovementSchema,
            args["client_id"],
        )


@blp.route("/transfers")
class Transfers(MethodView):
    @blp.arguments(TransferInSchema)
    @_document
    def post(self, args: dict[str, Any]) -> Any:
        """Move doses of a lot between two units of one store."""
        return record_once(
            lambda uow: stock.transfer_stock(
                uow, rec=recorded_by_caller(dict(args)), **_without(args)
            ),
            MovementSchema,
            args["client_id"],
        )


@blp.route("/consumptions")
class Consumptions(MethodView):
    @blp.arguments(ConsumptionInSchema)
    @_document
    def post(self, args: dict[str, Any]) -> Any:
        """Record doses given from a unit's usable stock."""
        return record_once(
            lambda uow: stock.record_consumption(
                uow, actor=current_actor(), site_timezone=settings().site_timezone, **args
            ),
            MovementSchema,
            args["client_id"],
        )


@blp.route("/wastages")
class Wastages(MethodView):
    @blp.arguments(WastageInSchema)
    @_document
    def post(self, args: dict[str, Any]) -> Any:
        """Record discarded doses with a reason (expired, frozen, vvm, breakage, ...)."""
        return record_once(
            lambda uow: stock.record_wastage(uow, actor=current_actor(), **args),
            MovementSchema,
            args["client_id"],
        )


@blp.route("/counts")
class Counts(MethodView):
    @blp.arguments(CountInSchema)
    @_document
    def post(self, args: dict[str, Any]) -> Any:
        """Record a physical count: the balance at its time becomes the count (difference kept)."""
        return record_once(
            lambda uow: stock.record_count(
                uow, rec=recorded_by_caller(dict(args)), **_without(args)
            ),
            MovementSchema,
            args["client_id"],
        )


@blp.route("/movements/<int:movement_id>/reversal")
class Reversal(MethodView):
    @blp.arguments(ReversalInSchema)
    @_document
    def post(self, args: dict[str, Any], movement_id: int) -> Any:
        """Correct a mistake: record a movement undoing this one (the ledger is never edited)."""
        return record_once(
            lambda uow: stock.reverse_movement(
                uow, movement_id=movement_id, actor=current_actor(), **args
            ),
            MovementSchema,
            args["client_id"],
        )


# --- recalls: a hold on a whole lot in a subtree (issue 11, point 7) ---


class RecallInSchema(ma.Schema):
    store_id = ident(
        metadata={
            "description": "Hold the lot in this store's subtree (a state officer: their state); "
            "leave out to hold it in the whole network (administrators)"
        }
    )
    reason = text(2000, required=True, metadata={"description": "Why (e.g. the recall notice)"})


class RecallSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    lot_id = ma.fields.Integer(required=True)
    store_id = ma.fields.Integer(allow_none=True, metadata={"description": "null: whole network"})
    reason = ma.fields.String(required=True)
    placed_by = ma.fields.String(required=True)
    placed_at = ma.fields.DateTime(required=True)
    lifted_at = ma.fields.DateTime(allow_none=True)
    lifted_by = ma.fields.String(allow_none=True)
    lift_reason = ma.fields.String(allow_none=True)


def _recall_doc(view: Any) -> Any:
    view = blp.doc(**IDEMPOTENCY_DOC)(view)
    view = blp.alt_response(404, response="NOT_FOUND")(view)
    return blp.alt_response(409, schema=ProblemSchema, content_type=PROBLEM_JSON)(view)


@blp.route("/lots/<int:lot_id>/recalls")
class LotRecalls(MethodView):
    @blp.response(200, RecallSchema(many=True))
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, lot_id: int) -> Any:
        """Every recall of a lot, newest first, lifted ones too."""
        return recalls.list_recalls(request_uow(), lot_id=lot_id)

    @blp.arguments(RecallInSchema)
    @blp.response(201, RecallSchema)
    @_recall_doc
    def post(self, args: dict[str, Any], lot_id: int) -> Any:
        """Recall a lot: no dose of it is issued, given or booked in the subtree until lifted."""
        return record_once(
            lambda uow: recalls.place_recall(
                uow,
                lot_id=lot_id,
                store_id=args.get("store_id"),
                reason=args["reason"],
                actor=current_actor(),
                now=utcnow(),
            ),
            RecallSchema,
            None,
        )


@blp.route("/lots/<int:lot_id>/recalls/lift")
class LotRecallLift(MethodView):
    @blp.arguments(RecallInSchema)
    @blp.response(200, RecallSchema)
    @_recall_doc
    def post(self, args: dict[str, Any], lot_id: int) -> Any:
        """Lift the recall of a lot in a subtree (or the network-wide one), with the reason."""
        return record_once(
            lambda uow: recalls.lift_recall(
                uow,
                lot_id=lot_id,
                store_id=args.get("store_id"),
                reason=args["reason"],
                actor=current_actor(),
                now=utcnow(),
            ),
            RecallSchema,
            None,
            status=200,
        )


def _without(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if k not in ("client_id", "occurred_at")}


# --- reads ---


@blp.route("/movements")
class Movements(MethodView):
    @blp.arguments(MovementQuerySchema, location="query")
    @blp.response(200, MovementSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List movements, newest first (page with before_id)."""
        uow = request_uow()
        return stock.list_movements(uow, **args)


@blp.route("/movements/<int:movement_id>")
class MovementItem(MethodView):
    @blp.response(200, MovementSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, movement_id: int) -> Any:
        """One movement with its ledger entries."""
        uow = request_uow()
        return stock.get_movement(uow, movement_id)


@blp.route("/balances")
class Balances(MethodView):
    @blp.arguments(BalanceQuerySchema, location="query")
    @blp.response(200, BalanceSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any]) -> Any:
        """Balance of one lot in one unit (constant time, however long the ledger)."""
        uow = request_uow()
        return stock.get_balance(uow, **args)


@blp.route("/shipments")
class Shipments(MethodView):
    @blp.arguments(ShipmentQuerySchema, location="query")
    @blp.response(200, ShipmentSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List shipments to or from a store (in transit until received)."""
        uow = request_uow()
        return stock.list_shipments(uow, **args)


@blp.route("/shipments/<int:shipment_id>")
class ShipmentItem(MethodView):
    @blp.response(200, ShipmentSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, shipment_id: int) -> Any:
        """One shipment with its lines."""
        uow = request_uow()
        return stock.get_shipment(uow, shipment_id)


@blp.route("/lots/<int:lot_id>/trace")
class LotTrace(MethodView):
    @blp.arguments(LotTraceQuerySchema, location="query")
    @blp.response(200, LotTraceSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any], lot_id: int) -> Any:
        """Where a lot's doses are now (store, unit, in transit) and the movements they took,
        oldest first, a page at a time (page on with after_entry_id).

        A reader whose roles cover part of the network sees the part of the trace in it.
        """
        uow = request_uow()
        found = trace.lot_trace(uow, lot_id, **args)
        return scope.lot_trace_within(found, scope.visible_store_ids(uow))


@blp.route("/stores/<int:store_id>/stock")
class StoreStock(MethodView):
    @blp.arguments(StoreStockQuerySchema, location="query")
    @blp.response(200, StoreStockSchema)
    @blp.alt_response(404, response="NOT_FOUND")
    def get(self, args: dict[str, Any], store_id: int) -> Any:
        """Stock of a store (or subtree) by product and lot, with days of stock when known."""
        config, uow = settings(), request_uow()
        return trace.store_stock(
            uow,
            store_id,
            now=utcnow(),
            window_days=args.get("window_days") or config.ledger_consumption_window_days,
            subtree=args["subtree"],
            site_timezone=config.site_timezone,
        )
