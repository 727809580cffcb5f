"""HTTP API: sensors (register, move, retire), unit readings, latest per store, dead letters."""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from flask.views import MethodView

from logistics.api.blueprint import Blueprint, kept_schema
from logistics.api.context import current_actor, new_uow, settings
from logistics.api.fields import Timestamp
from logistics.domain.errors import Invalid
from logistics.domain.ids import MAX_ID
from logistics.domain.readings import SENSOR_ID, parse_bucket
from logistics.services import readings as readings_service
from logistics.services import sensors as sensors_service

blp = Blueprint(
    "readings",
    __name__,
    url_prefix="/api",
    description="Temperature sensors, their readings and rejected messages",
)
BLUEPRINTS = [blp]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AwareDateTime(Timestamp):
    """An RFC 3339 timestamp that must carry its UTC offset (years 2000-2099)."""


class SensorRegistrationSchema(ma.Schema):
    sensor_id = ma.fields.String(
        required=True, validate=ma.validate.Regexp(r"^[A-Za-z0-9_.:-]{1,64}$")
    )
    unit_id = ma.fields.Integer(
        strict=True, required=True, validate=ma.validate.Range(min=1, max=MAX_ID)
    )
    valid_from = AwareDateTime(metadata={"description": "Start of the assignment (default: now)"})
    expected_interval_s = ma.fields.Integer(
        strict=True, load_default=600, validate=ma.validate.Range(min=10, max=86400)
    )


class SensorMoveSchema(ma.Schema):
    unit_id = ma.fields.Integer(
        strict=True, required=True, validate=ma.validate.Range(min=1, max=MAX_ID)
    )
    valid_from = AwareDateTime(
        required=True, metadata={"description": "Readings from this time belong to the new unit"}
    )


class AssignmentSchema(ma.Schema):
    unit_id = ma.fields.Integer()
    valid_from = ma.fields.DateTime()
    valid_to = ma.fields.DateTime(allow_none=True)
    actor = ma.fields.String()


class SensorSchema(ma.Schema):
    sensor_id = ma.fields.String()
    status = ma.fields.String(metadata={"description": "active or retired"})
    connection = ma.fields.String(
        allow_none=True, metadata={"description": "online / offline (status topic)"}
    )
    connection_changed_at = ma.fields.DateTime(allow_none=True)
    expected_interval_s = ma.fields.Integer()
    last_seen_at = ma.fields.DateTime(allow_none=True)
    last_reading_ts = ma.fields.DateTime(allow_none=True)
    last_temp_c = ma.fields.Float(allow_none=True)
    battery_pct = ma.fields.Float(allow_none=True)
    power = ma.fields.String(allow_none=True)
    registered_at = ma.fields.DateTime()
    retired_at = ma.fields.DateTime(allow_none=True)


class SensorDetailSchema(SensorSchema):
    assignments = ma.fields.List(ma.fields.Nested(AssignmentSchema))


class RangeQuerySchema(ma.Schema):
    start = AwareDateTime(required=True)
    end = AwareDateTime(
        required=True,
        metadata={"description": "Not before start; downsampled (bucket): after start"},
    )
    bucket = ma.fields.String(
        metadata={
            "description": "Downsample to min/avg/max per bucket: 30s, 15m, 1h, 1d; at most "
            "5,000 buckets over the range",
            "pattern": "^[0-9]*[1-9][0-9]*[smhd]$",
        }
    )


class ReadingSchema(ma.Schema):
    sensor_id = ma.fields.String()
    ts = ma.fields.DateTime()
    temp_c = ma.fields.Float()
    battery_pct = ma.fields.Float(allow_none=True)
    power = ma.fields.String(allow_none=True)
    seq = ma.fields.Integer(allow_none=True)
    received_at = ma.fields.DateTime()
    late = ma.fields.Boolean()


class BucketSchema(ma.Schema):
    start = ma.fields.DateTime()
    count = ma.fields.Integer()
    min_temp_c = ma.fields.Float()
    avg_temp_c = ma.fields.Float()
    max_temp_c = ma.fields.Float()


class UnitReadingsSchema(ma.Schema):
    unit_id = ma.fields.Integer()
    start = ma.fields.DateTime()
    end = ma.fields.DateTime()
    bucket_s = ma.fields.Integer(allow_none=True)
    readings = ma.fields.List(ma.fields.Nested(ReadingSchema))
    buckets = ma.fields.List(ma.fields.Nested(BucketSchema))


class LatestQuerySchema(ma.Schema):
    subtree = ma.fields.Boolean(
        load_default=False, metadata={"description": "Include every store below"}
    )


class UnitLatestSchema(ma.Schema):
    store_id = ma.fields.Integer(attribute="unit.store_id")
    unit_id = ma.fields.Integer(attribute="unit.id")
    unit_code = ma.fields.String(attribute="unit.code")
    kind = ma.fields.String(attribute="unit.kind")
    min_temp_c = ma.fields.Float(attribute="unit.min_temp_c")
    max_temp_c = ma.fields.Float(attribute="unit.max_temp_c")
    sensor = ma.fields.Nested(SensorSchema, allow_none=True)


class DeadLetterQuerySchema(ma.Schema):
    page = ma.fields.Integer(load_default=1, validate=ma.validate.Range(min=1, max=1_000_000))
    page_size = ma.fields.Integer(load_default=50, validate=ma.validate.Range(min=1, max=500))
    sensor_id = ma.fields.String(validate=ma.validate.Regexp(SENSOR_ID.pattern))
    reason = ma.fields.String(validate=ma.validate.Regexp(r"^[a-z_]{1,64}$"))


class DeadLetterSchema(ma.Schema):
    id = ma.fields.Integer()
    topic = ma.fields.String()
    sensor_id = ma.fields.String(allow_none=True)
    reason = ma.fields.String()
    detail = ma.fields.String()
    received_at = ma.fields.DateTime()
    payload = ma.fields.String()


class DeadLetterPageSchema(ma.Schema):
    page = ma.fields.Integer()
    page_size = ma.fields.Integer()
    total = ma.fields.Integer()
    items = ma.fields.List(ma.fields.Nested(DeadLetterSchema))


@blp.route("/sensors")
class Sensors(MethodView):
    @blp.arguments(SensorRegistrationSchema)
    @blp.response(201, SensorSchema)
    def post(self, body: dict[str, Any]) -> Any:
        """Register a sensor as reading in a storage unit (from `valid_from`, default now)."""
        now = _now()
        with new_uow() as uow:
            sensor = sensors_service.register_sensor(
                uow,
                sensor_id=body["sensor_id"],
                unit_id=body["unit_id"],
                valid_from=body.get("valid_from") or now,
                actor=current_actor(),
                now=now,
                expected_interval_s=body["expected_interval_s"],
            )
            uow.commit()
        return sensor


@blp.route("/sensors/<string:sensor_id>")
class SensorItem(MethodView):
    @blp.response(200, SensorDetailSchema)
    def get(self, sensor_id: str) -> dict[str, Any]:
        """A sensor, its last reading and status, and the units it has been in."""
        with new_uow() as uow:
            sensor, history = sensors_service.sensor_detail(uow, sensor_id)
        return {
            **{name: getattr(sensor, name) for name in kept_schema(SensorSchema).fields},
            "assignments": history,
        }


@blp.route("/sensors/<string:sensor_id>/moves")
class SensorMoves(MethodView):
    @blp.arguments(SensorMoveSchema)
    @blp.response(200, SensorSchema)
    def post(self, body: dict[str, Any], sensor_id: str) -> Any:
        """Move a sensor to another unit from `valid_from`; its readings from then on go there."""
        with new_uow() as uow:
            sensor = sensors_service.move_sensor(
                uow,
                sensor_id=sensor_id,
                unit_id=body["unit_id"],
                valid_from=body["valid_from"],
                actor=current_actor(),
            )
            uow.commit()
        return sensor


@blp.route("/sensors/<string:sensor_id>/retirement")
class SensorRetirement(MethodView):
    @blp.response(200, SensorSchema)
    def post(self, sensor_id: str) -> Any:
        """Retire a sensor: it leaves its unit and its further messages go to the dead letters."""
        with new_uow() as uow:
            sensor = sensors_service.retire_sensor(
                uow, sensor_id=sensor_id, actor=current_actor(), now=_now()
            )
            uow.commit()
        return sensor


@blp.route("/units/<int:unit_id>/readings")
class UnitReadings(MethodView):
    @blp.arguments(RangeQuerySchema, location="query")
    @blp.response(200, UnitReadingsSchema)
    def get(self, query: dict[str, Any], unit_id: int) -> dict[str, Any]:
        """Readings of a unit over [start, end), raw or downsampled (min/avg/max per bucket).

        Downsampled ranges longer than two days (readings.aggregate_after_days) are read from the
        hourly aggregates: buckets then cover whole UTC hours and are at least an hour wide
        (`bucket_s` says the width used).
        """
        start, end, bucket = query["start"], query["end"], query.get("bucket")
        result: dict[str, Any] = {"unit_id": unit_id, "start": start, "end": end, "bucket_s": None}
        with new_uow() as uow:
            if bucket:
                # Long ranges come from the hourly aggregates, in buckets of whole hours.
                after = dt.timedelta(days=settings().readings_aggregate_after_days)
                result["bucket_s"], result["buckets"] = readings_service.unit_series(
                    uow, unit_id, start, end, _bucket_s(bucket), after
                )
            else:
                result["readings"] = readings_service.unit_readings(uow, unit_id, start, end)
        return result


def _bucket_s(text: str) -> int:
    try:
        return parse_bucket(text)
    except ValueError as exc:
        raise Invalid(str(exc), field="bucket") from exc


@blp.route("/stores/<int:store_id>/latest-readings")
class StoreLatest(MethodView):
    @blp.arguments(LatestQuerySchema, location="query")
    @blp.response(200, UnitLatestSchema(many=True))
    def get(self, query: dict[str, Any], store_id: int) -> list[Any]:
        """Every unit of a store (or of its subtree, e.g. a district) with its latest reading."""
        with new_uow() as uow:
            return readings_service.latest_by_store(uow, store_id, query["subtree"], _now())


@blp.route("/dead-letters")
class DeadLetters(MethodView):
    @blp.arguments(DeadLetterQuerySchema, location="query")
    @blp.response(200, DeadLetterPageSchema)
    def get(self, query: dict[str, Any]) -> dict[str, Any]:
        """Messages the ingestion could not store, newest first, with the reason and raw payload."""
        with new_uow() as uow:
            items, total = readings_service.dead_letters(
                uow, query["page"], query["page_size"], query.get("sensor_id"), query.get("reason")
            )
        return {
            "page": query["page"],
            "page_size": query["page_size"],
            "total": total,
            "items": items,
        }
