"""HTTP API: vaccines in transit (issue 18): carriers, issues packed in carriers, a shipment's
trip with its alarms and holds, and a lot's whole journey (every stay and trip, MKT per leg).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from marshmallow import validate

from logistics.api import scope
from logistics.api.alerts import ExcursionSchema, RangeQuerySchema
from logistics.api.blueprint import Blueprint
from logistics.api.catalog import UnitOutSchema, doses_field, ident, request_uow, temperature, text
from logistics.api.context import current_actor, settings
from logistics.api.idempotency import HEADER_DOC, record_once
from logistics.api.problems import PROBLEM_JSON, ProblemSchema
from logistics.api.stock import IssueInSchema, recorded_by_caller
from logistics.domain.transit import CARRIER_KINDS
from logistics.services import journeys, transit

blp = Blueprint(
    "transit",
    __name__,
    url_prefix="/api",
    description="Vaccines in transit: carriers, trips, a lot's whole journey",
)
BLUEPRINTS = [blp]
PROBLEM = {"schema": ProblemSchema, "content_type": PROBLEM_JSON}


# --- schemas -------------------------------------------------------------------------------------


class CarrierInSchema(ma.Schema):
    store_id = ident(required=True, metadata={"description": "The store that owns the carrier"})
    code = text(64, required=True)
    kind = ma.fields.String(required=True, validate=validate.OneOf(CARRIER_KINDS))
    min_temp_c = temperature(load_default=2.0)
    max_temp_c = temperature(load_default=8.0, metadata={"description": "Above min_temp_c"})
    sensor_id = ma.fields.String(
        validate=validate.Regexp(r"^[A-Za-z0-9_.:-]{1,64}$"),
        metadata={"description": "Its logger, registered with the carrier (publishes over MQTT)"},
    )


class CarrierQuerySchema(ma.Schema):
    store_id = ident(strict=False)


class CarriedLotSchema(ma.Schema):
    lot_id = ident(required=True)
    doses = doses_field(required=True)


class NamedCarrierSchema(ma.Schema):
    unit_id = ident(required=True, metadata={"description": "A cold box or vaccine carrier"})
    lines = ma.fields.List(
        ma.fields.Nested(CarriedLotSchema),
        validate=validate.Length(max=200),
        metadata={"description": "What it carries; needed when several carriers are named"},
    )


def _carriers_field(**kwargs: Any) -> ma.fields.List:
    return ma.fields.List(
        ma.fields.Nested(NamedCarrierSchema), validate=validate.Length(1, 20), **kwargs
    )


class CarriedIssueInSchema(IssueInSchema):
    carriers = _carriers_field(required=True)


class ShipmentCarriersInSchema(ma.Schema):
    carriers = _carriers_field(required=True)


class TripLotSchema(ma.Schema):
    lot_id = ma.fields.Integer(required=True)
    doses = ma.fields.Integer(required=True)


class TripCarrierSchema(ma.Schema):
    unit_id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    kind = ma.fields.String(required=True)
    store_id = ma.fields.Integer(required=True)
    lots = ma.fields.List(ma.fields.Nested(TripLotSchema), required=True)
    mkt_c = ma.fields.Float(allow_none=True, metadata={"description": "MKT (USP <1160>)"})
    minutes_outside = ma.fields.Float(required=True)
    covered_min = ma.fields.Float(required=True)
    readings = ma.fields.Integer(required=True)
    excursions = ma.fields.List(ma.fields.Nested(ExcursionSchema), required=True)


class HoldLotSchema(ma.Schema):
    lot_id = ma.fields.Integer(required=True)
    lot_number = ma.fields.String(allow_none=True)
    unit_id = ma.fields.Integer(allow_none=True)
    doses_received = ma.fields.Integer(required=True)
    doses_held = ma.fields.Integer(required=True)
    doses_used_before_known = ma.fields.Integer(
        required=True, metadata={"description": "Used before the alarm was known: not reversed"}
    )
    review_id = ma.fields.Integer(allow_none=True)


class TripHoldSchema(ma.Schema):
    excursion_id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True)
    carrier_unit_id = ma.fields.Integer(required=True)
    started_at = ma.fields.AwareDateTime(required=True)
    triggered_at = ma.fields.AwareDateTime(required=True)
    after_receipt = ma.fields.Boolean(
        required=True, metadata={"description": "Its readings arrived after the receipt"}
    )
    applied_at = ma.fields.AwareDateTime(
        allow_none=True, metadata={"description": "When the receiver's reviews were opened"}
    )
    lots = ma.fields.List(ma.fields.Nested(HoldLotSchema), required=True)


class TripSchema(ma.Schema):
    shipment_id = ma.fields.Integer(required=True)
    from_store_id = ma.fields.Integer(required=True)
    to_store_id = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True)
    issued_at = ma.fields.AwareDateTime(required=True)
    received_at = ma.fields.AwareDateTime(allow_none=True)
    held = ma.fields.Boolean(required=True, metadata={"description": "A carrier's alarm held it"})
    carriers = ma.fields.List(ma.fields.Nested(TripCarrierSchema), required=True)
    holds = ma.fields.List(ma.fields.Nested(TripHoldSchema), required=True)


class TripCarrierRowSchema(ma.Schema):
    unit_id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    doses = ma.fields.Integer(required=True)


class LotTripSchema(ma.Schema):
    """One trip of a lot's doses in its trace: from where to where, when, in which carriers."""

    shipment_id = ma.fields.Integer(required=True)
    from_store_id = ma.fields.Integer(
        allow_none=True, metadata={"description": "None: a store outside the reader's"}
    )
    to_store_id = ma.fields.Integer(allow_none=True)
    status = ma.fields.String(required=True)
    issued_at = ma.fields.AwareDateTime(required=True)
    received_at = ma.fields.AwareDateTime(allow_none=True)
    doses = ma.fields.Integer(required=True)
    carriers = ma.fields.List(ma.fields.Nested(TripCarrierRowSchema), required=True)
    held = ma.fields.Boolean(required=True)


class CarriedMovementSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    client_id = ma.fields.String(required=True)
    kind = ma.fields.String(required=True)
    store_id = ma.fields.Integer(required=True)
    other_store_id = ma.fields.Integer(allow_none=True)
    shipment_id = ma.fields.Integer(allow_none=True)
    occurred_at = ma.fields.AwareDateTime(required=True)


class LegSchema(ma.Schema):
    kind = ma.fields.String(required=True, metadata={"enum": ["stay", "trip"]})
    from_ = ma.fields.AwareDateTime(required=True, data_key="from", attribute="from")
    to = ma.fields.AwareDateTime(required=True)
    unit_id = ma.fields.Integer(
        allow_none=True, metadata={"description": "None: a trip without a named carrier"}
    )
    unit_code = ma.fields.String(allow_none=True)
    unit_kind = ma.fields.String(allow_none=True)
    store_id = ma.fields.Integer(required=True)
    store_code = ma.fields.String()
    shipment_id = ma.fields.Integer()
    from_store_id = ma.fields.Integer(allow_none=True)
    from_store_code = ma.fields.String(allow_none=True)
    to_store_id = ma.fields.Integer(allow_none=True)
    to_store_code = ma.fields.String(allow_none=True)
    in_transit = ma.fields.Boolean()
    doses = ma.fields.Integer(metadata={"description": "Doses of the lot on this trip"})
    mkt_c = ma.fields.Float(allow_none=True)
    minutes_outside = ma.fields.Float(required=True)
    covered_min = ma.fields.Float(required=True)
    readings = ma.fields.Integer(required=True)
    excursions = ma.fields.List(ma.fields.Nested(ExcursionSchema), required=True)


class TotalsSchema(ma.Schema):
    mkt_c = ma.fields.Float(allow_none=True)
    minutes_outside = ma.fields.Float(required=True)
    covered_min = ma.fields.Float(required=True)
    unmonitored_min = ma.fields.Float(required=True)


class GapSchema(ma.Schema):
    from_ = ma.fields.AwareDateTime(required=True, data_key="from", attribute="from")
    to = ma.fields.AwareDateTime(required=True)


class JourneySchema(ma.Schema):
    lot_id = ma.fields.Integer(required=True)
    lot_number = ma.fields.String(required=True)
    start = ma.fields.AwareDateTime(required=True)
    end = ma.fields.AwareDateTime(required=True)
    min_temp_c = ma.fields.Float(required=True)
    max_temp_c = ma.fields.Float(required=True)
    legs = ma.fields.List(ma.fields.Nested(LegSchema), required=True)
    totals = ma.fields.Nested(TotalsSchema, required=True)
    trips = ma.fields.Nested(TotalsSchema, required=True, metadata={"description": "Trips only"})
    gaps = ma.fields.List(ma.fields.Nested(GapSchema), required=True)


# --- endpoints -----------------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@blp.route("/carriers")
class Carriers(MethodView):
    @blp.arguments(CarrierQuerySchema, location="query")
    @blp.response(200, UnitOutSchema(many=True))
    def get(self, args: dict[str, Any]) -> Any:
        """List carriers (cold boxes, vaccine carriers), optionally of one store."""
        return transit.list_carriers(request_uow(), **args)

    @blp.arguments(CarrierInSchema)
    @blp.response(201, UnitOutSchema)
    @blp.alt_response(404, description="Unknown store", **PROBLEM)
    @blp.alt_response(409, description="Code or logger already taken", **PROBLEM)
    def post(self, args: dict[str, Any]) -> Any:
        """Register a carrier with its safe range, its transport rules and, if named, its logger."""
        uow = request_uow()
        carrier = transit.register_carrier(
            uow, settings(), actor=current_actor(), now=_now(), **args
        )
        uow.commit()
        return carrier


@blp.route("/carried-issues")
class CarriedIssues(MethodView):
    @blp.arguments(CarriedIssueInSchema)
    @blp.response(201, CarriedMovementSchema)
    @blp.alt_response(404, description="Unknown store, lot or carrier", **PROBLEM)
    @blp.alt_response(409, description="Insufficient stock, or a reused key", **PROBLEM)
    @blp.doc(**HEADER_DOC)
    def post(self, args: dict[str, Any]) -> Any:
        """Issue doses to a child store packed in carriers: in them until the receipt."""
        carriers = args.pop("carriers")
        issue = {k: v for k, v in args.items() if k not in ("client_id", "occurred_at")}
        return record_once(
            lambda uow: journeys.issue_in_carriers(
                uow, carriers=carriers, issue=issue, rec=recorded_by_caller(dict(args))
            ),
            CarriedMovementSchema,
            args["client_id"],
        )


@blp.route("/shipments/<int:shipment_id>/carriers")
class ShipmentCarriers(MethodView):
    @blp.arguments(ShipmentCarriersInSchema)
    @blp.response(201, TripSchema)
    @blp.alt_response(404, description="Unknown shipment or carrier", **PROBLEM)
    @blp.alt_response(409, description="Already received, or carriers already named", **PROBLEM)
    @blp.doc(**HEADER_DOC)
    def post(self, args: dict[str, Any], shipment_id: int) -> Any:
        """Name the carriers of a shipment in transit (an issue recorded without them)."""

        def action(uow: Any) -> Any:
            transit.load_carriers(
                uow,
                shipment_id=shipment_id,
                carriers=args["carriers"],
                actor=current_actor(),
                now=_now(),
            )
            return transit.shipment_trip(uow, settings(), shipment_id=shipment_id)

        return record_once(action, TripSchema, None)


@blp.route("/shipments/<int:shipment_id>/trip")
class ShipmentTrip(MethodView):
    @blp.response(200, TripSchema)
    @blp.alt_response(404, description="Unknown shipment", **PROBLEM)
    def get(self, shipment_id: int) -> Any:
        """A shipment's trip: its carriers, their MKT and minutes outside, alarms and holds."""
        return transit.shipment_trip(request_uow(), settings(), shipment_id=shipment_id)


@blp.route("/lots/<int:lot_id>/journey")
class LotJourney(MethodView):
    @blp.arguments(RangeQuerySchema, location="query")
    @blp.response(200, JourneySchema)
    @blp.alt_response(404, description="Unknown lot", **PROBLEM)
    def get(self, args: dict[str, Any], lot_id: int) -> Any:
        """Every stay and trip of a lot, MKT and minutes outside per leg and for the journey.

        A reader whose roles cover part of the network sees the legs in it (a trip: when it
        left from or went to one of the reader's stores).
        """
        uow = request_uow()
        journey = journeys.lot_journey(uow, settings(), lot_id=lot_id, **args)
        return within(journey, scope.visible_store_ids(uow))


def within(journey: dict[str, Any], stores: set[int] | None) -> dict[str, Any]:
    """The journey cut to these stores' legs (None: unchanged); totals stay the lot's own."""
    if stores is None:
        return journey
    legs = [
        _ends_within(leg, stores)
        for leg in journey["legs"]
        if {leg["store_id"], leg.get("from_store_id"), leg.get("to_store_id")} & stores
    ]
    return {**journey, "legs": legs}


def _ends_within(leg: dict[str, Any], stores: set[int]) -> dict[str, Any]:
    """A trip's other end outside the reader's stores is not named (as in the lot's trace)."""
    if leg["kind"] != "trip":
        return leg
    out = dict(leg)
    for end in ("from_store", "to_store"):
        if out[f"{end}_id"] not in stores:
            out[f"{end}_id"], out[f"{end}_code"] = None, None
    return out
