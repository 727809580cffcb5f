"""Reach the machine's PostgreSQL, Mosquitto and Redis; tests fail (never skip) without them."""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest

PG_ADMIN_URL = os.environ.get("COLDCHAIN_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MQTT_HOST = os.environ.get("COLDCHAIN_TEST_MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("COLDCHAIN_TEST_MQTT_PORT", "1883"))
REDIS_HOST = os.environ.get("COLDCHAIN_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("COLDCHAIN_TEST_REDIS_PORT", "6379"))


def require_tcp(host: str, port: int, what: str) -> None:
    """Fail the test run loudly when a service the suite needs cannot be reached."""
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        pytest.fail(
            f"{what} is not reachable at {host}:{port} ({exc}); start it (see README)",
            pytrace=False,
        )


def create_database() -> str:
    """Create an empty PostgreSQL database for this test run and return its SQLAlchemy URL."""
    parts = urlsplit(PG_ADMIN_URL)
    require_tcp(parts.hostname or "127.0.0.1", parts.port or 5432, "PostgreSQL")
    name = f"coldchain_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://{parts.netloc}/{name}"


def drop_database(url: str) -> None:
    """Drop a database made by create_database."""
    name = url.rsplit("/", 1)[-1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def mqtt_url() -> str:
    """URL of the machine's Mosquitto, after checking it answers."""
    require_tcp(MQTT_HOST, MQTT_PORT, "Mosquitto")
    return f"mqtt://{MQTT_HOST}:{MQTT_PORT}"


def redis_url() -> str:
    """URL of the machine's Redis (the shared rate-limit store), after checking it answers."""
    require_tcp(REDIS_HOST, REDIS_PORT, "Redis")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
