"""Fixtures shared by the whole suite.

Unit tests (tests/unit) use none of the database fixtures. Integration and end-to-end tests get a
fresh PostgreSQL database for the run (so parallel runs never collide) and empty tables per test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from logistics.app import create_app
from logistics.config import Settings, load_settings
from logistics.db import UnitOfWork, make_engine, make_session_factory
from logistics.runtime import Runtime
from logistics.services.reference import seed_reference_data
from tests.support import services
from tests.support.schema import build_schema, empty_tables


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    url = services.create_database()
    yield url
    services.drop_database(url)


@pytest.fixture(scope="session")
def mqtt_url() -> str:
    """The machine's Mosquitto (fails the test when it is down)."""
    return services.mqtt_url()


@pytest.fixture(scope="session")
def settings(pg_url: str) -> Settings:
    """Settings of the service under test: real PostgreSQL."""
    return load_settings({"database_url": pg_url})


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    """One engine for the run, on a schema built by the migrations."""
    engine = make_engine(settings.database_url, pool_size=20)
    build_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def runtime(settings: Settings, engine: Engine) -> Runtime:
    """A runtime on empty tables (plus reference data), sharing the run's engine."""
    empty_tables(engine)
    runtime = Runtime(settings, engine, make_session_factory(engine))
    with runtime.uow() as uow:
        seed_reference_data(uow)
    return runtime


@pytest.fixture
def uow(runtime: Runtime) -> Iterator[UnitOfWork]:
    """A unit of work on empty tables."""
    with runtime.uow() as uow:
        yield uow


@pytest.fixture
def app(runtime: Runtime) -> Flask:
    """A fresh app on empty tables."""
    app = create_app(runtime=runtime)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """An HTTP client for the app."""
    return app.test_client()
