"""The auth commands: create-user, create-token and mqtt-credentials."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from logistics.cli import _load_plugins, cli
from logistics.models.readings import Sensor
from logistics.services.audit import query_audit

pytestmark = pytest.mark.integration


@pytest.fixture
def run(runtime):
    _load_plugins()
    env = {"COLDCHAIN_DATABASE_URL": runtime.settings.database_url}

    def invoke(*args: str) -> str:
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    return invoke


def test_create_user_and_token_then_call_the_api(run, runtime, anon_client):
    output = run("create-user", "ops", "--role", "admin")
    password = output.strip().rsplit(" ", 1)[-1]
    login = anon_client.post("/api/auth/login", json={"username": "ops", "password": password})
    assert login.status_code == 200
    token = run("create-token", "ops", "--ttl-s", "60").strip()
    me = anon_client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json["username"] == "ops"
    with runtime.uow() as uow:
        assert query_audit(uow, entity="users")[0].actor.startswith("cli:")


def test_mqtt_credentials_writes_the_broker_files(run, runtime, tmp_path):
    with runtime.uow() as uow:
        uow.session.add(Sensor(sensor_id="S-1", registered_at=dt.datetime.now(dt.UTC)))
        uow.commit()
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    output = run(
        "mqtt-credentials",
        "--password-file",
        str(passwd),
        "--acl-file",
        str(acl),
        "--issue-missing",
        "--ingest-user",
        "coldchain-ingest",
    )
    assert "new MQTT login (shown once): S-1 " in output
    assert [line.split(":")[0] for line in passwd.read_text().splitlines()] == [
        "coldchain-ingest",
        "S-1",
    ]
    assert "topic write coldchain/sensors/S-1/#" in acl.read_text()
    assert oct(passwd.stat().st_mode & 0o777) == "0o640"
