"""HTTP API: sessions, slots, bookings, end-of-session reports, the planner's views and the
public availability in the shape of CoWIN's public API."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from flask import Response, after_this_request, current_app, request
from flask.views import MethodView

from logistics.api.blueprint import Blueprint
from logistics.api.context import current_actor, new_uow, runtime, settings
from logistics.api.idempotency import HEADER_DOC, record_once
from logistics.clock import local_date, utcnow
from logistics.db import UnitOfWork, is_unavailable
from logistics.domain.ids import MAX_ID
from logistics.domain.slots import DOSE_NUMBERS
from logistics.services import availability as avail
from logistics.services import sessions as svc

blp = Blueprint(
    "sessions",
    __name__,
    url_prefix="/api",
    description="Vaccination sessions, slots, bookings and end-of-session reports",
)
public = Blueprint(
    "availability",
    __name__,
    url_prefix="/api/v2/appointment/sessions/public",
    description="Public availability, shaped like CoWIN's public API (no login)",
)
BLUEPRINTS = [blp, public]

# What marshmallow's Time accepts: H:M[:S[.fraction]], no zone (OpenAPI's "time" format has one).
TIME_PATTERN = r"^(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?$"


def _request_uow() -> UnitOfWork:
    """A unit of work kept open until the response is serialised (loaded rows stay readable)."""
    uow = new_uow().__enter__()

    @after_this_request
    def _close(response: Response) -> Response:
        uow.__exit__(None, None, None)
        return response

    return uow


def _site() -> dict[str, Any]:
    return {"site_timezone": settings().site_timezone}


def _today() -> dt.date:
    return local_date(utcnow(), settings().site_timezone)


# --- schemas -----------------------------------------------------------------------------------


def _id(**kwargs: Any) -> ma.fields.Integer:
    """An id of a row: the database's 32-bit integer keys."""
    return ma.fields.Integer(validate=ma.validate.Range(1, MAX_ID), **kwargs)


class WindowSchema(ma.Schema):
    start = ma.fields.Time(required=True, metadata={"example": "09:00", "pattern": TIME_PATTERN})
    end = ma.fields.Time(required=True, metadata={"example": "11:00", "pattern": TIME_PATTERN})


class SessionOpenSchema(ma.Schema):
    store_id = _id(strict=True, required=True, metadata={"description": "The centre"})
    product_id = _id(strict=True, required=True)
    session_date = ma.fields.Date(required=True)
    capacity = ma.fields.Integer(
        strict=True,
        required=True,
        validate=ma.validate.Range(1, 100000),
        metadata={"description": "Doses (seats) of the session"},
    )
    dose_number = ma.fields.String(required=True, validate=ma.validate.OneOf(DOSE_NUMBERS))
    min_age = ma.fields.Integer(strict=True, load_default=18, validate=ma.validate.Range(0, 150))
    slots = ma.fields.List(
        ma.fields.Nested(WindowSchema),
        load_default=list,
        validate=ma.validate.Length(max=48),
        metadata={"description": "Time windows; default: the configured slots"},
    )


class SlotSchema(ma.Schema):
    id = ma.fields.Integer()
    starts_at = ma.fields.Time()
    ends_at = ma.fields.Time()
    capacity = ma.fields.Integer()
    booked = ma.fields.Integer()


class SessionSchema(ma.Schema):
    id = ma.fields.Integer()
    store_id = ma.fields.Integer()
    district_id = ma.fields.Integer()
    product_id = ma.fields.Integer()
    session_date = ma.fields.Date()
    capacity = ma.fields.Integer()
    dose_number = ma.fields.String()
    min_age = ma.fields.Integer()
    status = ma.fields.String()
    shortfall_doses = ma.fields.Integer(metadata={"description": "Doses stock no longer covers"})
    slots = ma.fields.List(ma.fields.Nested(SlotSchema))


class SessionQuerySchema(ma.Schema):
    store_id = _id(required=True)
    date = ma.fields.Date(load_default=None)


class ResizeSchema(ma.Schema):
    capacity = ma.fields.Integer(strict=True, required=True, validate=ma.validate.Range(1, 100000))


class BookingCreateSchema(ma.Schema):
    slot_id = _id(strict=True, required=True)
    beneficiary = ma.fields.String(
        required=True,
        validate=[ma.validate.Length(1, 64), ma.validate.Regexp(r"^[^\x00-\x1f]+$")],
        metadata={"description": "Reference of the person booked"},
    )


class BookingSchema(ma.Schema):
    id = ma.fields.Integer()
    session_id = ma.fields.Integer()
    slot_id = ma.fields.Integer()
    beneficiary = ma.fields.String()
    status = ma.fields.String()
    booked_at = ma.fields.DateTime()
    cancelled_at = ma.fields.DateTime(allow_none=True)


class ReportCreateSchema(ma.Schema):
    doses_given = ma.fields.Integer(
        strict=True, required=True, validate=ma.validate.Range(0, 1_000_000)
    )
    vials_opened = ma.fields.Integer(
        strict=True, required=True, validate=ma.validate.Range(0, 100_000)
    )


class ReportSchema(ma.Schema):
    session_id = ma.fields.Integer()
    doses_given = ma.fields.Integer()
    vials_opened = ma.fields.Integer()
    wasted_doses = ma.fields.Integer(metadata={"description": "Open-vial wastage, into the ledger"})
    reported_at = ma.fields.DateTime()


class UsableQuerySchema(ma.Schema):
    product_id = _id(required=True)
    date = ma.fields.Date(required=True)


class UsabilitySchema(ma.Schema):
    store_id = ma.fields.Integer()
    product_id = ma.fields.Integer()
    on_date = ma.fields.Date()
    doses_per_vial = ma.fields.Integer()
    usable_doses = ma.fields.Integer()
    in_transit_doses = ma.fields.Integer()
    promised_doses = ma.fields.Integer()
    promised_later_doses = ma.fields.Integer()
    available_doses = ma.fields.Integer()
    suggested_capacity = ma.fields.Integer()


class PlannerQuerySchema(ma.Schema):
    date = ma.fields.Date(load_default=None)


class PlannerRowSchema(ma.Schema):
    centre_id = ma.fields.Integer()
    centre_name = ma.fields.String()
    product_id = ma.fields.Integer()
    product_code = ma.fields.String()
    doses_per_vial = ma.fields.Integer()
    usable_doses = ma.fields.Integer()
    in_transit_doses = ma.fields.Integer()
    promised_doses = ma.fields.Integer()
    open_capacity = ma.fields.Integer()
    available_doses = ma.fields.Integer()
    daily_doses = ma.fields.Float()
    days_of_stock = ma.fields.Float(allow_none=True)


# Exactly the dates DD-MM-YYYY of 2000-2099 that exist (29-02 in leap years only): the OpenAPI
# document says what validation accepts (issue 12).
COWIN_DATE_PATTERN = (
    r"^(?:(?:(?:0[1-9]|1[0-9]|2[0-8])-(?:0[1-9]|1[0-2])|(?:29|30)-(?:0[13-9]|1[0-2])"
    r"|31-(?:0[13578]|1[02]))-20[0-9]{2}|29-02-20(?:0[048]|[2468][048]|[13579][26]))$"
)


class CowinDate(ma.fields.Date):
    """A date written DD-MM-YYYY, as CoWIN's public API takes it (2000-2099)."""

    def __init__(self, **kwargs: Any):
        metadata = {"pattern": COWIN_DATE_PATTERN, **kwargs.pop("metadata", {})}
        super().__init__(
            format=avail.COWIN_DATE,
            validate=ma.validate.Range(dt.date(2000, 1, 1), dt.date(2099, 12, 31)),
            metadata=metadata,
            **kwargs,
        )


class DistrictQuerySchema(ma.Schema):
    district_id = _id(required=True)
    date = CowinDate(required=True, metadata={"example": "31-03-2021"})


class CentreQuerySchema(ma.Schema):
    center_id = _id(required=True)
    date = CowinDate(required=True, metadata={"example": "31-03-2021"})


class PublicSlotSchema(ma.Schema):
    slot_id = ma.fields.Integer()
    time = ma.fields.String(metadata={"example": "09:00-11:00"})
    seats = ma.fields.Integer()


class PublicSessionSchema(ma.Schema):
    center_id = ma.fields.Integer()
    name = ma.fields.String()
    district_id = ma.fields.Integer()
    session_id = ma.fields.Integer()
    date = ma.fields.String(metadata={"example": "31-03-2021"})
    available_capacity = ma.fields.Integer()
    available_capacity_dose1 = ma.fields.Integer()
    available_capacity_dose2 = ma.fields.Integer()
    available_capacity_precaution = ma.fields.Integer()
    min_age_limit = ma.fields.Integer()
    vaccine = ma.fields.String()
    slots = ma.fields.List(ma.fields.Nested(PublicSlotSchema))


class PublicSessionsSchema(ma.Schema):
    sessions = ma.fields.List(ma.fields.Nested(PublicSessionSchema))
    copy_age_s = ma.fields.Integer(
        metadata={
            "description": "Only while the database cannot be reached: this is the last good "
            "answer, confirmed this many seconds ago (also in the Age header)"
        }
    )


# --- sessions ----------------------------------------------------------------------------------


@blp.route("/sessions")
class Sessions(MethodView):
    @blp.arguments(SessionQuerySchema, location="query")
    @blp.response(200, SessionSchema(many=True))
    def get(self, query: dict[str, Any]) -> list[Any]:
        """List a centre's sessions (of one date if given)."""
        uow = _request_uow()
        return svc.list_sessions(uow, store_id=query["store_id"], on_date=query["date"])

    @blp.arguments(SessionOpenSchema)
    @blp.response(201, SessionSchema)
    @blp.doc(**HEADER_DOC)
    def post(self, body: dict[str, Any]) -> Any:
        """Open a session; refused (409) beyond the doses the centre can still promise."""
        conf = settings()
        windows = tuple((w["start"], w["end"]) for w in body.pop("slots"))
        req = svc.SessionRequest(**body, windows=windows)
        return record_once(
            lambda uow: svc.open_session(
                uow,
                req,
                actor=current_actor(),
                now=utcnow(),
                **_site(),
                day_start=dt.time.fromisoformat(conf.sessions_day_start),
                slot_minutes=conf.sessions_slot_minutes,
                slot_count=conf.sessions_slot_count,
            ),
            SessionSchema,
            None,
        )


@blp.route("/sessions/<int:session_id>")
class SessionItem(MethodView):
    @blp.response(200, SessionSchema)
    def get(self, session_id: int) -> Any:
        """One session with its slots."""
        uow = _request_uow()
        return svc.get_session(uow, session_id)

    @blp.arguments(ResizeSchema)
    @blp.response(200, SessionSchema)
    @blp.doc(**HEADER_DOC)
    def patch(self, body: dict[str, Any], session_id: int) -> Any:
        """Change a session's capacity (enlarging is checked against stock)."""
        return record_once(
            lambda uow: svc.resize_session(
                uow,
                session_id=session_id,
                capacity=body["capacity"],
                actor=current_actor(),
                now=utcnow(),
                **_site(),
            ),
            SessionSchema,
            None,
            status=200,
        )


@blp.route("/sessions/<int:session_id>/cancel")
class SessionCancel(MethodView):
    @blp.response(200, SessionSchema)
    @blp.doc(**HEADER_DOC)
    def post(self, session_id: int) -> Any:
        """Cancel a session and its bookings; its doses are no longer promised."""
        return record_once(
            lambda uow: svc.cancel_session(
                uow, session_id=session_id, actor=current_actor(), now=utcnow(), **_site()
            ),
            SessionSchema,
            None,
            status=200,
        )


@blp.route("/sessions/<int:session_id>/bookings")
class SessionBookings(MethodView):
    @blp.arguments(BookingCreateSchema)
    @blp.response(201, BookingSchema)
    @blp.doc(**HEADER_DOC)
    def post(self, body: dict[str, Any], session_id: int) -> Any:
        """Book a seat in a slot (409 when the slot is full)."""
        return record_once(
            lambda uow: svc.book_slot(
                uow,
                session_id=session_id,
                slot_id=body["slot_id"],
                beneficiary=body["beneficiary"],
                actor=current_actor(),
                now=utcnow(),
                **_site(),
            ),
            BookingSchema,
            None,
        )


@blp.route("/bookings/<int:booking_id>/cancel")
class BookingCancel(MethodView):
    @blp.response(200, BookingSchema)
    @blp.doc(**HEADER_DOC)
    def post(self, booking_id: int) -> Any:
        """Cancel a booking; its seat is given back."""
        return record_once(
            lambda uow: svc.cancel_booking(
                uow, booking_id=booking_id, actor=current_actor(), now=utcnow()
            ),
            BookingSchema,
            None,
            status=200,
        )


@blp.route("/sessions/<int:session_id>/report")
class SessionReportView(MethodView):
    @blp.arguments(ReportCreateSchema)
    @blp.response(201, ReportSchema)
    @blp.doc(**HEADER_DOC)
    def post(self, body: dict[str, Any], session_id: int) -> Any:
        """Close a session: doses given and open-vial wastage go into the ledger."""
        return record_once(
            lambda uow: svc.report_session(
                uow,
                session_id=session_id,
                doses_given=body["doses_given"],
                vials_opened=body["vials_opened"],
                actor=current_actor(),
                now=utcnow(),
                **_site(),
            ),
            ReportSchema,
            None,
        )


# --- planner views -----------------------------------------------------------------------------


@blp.route("/centres/<int:store_id>/usable-doses")
class UsableDoses(MethodView):
    @blp.arguments(UsableQuerySchema, location="query")
    @blp.response(200, UsabilitySchema)
    def get(self, query: dict[str, Any], store_id: int) -> Any:
        """Usable, in-transit and promised doses of a centre on a date; what it may promise.

        Usable: on hand in the centre's units, valid on the date, not quarantined, VVM 1-2. In
        transit: issued to the centre, not received (not usable yet). Every open session promises
        its capacity; promises before the date and after it both count, because a dose given on
        the date is gone for a later session too, and a lot expiring before the date serves only
        earlier promises: available = min over t <= date of (doses valid on t - doses promised
        on or after t). Suggested capacity: available rounded down to whole vials.
        """
        with new_uow() as uow:
            usable = svc.usability(
                uow,
                store_id=store_id,
                product_id=query["product_id"],
                on_date=query["date"],
                today=_today(),
            )
        return dataclasses.asdict(usable)


@blp.route("/districts/<int:district_id>/session-planner")
class DistrictPlanner(MethodView):
    @blp.arguments(PlannerQuerySchema, location="query")
    @blp.response(200, PlannerRowSchema(many=True))
    def get(self, query: dict[str, Any], district_id: int) -> Any:
        """Per centre and product: usable, in transit, promised, open capacity, days of stock."""
        today = _today()
        uow = _request_uow()
        return avail.district_view(
            uow,
            district_id=district_id,
            on_date=query["date"] or today,
            today=today,
            window_days=settings().sessions_consumption_window_days,
        )


# --- public availability -----------------------------------------------------------------------


def _cache() -> avail.AvailabilityCache:
    cache = current_app.extensions.get("availability_cache")
    if cache is None:
        cache = avail.AvailabilityCache(runtime().uow, settings().availability_version_check_s)
        current_app.extensions["availability_cache"] = cache
    return cache


def _public_response(answer: avail.CachedAnswer) -> Response:
    response = Response(answer.body, mimetype="application/json")
    response.headers["ETag"] = answer.etag
    response.headers["Cache-Control"] = (
        f"public, max-age={settings().availability_max_age_s}, must-revalidate"
    )
    if answer.etag in request.headers.get("If-None-Match", ""):
        response.status_code = 304
        response.set_data(b"")
    return response


class LastGood:
    """The last answer served per question, kept to answer from while the database is down.

    People looking for a slot keep getting what was true a moment ago, marked with its age,
    instead of an error (issue 12); it is per worker and bounded.
    """

    def __init__(self, max_entries: int = 20000, clock: Callable[[], float] = time.monotonic):
        self._answers: dict[tuple[Any, ...], tuple[avail.CachedAnswer, float]] = {}
        self._max_entries, self._clock = max_entries, clock

    def answer(
        self, key: tuple[Any, ...], fetch: Callable[[], avail.CachedAnswer]
    ) -> tuple[avail.CachedAnswer, int | None]:
        """(fresh answer, None), or (last good copy, its age in s) while the database is down."""
        try:
            answer = fetch()
        except Exception as error:
            kept = self._answers.get(key)
            if kept is None or not is_unavailable(error):
                raise
            return kept[0], int(self._clock() - kept[1])
        if len(self._answers) >= self._max_entries and key not in self._answers:
            self._answers.clear()
        self._answers[key] = (answer, self._clock())
        return answer, None


def _last_good() -> LastGood:
    return current_app.extensions.setdefault("availability_last_good", LastGood())


def _public_answer(key: tuple[Any, ...], fetch: Callable[[], avail.CachedAnswer]) -> Response:
    answer, age_s = _last_good().answer(key, fetch)
    if age_s is None:
        return _public_response(answer)
    body = {**json.loads(answer.body), "copy_age_s": age_s}
    response = Response(json.dumps(body), mimetype="application/json")
    response.headers["Age"] = str(age_s)  # RFC 9111 5.1: seconds since confirmed at the origin
    response.headers["Cache-Control"] = "no-store"
    return response


@public.route("/findByDistrict")
class FindByDistrict(MethodView):
    @public.arguments(DistrictQuerySchema, location="query")
    @public.response(200, PublicSessionsSchema)
    @public.alt_response(304, description="Not modified: the ETag sent in If-None-Match is current")
    def get(self, query: dict[str, Any]) -> Response:
        """Open sessions of a district's centres on a date (DD-MM-YYYY), at most ~0.5 s old."""
        district_id, on_date = query["district_id"], query["date"]
        return _public_answer(
            ("district", district_id, on_date), lambda: _cache().by_district(district_id, on_date)
        )


@public.route("/findByCenter")
class FindByCenter(MethodView):
    @public.arguments(CentreQuerySchema, location="query")
    @public.response(200, PublicSessionsSchema)
    @public.alt_response(304, description="Not modified: the ETag sent in If-None-Match is current")
    def get(self, query: dict[str, Any]) -> Response:
        """Open sessions of one centre on a date (DD-MM-YYYY), at most ~0.5 s old."""
        centre_id, on_date = query["center_id"], query["date"]
        return _public_answer(
            ("centre", centre_id, on_date), lambda: _cache().by_centre(centre_id, on_date)
        )
