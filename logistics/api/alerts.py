"""HTTP API: alerts, excursions, quarantine reviews, MKT and thermal history, temperature rules,
stock levels and notification targets.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask.views import MethodView
from marshmallow import validate

from logistics.api import scope
from logistics.api.blueprint import Blueprint
from logistics.api.catalog import ident, request_uow, text, when
from logistics.api.context import current_actor, settings
from logistics.api.idempotency import HEADER_DOC, record_once
from logistics.clock import utcnow
from logistics.domain.alerts import (
    EXCURSION_KINDS,
    EXPIRY_KINDS,
    OVERCOMMITTED,
    SENSOR_KINDS,
    STOCK_KINDS,
)
from logistics.domain.errors import NotFound
from logistics.domain.excursions import RuleSet
from logistics.domain.ids import MAX_BIG_ID, MAX_ID
from logistics.services import alerts as alert_service
from logistics.services import excursions as excursion_service
from logistics.services import notify as notify_service
from logistics.services import quarantine as quarantine_service
from logistics.services import temperature_rules as rules_service
from logistics.services import thermal as thermal_service
from logistics.services.lookup import store_path_of

blp = Blueprint(
    "alerts",
    __name__,
    url_prefix="/api",
    description="Alerts, excursions, quarantine reviews, MKT, temperature rules",
)
BLUEPRINTS = [blp]
ALERT_KINDS = (
    *EXCURSION_KINDS,
    *SENSOR_KINDS,
    *STOCK_KINDS,
    *EXPIRY_KINDS,
    OVERCOMMITTED,
)


def _known(value: int, what: str, limit: int = MAX_ID) -> int:
    """Answer 404 for an id no row can have (beyond the column's range) instead of a DB error."""
    if not 1 <= value <= limit:
        raise NotFound(f"{what} {value} does not exist")
    return value


# --- schemas -------------------------------------------------------------------------------------


class AlertEventSchema(ma.Schema):
    event = ma.fields.String(required=True)
    actor = ma.fields.String(required=True)
    comment = ma.fields.String(allow_none=True)
    escalation_level = ma.fields.Integer(required=True)
    at = ma.fields.AwareDateTime(required=True)


class AlertSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    kind = ma.fields.String(required=True)
    subject_type = ma.fields.String(required=True)
    subject_id = ma.fields.String(required=True)
    store_id = ma.fields.Integer(allow_none=True)
    severity = ma.fields.String(required=True)
    state = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    details = ma.fields.Dict(required=True)
    opened_at = ma.fields.AwareDateTime(required=True)
    acknowledged_at = ma.fields.AwareDateTime(allow_none=True)
    acknowledged_by = ma.fields.String(allow_none=True)
    acknowledge_comment = ma.fields.String(allow_none=True)
    resolved_at = ma.fields.AwareDateTime(allow_none=True)
    resolved_by = ma.fields.String(allow_none=True)
    resolve_comment = ma.fields.String(allow_none=True)
    escalation_level = ma.fields.Integer(required=True)
    last_notified_at = ma.fields.AwareDateTime(allow_none=True)


class AlertDetailSchema(AlertSchema):
    events = ma.fields.List(ma.fields.Nested(AlertEventSchema), required=True)


class PageArgs(ma.Schema):
    limit = ma.fields.Integer(load_default=100, validate=validate.Range(1, 500))
    offset = ma.fields.Integer(load_default=0, validate=validate.Range(0, 1_000_000))


class AlertQuerySchema(PageArgs):
    store_id = ident(strict=False, metadata={"description": "Alerts of this store and its subtree"})
    kind = text(32, metadata={"description": "e.g. " + ", ".join(ALERT_KINDS)})
    state = ma.fields.String(validate=validate.OneOf(("open", "acknowledged", "resolved")))
    severity = ma.fields.String(validate=validate.OneOf(("info", "warning", "alarm")))
    since = when(metadata={"description": "Opened at or after"})
    until = when(metadata={"description": "Opened before"})


class CommentSchema(ma.Schema):
    comment = text(2000, required=True)


class OptionalCommentSchema(ma.Schema):
    comment = text(2000, load_default=None)


class ExcursionSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    unit_id = ma.fields.Integer(required=True)
    store_id = ma.fields.Integer(required=True)
    sensor_id = ma.fields.String(
        allow_none=True, metadata={"description": "The logger whose readings showed it"}
    )
    kind = ma.fields.String(required=True)
    started_at = ma.fields.AwareDateTime(required=True)
    triggered_at = ma.fields.AwareDateTime(required=True)
    ended_at = ma.fields.AwareDateTime(allow_none=True)
    peak_temp_c = ma.fields.Float(required=True)
    minutes_outside = ma.fields.Float(required=True)
    thresholds = ma.fields.Dict(required=True)
    lots = ma.fields.List(ma.fields.Dict(), required=True)


class ExcursionQuerySchema(PageArgs):
    store_id = ident(strict=False)
    unit_id = ident(strict=False)
    kind = ma.fields.String(
        validate=validate.OneOf(("heat_warning", "heat_alarm", "cold_warning", "cold_alarm"))
    )
    open = ma.fields.Boolean(load_default=False)
    since = when()
    until = when()


class ReviewSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    excursion_id = ma.fields.Integer(required=True)
    unit_id = ma.fields.Integer(required=True)
    store_id = ma.fields.Integer(required=True)
    lot_id = ma.fields.Integer(required=True)
    doses = ma.fields.Integer(required=True)
    reason = ma.fields.String(required=True)
    proposed_decision = ma.fields.String(required=True)
    state = ma.fields.String(required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    decided_at = ma.fields.AwareDateTime(allow_none=True)
    decided_by = ma.fields.String(allow_none=True)
    comment = ma.fields.String(allow_none=True)


class ReviewQuerySchema(PageArgs):
    store_id = ident(strict=False)
    state = ma.fields.String(validate=validate.OneOf(("pending", "released", "discarded")))


class RangeQuerySchema(ma.Schema):
    start = when(required=True)
    end = when(required=True, metadata={"description": "After start, at most 400 days after it"})


class MktSchema(ma.Schema):
    unit_id = ma.fields.Integer(required=True)
    start = ma.fields.AwareDateTime(required=True)
    end = ma.fields.AwareDateTime(required=True)
    mkt_c = ma.fields.Float(
        allow_none=True, metadata={"description": "Mean kinetic temperature (USP <1160>)"}
    )
    readings = ma.fields.Integer(required=True)
    covered_min = ma.fields.Float(
        required=True, metadata={"description": "Minutes the readings stand for"}
    )
    range_min = ma.fields.Float(required=True)


class StaySchema(ma.Schema):
    unit_id = ma.fields.Integer(required=True)
    unit_code = ma.fields.String(required=True)
    store_id = ma.fields.Integer(required=True)
    from_ = ma.fields.AwareDateTime(required=True, data_key="from", attribute="from")
    to = ma.fields.AwareDateTime(required=True)
    mkt_c = ma.fields.Float(allow_none=True)
    excursions = ma.fields.List(ma.fields.Nested(ExcursionSchema), required=True)


class ThermalHistorySchema(ma.Schema):
    lot_id = ma.fields.Integer(required=True)
    lot_number = ma.fields.String(required=True)
    start = ma.fields.AwareDateTime(required=True)
    end = ma.fields.AwareDateTime(required=True)
    mkt_c = ma.fields.Float(allow_none=True)
    stays = ma.fields.List(ma.fields.Nested(StaySchema), required=True)


class RuleSchema(ma.Schema):
    side = ma.fields.String(required=True, validate=validate.OneOf(("heat", "cold")))
    level = ma.fields.String(required=True, validate=validate.OneOf(("warning", "alarm")))
    limit_c = ma.fields.Float(required=True, validate=validate.Range(-90, 60))
    mode = ma.fields.String(required=True, validate=validate.OneOf(("consecutive", "cumulative")))
    duration_min = ma.fields.Integer(
        strict=True, required=True, validate=validate.Range(1, 60 * 24 * 30)
    )
    window_min = ma.fields.Integer(
        strict=True,
        load_default=None,
        allow_none=True,
        validate=validate.Range(1, 60 * 24 * 90),
        metadata={"description": "A cumulative rule's window: at least its duration_min"},
    )


class RuleSetSchema(ma.Schema):
    min_temp_c = ma.fields.Float(required=True, validate=validate.Range(-90, 60))
    max_temp_c = ma.fields.Float(
        required=True,
        validate=validate.Range(-90, 60),
        metadata={"description": "Above min_temp_c"},
    )
    rules = ma.fields.List(
        ma.fields.Nested(RuleSchema),
        required=True,
        validate=validate.Length(1, 4),
        metadata={"description": "At most one rule per side and level"},
    )


class RuleOutSchema(RuleSchema):
    # A unit's own range (-100..100) may lie beyond what a rule may be set to: no range here.
    limit_c = ma.fields.Float(required=True)


class RuleSetOutSchema(RuleSetSchema):
    min_temp_c = ma.fields.Float(required=True)
    max_temp_c = ma.fields.Float(required=True)
    rules = ma.fields.List(ma.fields.Nested(RuleOutSchema), required=True)
    source = ma.fields.String(
        required=True, metadata={"description": "unit, product, products or defaults"}
    )


class StockLevelSchema(ma.Schema):
    store_id = ident(required=True)
    product_id = ident(required=True)
    basis = ma.fields.String(load_default="doses", validate=validate.OneOf(("doses", "days")))
    min_value = ma.fields.Float(required=True, validate=validate.Range(0, 1e9))
    max_value = ma.fields.Float(
        required=True,
        validate=validate.Range(0, 1e9),
        metadata={"description": "Above min_value"},
    )
    daily_consumption_doses = ma.fields.Float(
        load_default=None,
        allow_none=True,
        validate=validate.Range(0, 1e9),
        metadata={"description": "Needed, above 0, when basis is days"},
    )


class TargetInSchema(ma.Schema):
    store_id = ident(required=True)
    channel = ma.fields.String(required=True, validate=validate.OneOf(("webhook", "email")))
    address = text(
        500,
        required=True,
        metadata={
            "description": "A webhook: an http:// or https:// URL whose host resolves, and only "
            "to public addresses (checked again before each delivery)"
        },
    )
    secret = text(
        200,
        load_default=None,
        load_only=True,
        metadata={"description": "Signs a webhook's deliveries: needed for a webhook"},
    )
    min_severity = ma.fields.String(
        load_default="warning", validate=validate.OneOf(("info", "warning", "alarm"))
    )


class TargetOutSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    store_id = ma.fields.Integer(required=True)
    channel = ma.fields.String(required=True)
    address = ma.fields.String(required=True)
    min_severity = ma.fields.String(required=True)
    active = ma.fields.Boolean(required=True)


def _rules_out(rules: RuleSet, source: str) -> dict[str, Any]:
    snap = rules.snapshot()
    return {
        "min_temp_c": snap["min_temp_c"],
        "max_temp_c": snap["max_temp_c"],
        "source": source,
        "rules": [
            {
                **r,
                "duration_min": int(r["duration_min"]),
                "window_min": int(r["window_min"]) if r["window_min"] else None,
            }
            for r in snap["rules"]
        ],
    }


# --- alerts ------------------------------------------------------------------------------------


@blp.route("/alerts")
class Alerts(MethodView):
    @blp.arguments(AlertQuerySchema, location="query")
    @blp.response(200, AlertSchema(many=True))
    @blp.alt_response(404, description="Unknown store")
    def get(self, args: dict[str, Any]) -> Any:
        """List alerts of a store's subtree, by kind, state, severity and time, newest first."""
        return alert_service.list_alerts(request_uow(), alert_service.AlertFilter(**args))


@blp.route("/alerts/<int:alert_id>")
class AlertItem(MethodView):
    @blp.response(200, AlertDetailSchema)
    @blp.alt_response(404, description="Unknown alert")
    def get(self, alert_id: int) -> Any:
        """One alert with its history (opened, reminded, escalated, acknowledged, resolved)."""
        return alert_service.get_alert(request_uow(), _known(alert_id, "alert", MAX_BIG_ID))


@blp.route("/alerts/<int:alert_id>/acknowledge")
class AlertAcknowledge(MethodView):
    @blp.arguments(CommentSchema)
    @blp.response(200, AlertDetailSchema)
    @blp.alt_response(404, description="Unknown alert")
    @blp.alt_response(409, description="Not open")
    def post(self, body: dict[str, Any], alert_id: int) -> Any:
        """Acknowledge an open alert (who and a comment are recorded); reminders stop."""
        uow = request_uow()
        result = alert_service.acknowledge_alert(
            uow,
            alert_id=_known(alert_id, "alert", MAX_BIG_ID),
            comment=body["comment"],
            actor=current_actor(),
            now=utcnow(),
        )
        uow.commit()
        return result


@blp.route("/alerts/<int:alert_id>/resolve")
class AlertResolve(MethodView):
    @blp.arguments(CommentSchema)
    @blp.response(200, AlertDetailSchema)
    @blp.alt_response(404, description="Unknown alert")
    @blp.alt_response(409, description="Already resolved")
    def post(self, body: dict[str, Any], alert_id: int) -> Any:
        """Resolve an alert by hand, with a comment."""
        uow = request_uow()
        result = alert_service.resolve_alert(
            uow,
            alert_id=_known(alert_id, "alert", MAX_BIG_ID),
            comment=body["comment"],
            actor=current_actor(),
            now=utcnow(),
        )
        uow.commit()
        return result


# --- excursions, reviews, MKT --------------------------------------------------------------------


@blp.route("/excursions")
class Excursions(MethodView):
    @blp.arguments(ExcursionQuerySchema, location="query")
    @blp.response(200, ExcursionSchema(many=True))
    @blp.alt_response(404, description="Unknown store")
    def get(self, args: dict[str, Any]) -> Any:
        """Excursions of a store's subtree or of one unit, newest first."""
        uow = request_uow()
        return excursion_service.list_excursions(
            uow,
            store_path=store_path_of(uow, args.get("store_id")),
            unit_id=args.get("unit_id"),
            kind=args.get("kind"),
            open_only=args["open"],
            since=args.get("since"),
            until=args.get("until"),
            limit=args["limit"],
            offset=args["offset"],
        )


@blp.route("/quarantine-reviews")
class Reviews(MethodView):
    @blp.arguments(ReviewQuerySchema, location="query")
    @blp.response(200, ReviewSchema(many=True))
    @blp.alt_response(404, description="Unknown store")
    def get(self, args: dict[str, Any]) -> Any:
        """Lots held after a temperature alarm, with the proposed decision."""
        uow = request_uow()
        return quarantine_service.list_reviews(
            uow,
            store_path=store_path_of(uow, args.get("store_id")),
            state=args.get("state"),
            limit=args["limit"],
            offset=args["offset"],
        )


@blp.route("/quarantine-reviews/<int:review_id>/release")
class ReviewRelease(MethodView):
    @blp.arguments(CommentSchema)
    @blp.response(200, ReviewSchema)
    @blp.alt_response(404, description="Unknown review")
    @blp.alt_response(409, description="Already decided")
    @blp.doc(**HEADER_DOC)
    def post(self, body: dict[str, Any], review_id: int) -> Any:
        """Release the held doses of a lot (a comment says why they are usable)."""
        review_id = _known(review_id, "review", MAX_BIG_ID)
        return record_once(
            lambda uow: quarantine_service.release_review(
                uow,
                review_id=review_id,
                comment=body["comment"],
                actor=current_actor(),
                now=utcnow(),
            ),
            ReviewSchema,
            None,
            status=200,
        )


@blp.route("/quarantine-reviews/<int:review_id>/discard")
class ReviewDiscard(MethodView):
    @blp.arguments(OptionalCommentSchema)
    @blp.response(200, ReviewSchema)
    @blp.alt_response(404, description="Unknown review")
    @blp.alt_response(409, description="Already decided")
    @blp.doc(**HEADER_DOC)
    def post(self, body: dict[str, Any], review_id: int) -> Any:
        """Discard the held doses: recorded as wastage (heat_exposure or frozen) in the ledger."""
        review_id = _known(review_id, "review", MAX_BIG_ID)
        return record_once(
            lambda uow: quarantine_service.discard_review(
                uow,
                review_id=review_id,
                comment=body["comment"],
                actor=current_actor(),
                now=utcnow(),
            ),
            ReviewSchema,
            None,
            status=200,
        )


@blp.route("/units/<int:unit_id>/mkt")
class UnitMkt(MethodView):
    @blp.arguments(RangeQuerySchema, location="query")
    @blp.response(200, MktSchema)
    @blp.alt_response(404, description="Unknown unit")
    def get(self, args: dict[str, Any], unit_id: int) -> Any:
        """Mean kinetic temperature of a unit over a time range."""
        return thermal_service.unit_mkt(
            request_uow(), settings(), unit_id=_known(unit_id, "unit"), **args
        )


@blp.route("/lots/<int:lot_id>/thermal-history")
class LotThermalHistory(MethodView):
    @blp.arguments(RangeQuerySchema, location="query")
    @blp.response(200, ThermalHistorySchema)
    @blp.alt_response(404, description="Unknown lot")
    def get(self, args: dict[str, Any], lot_id: int) -> Any:
        """Every unit and store the lot sat in, the excursions it sat through, and its MKT.

        A reader whose roles cover part of the network sees the stays in it (and the lot's MKT).
        """
        uow = request_uow()
        history = thermal_service.lot_thermal_history(
            uow, settings(), lot_id=_known(lot_id, "lot"), **args
        )
        return scope.thermal_history_within(history, scope.visible_store_ids(uow))


# --- rules, levels, targets ---------------------------------------------------------------


def _rule_inputs(body: dict[str, Any]) -> list[rules_service.RuleInput]:
    return [rules_service.RuleInput(**rule) for rule in body["rules"]]


@blp.route("/temperature-rules/products/<int:product_id>")
class ProductRules(MethodView):
    @blp.response(200, RuleSetOutSchema)
    @blp.alt_response(404, description="Unknown product")
    def get(self, product_id: int) -> Any:
        """A product's temperature rules (its own, or the 30-DTR/Logistimo defaults)."""
        return _rules_out(
            *rules_service.rules_of_product(
                request_uow(), settings(), _known(product_id, "product")
            )
        )

    @blp.arguments(RuleSetSchema)
    @blp.response(200, RuleSetOutSchema)
    @blp.alt_response(404, description="Unknown product")
    def put(self, body: dict[str, Any], product_id: int) -> Any:
        """Replace a product's temperature rules."""
        uow = request_uow()
        rules_service.set_rules(
            uow,
            product_id=_known(product_id, "product"),
            min_temp_c=body["min_temp_c"],
            max_temp_c=body["max_temp_c"],
            rules=_rule_inputs(body),
            actor=current_actor(),
            now=utcnow(),
        )
        uow.commit()
        return _rules_out(*rules_service.rules_of_product(uow, settings(), product_id))


@blp.route("/temperature-rules/units/<int:unit_id>")
class UnitRules(MethodView):
    @blp.response(200, RuleSetOutSchema)
    @blp.alt_response(404, description="Unknown unit")
    def get(self, unit_id: int) -> Any:
        """The rules in force for a unit: override, else its products' strictest, else defaults."""
        return _rules_out(
            *rules_service.rules_of_unit(request_uow(), settings(), _known(unit_id, "unit"))
        )

    @blp.arguments(RuleSetSchema)
    @blp.response(200, RuleSetOutSchema)
    @blp.alt_response(404, description="Unknown unit")
    def put(self, body: dict[str, Any], unit_id: int) -> Any:
        """Override the rules of one unit."""
        uow = request_uow()
        rules_service.set_rules(
            uow,
            unit_id=_known(unit_id, "unit"),
            min_temp_c=body["min_temp_c"],
            max_temp_c=body["max_temp_c"],
            rules=_rule_inputs(body),
            actor=current_actor(),
            now=utcnow(),
        )
        uow.commit()
        return _rules_out(*rules_service.rules_of_unit(uow, settings(), unit_id))

    @blp.response(204)
    @blp.alt_response(404, description="No override")
    def delete(self, unit_id: int) -> None:
        """Drop a unit's override."""
        uow = request_uow()
        rules_service.delete_unit_rules(uow, unit_id=_known(unit_id, "unit"))
        uow.commit()


@blp.route("/stock-levels")
class StockLevels(MethodView):
    @blp.arguments(StockLevelSchema)
    @blp.response(200, StockLevelSchema)
    @blp.alt_response(404, description="Unknown store or product")
    def put(self, body: dict[str, Any]) -> Any:
        """Set a store's minimum and maximum of a product (doses or days of stock)."""
        uow = request_uow()
        result = alert_service.set_stock_level(uow, now=utcnow(), **body)
        uow.commit()
        return result


@blp.route("/notification-targets")
class Targets(MethodView):
    @blp.arguments(TargetInSchema)
    @blp.response(201, TargetOutSchema)
    @blp.alt_response(404, description="Unknown store")
    @blp.alt_response(409, description="Already registered")
    def post(self, body: dict[str, Any]) -> Any:
        """Register a webhook (signed with its secret) or an e-mail address for a store."""
        uow = request_uow()
        result = notify_service.add_target(
            uow, **body, allowed_networks=settings().notify_allowed_networks
        )
        uow.commit()
        return result
