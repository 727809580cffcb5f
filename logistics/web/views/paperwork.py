"""The monthly paperwork (issue 19): a store's stock report, a unit's temperature log and its
sign-off. The figures come from the same services as the API (logistics.services.reports) and the
downloads are the same CSV and PDF documents (logistics.services.documents).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from flask import Response, get_flashed_messages, render_template, request, url_for
from flask_babel import gettext as _

from logistics.api.context import settings
from logistics.clock import local_date
from logistics.db import UnitOfWork
from logistics.domain import policy
from logistics.domain.errors import DomainError
from logistics.domain.reports import next_month, parse_month
from logistics.services import catalog, documents, reports
from logistics.web import access
from logistics.web.blueprint import web
from logistics.web.forms import Form, FormState, field_errors
from logistics.web.paperforms import done, record
from logistics.web.views.units import chart_data, visible_unit

# The month's chart: one point per hour (at most 744 a month, under the chart's 2,000 ceiling).
LOG_BUCKET_S = 3600


def _this_month() -> dt.date:
    return local_date(access.now(), settings().site_timezone).replace(day=1)


def _month() -> tuple[dt.date, str | None]:
    """The month asked for (YYYY-MM), else this month, with an error for a malformed one."""
    raw = (request.args.get("month") or request.form.get("month") or "").strip()
    if not raw:
        return _this_month(), None
    try:
        return parse_month(raw), None
    except DomainError as exc:
        return _this_month(), field_errors(exc).get("month") or exc.detail


def _asked_month() -> dt.date:
    """The month asked for, else this month; a malformed one is refused (the error page, 422)."""
    raw = (request.args.get("month") or "").strip()
    return parse_month(raw) if raw else _this_month()


def _months_around(month: dt.date) -> dict[str, str]:
    before = (month - dt.timedelta(days=1)).replace(day=1)
    return {"previous": f"{before:%Y-%m}", "next": f"{next_month(month):%Y-%m}"}


def _file(body: str | bytes, mimetype: str, name: str) -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- monthly stock report -----------------------------------------------------------------------


def _report_args() -> dict[str, Any]:
    form = Form(request.args)
    product_id = form.integer("product_id", required=False, maximum=2**31 - 1)
    return {"product_id": product_id, "subtree": request.args.get("subtree") == "1"}


def _stock_report(
    uow: UnitOfWork, store_id: int, month: dt.date, args: dict[str, Any]
) -> reports.StockReport:
    return reports.monthly_stock_report(
        uow,
        store_id=store_id,
        month=month,
        timezone=settings().site_timezone,
        now=access.now(),
        **args,
    )


@web.route("/stores/<int:store_id>/report")
def stock_report(store_id: int) -> Any:
    """A store's (or subtree's) monthly stock report per product, with CSV and PDF downloads."""
    month, error = _month()
    args = _report_args()
    with access.read_uow() as uow:
        store = access.visible_store(uow, store_id)
        document = None
        if error is None:
            try:
                document = reports.stock_report_document(_stock_report(uow, store_id, month, args))
            except DomainError as exc:
                error = f"{_(exc.title)}: {exc.detail}"
        query = {
            "month": f"{month:%Y-%m}",
            **({"product_id": args["product_id"]} if args["product_id"] else {}),
            **({"subtree": "1"} if args["subtree"] else {}),
        }
        body = render_template(
            "report.html",
            store=store,
            month=month,
            error=error,
            report=document,
            products=catalog.list_products(uow),
            args=args,
            query=query,
            months=_months_around(month),
        )
        return body, 422 if error else 200


@web.route("/stores/<int:store_id>/report.csv")
def stock_report_csv(store_id: int) -> Any:
    """The report as CSV (the API's document)."""
    month = _asked_month()
    with access.read_uow() as uow:
        access.visible_store(uow, store_id)
        report = _stock_report(uow, store_id, month, _report_args())
        return _file(
            documents.stock_report_csv(report),
            "text/csv",
            f"stock-{report.store.code}-{month:%Y-%m}.csv",
        )


@web.route("/stores/<int:store_id>/report.pdf")
def stock_report_pdf(store_id: int) -> Any:
    """The report as a printable PDF (the API's document)."""
    month = _asked_month()
    with access.read_uow() as uow:
        access.visible_store(uow, store_id)
        report = _stock_report(uow, store_id, month, _report_args())
        return _file(
            documents.stock_report_pdf(report),
            "application/pdf",
            f"stock-{report.store.code}-{month:%Y-%m}.pdf",
        )


# --- temperature log ----------------------------------------------------------------------------


def _log_page(unit_id: int, form: FormState | None = None, status: int = 200) -> Any:
    month, error = _month()
    with access.read_uow() as uow:
        unit = visible_unit(uow, unit_id)
        log, chart = None, None
        if error is None:
            try:
                log = reports.temperature_log(
                    uow, settings(), unit_id=unit_id, month=month, now=access.now()
                )
            except DomainError as exc:
                error, status = f"{_(exc.title)}: {exc.detail}", 409
        if log is not None:
            chart = chart_data(uow, unit, log.start, min(log.end, access.now()), LOG_BUCKET_S)
        body = render_template(
            "temperature_log.html",
            unit=unit,
            store=unit.store,
            month=month,
            log=log,
            chart=chart,
            error=error,
            months=_months_around(month),
            month_over=log is not None and log.end <= access.now(),
            may_sign=access.may(policy.Permission.ALERTS),
            form=form or FormState(),
            notices=get_flashed_messages(),
            ranges=None,
            mkt_url=None,
        )
        return body, status


@web.route("/units/<int:unit_id>/log")
def temperature_log(unit_id: int) -> Any:
    """A unit's month: chart, days, times outside, excursions and their reviews, MKT, sign-off."""
    return _log_page(unit_id)


def _log_file(unit_id: int, render: Callable[[Any], str | bytes], kind: str, ext: str) -> Any:
    """The month's log as a file (the API's document), for a unit the user may see."""
    month = _asked_month()
    with access.read_uow() as uow:
        visible_unit(uow, unit_id)
        log = reports.temperature_log(
            uow, settings(), unit_id=unit_id, month=month, now=access.now()
        )
        name = f"temperature-{log.store.code}-{log.unit.code}-{month:%Y-%m}.{ext}"
        return _file(render(log), kind, name)


@web.route("/units/<int:unit_id>/log.csv")
def temperature_log_csv(unit_id: int) -> Any:
    """The month's log as CSV (the API's document)."""
    return _log_file(unit_id, documents.temperature_log_csv, "text/csv", "csv")


@web.route("/units/<int:unit_id>/log.pdf")
def temperature_log_pdf(unit_id: int) -> Any:
    """The month's log as a printable PDF (the API's document)."""
    return _log_file(unit_id, documents.temperature_log_pdf, "application/pdf", "pdf")


@web.route("/units/<int:unit_id>/log/sign-off", methods=["POST"])
def sign_off(unit_id: int) -> Any:
    """The officer signs the unit's month off (the API's rule: alerts.write over its store)."""
    with access.read_uow() as uow:
        visible_unit(uow, unit_id)
    form = Form()
    month = form.text("month", required=True, max_length=7)
    comment = form.text("comment")
    form.client_id()
    if not form.errors:

        def action(uow: UnitOfWork) -> str:
            reports.sign_off_temperature_log(
                uow,
                unit_id=unit_id,
                month=parse_month(month or ""),
                actor=access.principal().username,
                comment=comment,
                timezone=settings().site_timezone,
                now=access.now(),
            )
            uow.commit()
            return _("The log of %(month)s is signed off.", month=month)

        message = record(
            form, "reports.TemperatureLogSignoff", {"unit_id": unit_id}, action, hidden=("month",)
        )
        if message:
            return done(message, url_for("web.temperature_log", unit_id=unit_id, month=month))
    if "month" in form.errors:
        form.errors["_form"] = form.errors.pop("month")
    return _log_page(unit_id, form.state(), 422)
