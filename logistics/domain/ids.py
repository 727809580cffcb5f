"""The range of database ids: anything outside names no row (and must not reach the database)."""

from __future__ import annotations

MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database (PostgreSQL SERIAL)
MAX_BIG_ID = 2**63 - 1  # ids of the tables that grow fastest are BIGSERIAL (movements, reviews)
