"""Passwords, tokens and MQTT passwords are kept only as hashes."""

from __future__ import annotations

import subprocess

from logistics.services import secrets


def test_password_hash_is_argon2_and_verifies():
    stored = secrets.hash_password("correct horse")
    assert stored.startswith("$argon2id$")
    assert secrets.verify_password(stored, "correct horse")
    assert not secrets.verify_password(stored, "correct horsE")
    assert not secrets.verify_password("not a hash", "correct horse")


def test_tokens_are_random_and_stored_as_sha256():
    a, b = secrets.new_token(), secrets.new_token()
    assert a != b and len(a) > 40
    assert secrets.token_hash(a) != secrets.token_hash(b)
    assert len(secrets.token_hash(a)) == 64 and a not in secrets.token_hash(a)


def test_mosquitto_hash_verifies_and_has_mosquittos_shape():
    stored = secrets.mosquitto_hash("s3cret")
    kind, iterations = stored.split("$")[1:3]
    assert (kind, iterations) == ("7", str(secrets.MOSQUITTO_ITERATIONS))
    assert secrets.mosquitto_verify(stored, "s3cret")
    assert not secrets.mosquitto_verify(stored, "s3creT")


def test_our_verify_accepts_what_mosquitto_passwd_writes(tmp_path):
    path = tmp_path / "pw"
    path.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(path), "s1", "pa55"], check=True)
    stored = path.read_text().strip().split(":", 1)[1]
    assert secrets.mosquitto_verify(stored, "pa55")
    assert not secrets.mosquitto_verify(stored, "other")


def test_acl_lets_each_sensor_write_only_under_its_own_topic():
    from logistics.services.mqtt_acl import render_acl

    acl = render_acl(["S-1", "S-2"], ["coldchain-ingest"], "coldchain/sensors/")
    blocks = [block.splitlines() for block in acl.split("\n\n") if block.startswith("user")]
    assert ["user coldchain-ingest", "topic read coldchain/sensors/#"] in blocks
    assert ["user S-1", "topic write coldchain/sensors/S-1/#"] in blocks
    assert ["user S-2", "topic write coldchain/sensors/S-2/#"] in blocks
    assert "pattern" not in acl
