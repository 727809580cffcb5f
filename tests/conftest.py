"""Fixtures shared by the whole suite.

Unit tests (tests/unit) use none of the database fixtures. Integration and end-to-end tests get a
fresh PostgreSQL database for the run (so parallel runs never collide) and empty tables per test.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine

from logistics.app import create_app
from logistics.config import Settings, load_settings
from logistics.db import UnitOfWork, make_engine, make_session_factory
from logistics.runtime import Runtime
from logistics.services.auth import create_user, issue_token
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
        uow.commit()
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
def anon_client(app: Flask) -> FlaskClient:
    """An HTTP client for the app that sends no credentials."""
    return app.test_client()


def _client_with_token(app: Flask, token: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client


@pytest.fixture
def client(app: Flask, runtime: Runtime) -> FlaskClient:
    """An HTTP client for the app, logged in as an admin (user "test-admin")."""
    with runtime.uow() as uow:
        create_user(uow, username="test-admin", password=None, roles=["admin"])
        uow.commit()
        token = issue_token(uow, username="test-admin")
        uow.commit()
        return _client_with_token(app, token)


@pytest.fixture
def client_as(app: Flask, runtime: Runtime) -> Callable[..., FlaskClient]:
    """Make a client logged in as a new user holding `role` over `store` (id or code; None: all)."""
    made = itertools.count(1)

    def make(role: str, store: int | str | None = None) -> FlaskClient:
        username = f"test-{role}-{next(made)}"
        with runtime.uow() as uow:
            create_user(uow, username=username, password=None, roles=[(role, store)])
            uow.commit()
            token = issue_token(uow, username=username)
            uow.commit()
            return _client_with_token(app, token)

    return make
