"""Settings come from config/defaults.toml, overridden by COLDCHAIN_* environment variables."""

from __future__ import annotations

import pytest

from logistics.config import load_settings


def test_defaults_come_from_config_dir():
    settings = load_settings(environ={})
    assert settings.database_url.startswith("sqlite")
    assert settings.http_port == 5000


def test_environment_overrides_and_is_typed():
    settings = load_settings(
        environ={"COLDCHAIN_HTTP_PORT": "8080", "COLDCHAIN_DATABASE_ECHO": "yes"}
    )
    assert settings.http_port == 8080
    assert settings.database_echo is True


def test_bad_boolean_is_refused():
    with pytest.raises(ValueError):
        load_settings(environ={"COLDCHAIN_DATABASE_ECHO": "maybe"})
