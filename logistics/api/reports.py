"""HTTP API: the monthly paperwork as JSON, CSV and PDF (issue 19).

- the monthly stock report of a store (or its subtree), per product;
- the monthly temperature log of a storage unit, and the officer's sign-off of it.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from urllib.parse import quote

import marshmallow as ma
from flask import Response
from flask.views import MethodView
from marshmallow import validate

from logistics.api.alerts import ExcursionSchema, ReviewSchema
from logistics.api.blueprint import Blueprint
from logistics.api.catalog import ident, request_uow, text
from logistics.api.context import current_actor, settings
from logistics.api.fields import MONTH_PATTERN
from logistics.domain.reports import parse_month
from logistics.services import documents, reports

blp = Blueprint(
    "reports", __name__, url_prefix="/api", description="Monthly stock reports, temperature logs"
)
BLUEPRINTS = [blp]

CSV_DOC = {"type": "string"}
PDF_DOC = {"type": "string", "format": "binary"}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


MONTH_ERROR = "a month is written YYYY-MM, e.g. 2026-05"


# The month in a temperature log's path: its pattern is published, as for the query's month, so
# a month the document allows is one parse_month takes (otherwise 422, as before).
def month_path() -> list[dict[str, Any]]:
    """The path's month parameter (a fresh copy per route: the spec plugin updates it)."""
    return [
        {
            "in": "path",
            "name": "month",
            "description": "A month YYYY-MM of the years 2000-2099",
            "schema": {"type": "string", "pattern": MONTH_PATTERN, "example": "2026-05"},
        }
    ]


def month_field(**kwargs: Any) -> ma.fields.String:
    """A month, written YYYY-MM, of the years 2000-2099 (the published pattern is the check)."""
    return ma.fields.String(
        validate=validate.Regexp(MONTH_PATTERN, error=MONTH_ERROR),
        metadata={"example": "2026-05"},
        **kwargs,
    )


def _file(body: str | bytes, mimetype: str, name: str) -> Response:
    response = Response(body, mimetype=mimetype)
    # The name carries store and unit codes, which may be any text: the header itself must stay
    # ASCII (else the server answers 400 in HTML), so the exact name goes in filename* (RFC 6266,
    # percent-encoded UTF-8) beside a plain ASCII fallback.
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    response.headers["Content-Disposition"] = (
        f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
    )
    return response


# --- monthly stock report -----------------------------------------------------------------------


class StockReportQuerySchema(ma.Schema):
    store_id = ident(strict=False, required=True)
    month = month_field(required=True)
    product_id = ident(strict=False, metadata={"description": "One product (default: all)"})
    subtree = ma.fields.Boolean(
        load_default=False, metadata={"description": "The store and every store below it"}
    )


class StockLineSchema(ma.Schema):
    store_id = ma.fields.Integer(allow_none=True, metadata={"description": "None in totals"})
    store_code = ma.fields.String(allow_none=True)
    store_name = ma.fields.String(allow_none=True)
    product_id = ma.fields.Integer(required=True)
    product_code = ma.fields.String(required=True)
    product_name = ma.fields.String(required=True)
    doses_per_vial = ma.fields.Integer(required=True)
    opening_doses = ma.fields.Integer(required=True)
    receipts_doses = ma.fields.Integer(required=True)
    issues_doses = ma.fields.Integer(required=True)
    consumption_doses = ma.fields.Integer(required=True)
    wastage_doses = ma.fields.Integer(required=True)
    wastage_by_reason = ma.fields.Dict(
        keys=ma.fields.String(), values=ma.fields.Integer(), required=True
    )
    adjustments_doses = ma.fields.Integer(
        required=True, metadata={"description": "Physical counts: found minus the ledger"}
    )
    transfers_doses = ma.fields.Integer(required=True)
    closing_doses = ma.fields.Integer(required=True)
    closing_vials = ma.fields.Float(required=True)
    held_after_excursions_doses = ma.fields.Integer(required=True)
    released_after_excursions_doses = ma.fields.Integer(required=True)
    discarded_after_excursions_doses = ma.fields.Integer(required=True)
    wastage_rate_pct = ma.fields.Float(
        allow_none=True, metadata={"description": "wasted / (given + wasted), open vials included"}
    )
    open_vial_wastage_doses = ma.fields.Integer(required=True)
    daily_consumption_doses = ma.fields.Float(allow_none=True)
    days_of_stock = ma.fields.Float(allow_none=True)


class StoreRefSchema(ma.Schema):
    id = ma.fields.Integer(required=True)
    code = ma.fields.String(required=True)
    name = ma.fields.String(required=True)


class StockReportSchema(ma.Schema):
    store = ma.fields.Nested(StoreRefSchema, required=True)
    month = ma.fields.String(required=True)
    subtree = ma.fields.Boolean(required=True)
    start = ma.fields.AwareDateTime(required=True)
    end = ma.fields.AwareDateTime(required=True)
    period_days = ma.fields.Float(required=True)
    generated_at = ma.fields.AwareDateTime(required=True)
    lines = ma.fields.List(ma.fields.Nested(StockLineSchema), required=True)
    totals = ma.fields.List(ma.fields.Nested(StockLineSchema), required=True)


def _stock_report(args: dict[str, Any]) -> reports.StockReport:
    return reports.monthly_stock_report(
        request_uow(),
        store_id=args["store_id"],
        month=parse_month(args["month"]),
        product_id=args.get("product_id"),
        subtree=args["subtree"],
        timezone=settings().site_timezone,
        now=_now(),
    )


def _stock_name(report: reports.StockReport, ext: str) -> str:
    return f"stock-{report.store.code}-{report.month:%Y-%m}.{ext}"


@blp.route("/reports/stock")
class StockReport(MethodView):
    @blp.arguments(StockReportQuerySchema, location="query")
    @blp.response(200, StockReportSchema)
    @blp.alt_response(404, description="Unknown store or product")
    @blp.alt_response(409, description="The month has not started")
    def get(self, args: dict[str, Any]) -> Any:
        """The month's stock report per product: opening, receipts, issues, given, wasted."""
        return reports.stock_report_document(_stock_report(args))


@blp.route("/reports/stock/csv")
class StockReportCsv(MethodView):
    @blp.arguments(StockReportQuerySchema, location="query")
    @blp.response(200, CSV_DOC, content_type="text/csv")
    @blp.alt_response(404, description="Unknown store or product")
    @blp.alt_response(409, description="The month has not started")
    def get(self, args: dict[str, Any]) -> Any:
        """The month's stock report as CSV: a row per store and product, then totals."""
        report = _stock_report(args)
        return _file(documents.stock_report_csv(report), "text/csv", _stock_name(report, "csv"))


@blp.route("/reports/stock/pdf")
class StockReportPdf(MethodView):
    @blp.arguments(StockReportQuerySchema, location="query")
    @blp.response(200, PDF_DOC, content_type="application/pdf")
    @blp.alt_response(404, description="Unknown store or product")
    @blp.alt_response(409, description="The month has not started")
    def get(self, args: dict[str, Any]) -> Any:
        """The month's stock report, printable (PDF, A4)."""
        report = _stock_report(args)
        return _file(
            documents.stock_report_pdf(report), "application/pdf", _stock_name(report, "pdf")
        )


# --- temperature log ----------------------------------------------------------------------------


class DaySchema(ma.Schema):
    day = ma.fields.Date(required=True)
    readings = ma.fields.Integer(required=True)
    min_temp_c = ma.fields.Float(allow_none=True)
    max_temp_c = ma.fields.Float(allow_none=True)
    minutes_outside = ma.fields.Float(required=True)


class OutsideSchema(ma.Schema):
    side = ma.fields.String(required=True, metadata={"enum": ["heat", "cold"]})
    start = ma.fields.AwareDateTime(required=True)
    end = ma.fields.AwareDateTime(required=True)
    minutes = ma.fields.Float(required=True)
    peak_temp_c = ma.fields.Float(required=True)


class LogExcursionSchema(ExcursionSchema):
    reviews = ma.fields.List(ma.fields.Nested(ReviewSchema), required=True)


class SignoffSchema(ma.Schema):
    unit_id = ma.fields.Integer(required=True)
    month = ma.fields.Function(lambda s: f"{s.month:%Y-%m}", metadata={"type": "string"})
    signed_by = ma.fields.String(required=True)
    signed_at = ma.fields.AwareDateTime(required=True)
    comment = ma.fields.String(allow_none=True)


class TemperatureLogSchema(ma.Schema):
    unit_id = ma.fields.Integer(required=True)
    unit_code = ma.fields.String(required=True)
    store_id = ma.fields.Integer(required=True)
    store_code = ma.fields.String(required=True)
    min_temp_c = ma.fields.Float(required=True)
    max_temp_c = ma.fields.Float(required=True)
    month = ma.fields.String(required=True)
    start = ma.fields.AwareDateTime(required=True)
    end = ma.fields.AwareDateTime(required=True)
    mkt_c = ma.fields.Float(allow_none=True, metadata={"description": "USP <1160>"})
    readings = ma.fields.Integer(required=True)
    days = ma.fields.List(ma.fields.Nested(DaySchema), required=True)
    outside = ma.fields.List(ma.fields.Nested(OutsideSchema), required=True)
    excursions = ma.fields.List(ma.fields.Nested(LogExcursionSchema), required=True)
    signoff = ma.fields.Nested(SignoffSchema, allow_none=True)
    generated_at = ma.fields.AwareDateTime(required=True)


EXCURSION_FIELDS = tuple(ExcursionSchema().fields)


class SignoffInSchema(ma.Schema):
    comment = text(2000, load_default=None)


def _log_document(log: reports.TemperatureLog) -> dict[str, Any]:
    return {
        "unit_id": log.unit.id,
        "unit_code": log.unit.code,
        "store_id": log.store.id,
        "store_code": log.store.code,
        "min_temp_c": log.unit.min_temp_c,
        "max_temp_c": log.unit.max_temp_c,
        "month": f"{log.month:%Y-%m}",
        "start": log.start,
        "end": log.end,
        "mkt_c": log.mkt.get("mkt_c"),
        "readings": log.mkt.get("readings", 0),
        "days": log.days,
        "outside": log.outside,
        "excursions": [
            {
                **{name: getattr(e.excursion, name) for name in EXCURSION_FIELDS},
                "reviews": e.reviews,
            }
            for e in log.excursions
        ],
        "signoff": log.signoff,
        "generated_at": log.generated_at,
    }


def _log(unit_id: int, month: str) -> reports.TemperatureLog:
    return reports.temperature_log(
        request_uow(), settings(), unit_id=unit_id, month=parse_month(month), now=_now()
    )


def _log_name(log: reports.TemperatureLog, ext: str) -> str:
    return f"temperature-{log.store.code}-{log.unit.code}-{log.month:%Y-%m}.{ext}"


@blp.route("/temperature-logs/<int:unit_id>/<string:month>", parameters=month_path())
class TemperatureLog(MethodView):
    @blp.response(200, TemperatureLogSchema)
    @blp.alt_response(404, description="Unknown unit")
    @blp.alt_response(409, description="The month has not started")
    @blp.alt_response(422, description="Not a month (YYYY-MM)")
    def get(self, unit_id: int, month: str) -> Any:
        """A unit's month: daily min/max, times outside, excursions and reviews, MKT, sign-off."""
        return _log_document(_log(unit_id, month))


@blp.route("/temperature-logs/<int:unit_id>/<string:month>/csv", parameters=month_path())
class TemperatureLogCsv(MethodView):
    @blp.response(200, CSV_DOC, content_type="text/csv")
    @blp.alt_response(404, description="Unknown unit")
    @blp.alt_response(409, description="The month has not started")
    @blp.alt_response(422, description="Not a month (YYYY-MM)")
    def get(self, unit_id: int, month: str) -> Any:
        """A unit's month as CSV: one row per day."""
        log = _log(unit_id, month)
        return _file(documents.temperature_log_csv(log), "text/csv", _log_name(log, "csv"))


@blp.route("/temperature-logs/<int:unit_id>/<string:month>/pdf", parameters=month_path())
class TemperatureLogPdf(MethodView):
    @blp.response(200, PDF_DOC, content_type="application/pdf")
    @blp.alt_response(404, description="Unknown unit")
    @blp.alt_response(409, description="The month has not started")
    @blp.alt_response(422, description="Not a month (YYYY-MM)")
    def get(self, unit_id: int, month: str) -> Any:
        """A unit's month, printable (PDF, A4)."""
        log = _log(unit_id, month)
        return _file(documents.temperature_log_pdf(log), "application/pdf", _log_name(log, "pdf"))


@blp.route("/temperature-logs/<int:unit_id>/<string:month>/sign-off", parameters=month_path())
class TemperatureLogSignoff(MethodView):
    # The body is optional: a sign-off without a comment sends none.
    @blp.arguments(SignoffInSchema, required=False)
    @blp.response(201, SignoffSchema)
    @blp.alt_response(404, description="Unknown unit")
    @blp.alt_response(409, description="Month not over, or already signed off")
    @blp.alt_response(422, description="Not a month (YYYY-MM)")
    def post(self, body: dict[str, Any], unit_id: int, month: str) -> Any:
        """The officer signs the unit's month off (once, after the month ends); audited."""
        uow = request_uow()
        result = reports.sign_off_temperature_log(
            uow,
            unit_id=unit_id,
            month=parse_month(month),
            actor=current_actor(),
            comment=body["comment"],
            timezone=settings().site_timezone,
            now=_now(),
        )
        uow.commit()
        return result
