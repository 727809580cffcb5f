"""Fixtures of the web app's tests: the demo network, users with passwords, logged-in clients."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from logistics.runtime import Runtime
from logistics.services.auth import create_user
from logistics.services.demo import load_demo

PASSWORD = "correct horse battery"


@pytest.fixture
def demo(runtime: Runtime) -> dict[str, Any]:
    """The demo network (state, districts, centres, lots with stock), loaded through services."""
    with runtime.uow() as uow:
        result = load_demo(uow, dt.datetime.now(dt.UTC))
        uow.commit()
        return result


def csrf_of(html: str) -> str:
    """The CSRF token a rendered page carries."""
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    """Log in through the form, as a browser would."""
    page = client.get("/login")
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf_token": csrf_of(page.get_data(as_text=True)),
        },
    )


@pytest.fixture
def person(app: Flask, runtime: Runtime) -> Callable[..., FlaskClient]:
    """A logged-in browser-like client for a new user with `role` over `store` (code or id)."""
    made = iter(range(1, 1000))

    def make(role: str, store: int | str | None = None) -> FlaskClient:
        username = f"web-{role}-{next(made)}"
        with runtime.uow() as uow:
            create_user(uow, username=username, password=PASSWORD, roles=[(role, store)])
            uow.commit()
        client = app.test_client()
        assert login(client, username).status_code == 303
        return client

    return make
