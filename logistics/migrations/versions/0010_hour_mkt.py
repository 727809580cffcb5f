"""hourly aggregates carry what MKT needs

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 00:50:00

Issue 14 (a 30-day MKT read 43,200 raw readings). MKT weights each reading by the time until the
next one (domain/mkt.py), so each unit-hour also keeps its first and last reading's time, the last
reading's temperature, and the sum over its back-to-back readings of gap x exp(-dH/(R*T))
(`kinetic_s`, dH/R = 10,000 K) with the largest such gap. An hour whose readings arrived out of
order keeps `kinetic_s` NULL and is read from its raw readings. Filled from the readings held.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import logistics.db

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_NEW = ("first_ts", "last_ts", "last_temp_c", "kinetic_s", "max_gap_s")


def upgrade() -> None:
    with op.batch_alter_table("reading_hours") as batch:
        batch.add_column(sa.Column("first_ts", logistics.db.UTCDateTime(timezone=True)))
        batch.add_column(sa.Column("last_ts", logistics.db.UTCDateTime(timezone=True)))
        batch.add_column(sa.Column("last_temp_c", sa.Double()))
        batch.add_column(sa.Column("kinetic_s", sa.Double()))
        batch.add_column(sa.Column("max_gap_s", sa.Double()))
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps no aggregates
    # The same figures as services/readings.py computes (kept here: a migration stays as written).
    op.execute(
        "WITH points AS (SELECT unit_id, date_trunc('hour', ts, 'UTC') AS hour, ts, temp_c, "
        "date_part('epoch', lead(ts) OVER w - ts) AS gap_s FROM readings "
        "WINDOW w AS (PARTITION BY unit_id, date_trunc('hour', ts, 'UTC') ORDER BY ts)), "
        "figures AS (SELECT unit_id, hour, min(ts) AS first_ts, max(ts) AS last_ts, "
        "min(temp_c) FILTER (WHERE gap_s IS NULL) AS last_temp_c, "
        "CASE WHEN min(gap_s) > 0 OR min(gap_s) IS NULL "
        "THEN coalesce(sum(gap_s * exp(-10000 / (temp_c + 273.15))), 0) END AS kinetic_s, "
        "coalesce(max(gap_s), 0) AS max_gap_s FROM points GROUP BY 1, 2) "
        "UPDATE reading_hours AS h SET first_ts = f.first_ts, last_ts = f.last_ts, "
        "last_temp_c = f.last_temp_c, kinetic_s = f.kinetic_s, max_gap_s = f.max_gap_s "
        "FROM figures AS f WHERE h.unit_id = f.unit_id AND h.hour = f.hour"
    )


def downgrade() -> None:
    with op.batch_alter_table("reading_hours") as batch:
        for name in reversed(_NEW):
            batch.drop_column(name)
