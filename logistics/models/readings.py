"""Models: temperature sensors, where they are mounted, their readings and rejected messages."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from logistics.db import Base, BigIntPK

SENSOR_ACTIVE = "active"
SENSOR_RETIRED = "retired"


class Sensor(Base):
    """A temperature logger publishing over MQTT; it reads into one storage unit at a time."""

    __tablename__ = "sensors"

    sensor_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # How often it should report; silence well past this is an alarm (issue 4).
    expected_interval_s: Mapped[int] = mapped_column(default=600)
    status: Mapped[str] = mapped_column(String(16), default=SENSOR_ACTIVE)  # active / retired
    # Last value of the retained status topic: "online", "offline" (last will), None (never).
    connection: Mapped[str | None] = mapped_column(String(16))
    connection_changed_at: Mapped[dt.datetime | None]
    # When the service last received anything from it, and the newest reading it holds.
    last_seen_at: Mapped[dt.datetime | None]
    last_reading_ts: Mapped[dt.datetime | None]
    last_temp_c: Mapped[float | None]
    battery_pct: Mapped[float | None]
    power: Mapped[str | None] = mapped_column(String(16))  # mains / battery / off
    registered_at: Mapped[dt.datetime]
    retired_at: Mapped[dt.datetime | None]


class SensorAssignment(Base):
    """The unit a sensor measured from `valid_from` until `valid_to` (open-ended while current)."""

    __tablename__ = "sensor_assignments"
    __table_args__ = (Index("ix_sensor_assignments_sensor_from", "sensor_id", "valid_from"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.sensor_id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("storage_units.id"), index=True)
    valid_from: Mapped[dt.datetime]
    valid_to: Mapped[dt.datetime | None]
    actor: Mapped[str] = mapped_column(String(100), default="system")


class Reading(Base):
    """One temperature reading, stored once per sensor and timestamp (redeliveries are dropped).

    On PostgreSQL the table is partitioned by month of `ts` (migration 0007, issue 16), so its
    primary key there is (id, ts): a partitioned table's unique keys must hold the partition key.
    The unique (sensor_id, ts) holds it already, so duplicates are still refused across the table.
    """

    __tablename__ = "readings"
    __table_args__ = (
        UniqueConstraint("sensor_id", "ts"),
        Index("ix_readings_unit_ts", "unit_id", "ts"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    sensor_id: Mapped[str] = mapped_column(ForeignKey("sensors.sensor_id"))
    # The unit the sensor was assigned to at `ts` (not at receipt).
    unit_id: Mapped[int] = mapped_column(ForeignKey("storage_units.id"))
    ts: Mapped[dt.datetime]
    temp_c: Mapped[float]
    battery_pct: Mapped[float | None]
    power: Mapped[str | None] = mapped_column(String(16))
    seq: Mapped[int | None]
    received_at: Mapped[dt.datetime]
    # Arrived long after it was taken, or older than a reading already held (a backlog).
    late: Mapped[bool] = mapped_column(default=False)


class ReadingHour(Base):
    """Min, max, sum and count of one unit's readings in one UTC hour (issue 16).

    Kept up to date in the transaction that stores the readings (PostgreSQL), late ones included;
    charts over long ranges read these instead of raw readings, and they outlive the raw readings'
    retention.
    """

    __tablename__ = "reading_hours"

    unit_id: Mapped[int] = mapped_column(ForeignKey("storage_units.id"), primary_key=True)
    hour: Mapped[dt.datetime] = mapped_column(primary_key=True)
    readings: Mapped[int]
    sum_temp_c: Mapped[float]
    min_temp_c: Mapped[float]
    max_temp_c: Mapped[float]
    # What MKT needs (migration 0010): the hour's first and last reading, the last one's
    # temperature, and the sum over its back-to-back readings of gap_s * exp(-dH/(R*T)) with the
    # largest such gap. kinetic_s is NULL when the hour's readings came out of order (read raw).
    first_ts: Mapped[dt.datetime | None]
    last_ts: Mapped[dt.datetime | None]
    last_temp_c: Mapped[float | None]
    kinetic_s: Mapped[float | None]
    max_gap_s: Mapped[float | None]


class DeadLetter(Base):
    """A message the ingestion could not store as a reading, kept for a person to look at."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True)
    topic: Mapped[str] = mapped_column(String(256))
    sensor_id: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(500), default="")
    received_at: Mapped[dt.datetime] = mapped_column(index=True)
    # The raw payload, decoded leniently and cut to ingest.dead_letter_payload_chars.
    payload: Mapped[str] = mapped_column(Text, default="")
    # The exact bytes received (cut to the same length): text columns cannot hold NUL or bytes
    # that are not UTF-8, and the person looking at a hostile message needs to see what came.
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)


__all__ = [
    "DeadLetter",
    "Reading",
    "ReadingHour",
    "SENSOR_ACTIVE",
    "SENSOR_RETIRED",
    "Sensor",
    "SensorAssignment",
]
