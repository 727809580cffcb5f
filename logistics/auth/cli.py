"""Commands: create-user, create-token, mqtt-credentials (added to `coldchain` by cli.py)."""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path
from typing import Any

import click

from logistics.config import load_settings
from logistics.runtime import Runtime
from logistics.services import auth as auth_service
from logistics.services import mqtt_acl, secrets
from logistics.services.audit import AuditContext, install_audit


def _runtime() -> Runtime:
    runtime = Runtime.from_settings(load_settings())
    # Writes from the command line are audited too, under the operating-system user's name.
    context = AuditContext(actor=f"cli:{getpass.getuser()}"[:64])
    install_audit(runtime.session_factory, lambda: context)
    return runtime


def demo_login_text(credentials: dict[str, dict[str, Any]], base_url: str) -> str:
    """How to log in with the demo's credentials (from ensure_demo_credentials), for printing."""
    lines = [
        f"Web app: {base_url}/  (log in with a user below)",
        "Demo users (passwords made for this run; nothing is stored in the repository):",
    ]
    for username, info in credentials.items():
        roles = ", ".join(f"{role}@{store}" if store else role for role, store in info["roles"])
        lines.append(f"  {username:<10} {info['password']}   ({roles})")
    lines += [
        "Log in:",
        f"  curl -s -X POST {base_url}/api/auth/login -H 'Content-Type: application/json' \\",
        '       -d \'{"username": "admin", "password": "<password above>"}\'',
        "  then send the access_token as 'Authorization: Bearer <token>'.",
    ]
    return "\n".join(lines)


@click.command("create-user")
@click.argument("username")
@click.option(
    "--role",
    "roles",
    multiple=True,
    required=True,
    help="ROLE or ROLE:STORE-CODE (e.g. district_officer:MH-DVS-PUNE); repeatable.",
)
@click.option("--service", is_flag=True, help="A service account: no password, tokens only.")
def create_user_command(username: str, roles: tuple[str, ...], service: bool) -> None:
    """Create a user; prints a random password unless --service."""
    password = None if service else secrets.new_password()
    runtime = _runtime()
    try:
        with runtime.uow() as uow:
            auth_service.create_user(uow, username=username, password=password, roles=list(roles))
            uow.commit()
    finally:
        runtime.close()
    click.echo(f"user {username} created" + (f"; password: {password}" if password else ""))


@click.command("create-token")
@click.argument("username")
@click.option(
    "--ttl-s", type=int, default=None, help="Lifetime in seconds (default: auth.token_ttl_s)."
)
def create_token_command(username: str, ttl_s: int | None) -> None:
    """Issue a bearer token to a user and print it (it is shown only this once)."""
    runtime = _runtime()
    try:
        with runtime.uow() as uow:
            token = auth_service.issue_token(
                uow, username=username, ttl_s=ttl_s or runtime.settings.auth_token_ttl_s
            )
            uow.commit()
    finally:
        runtime.close()
    click.echo(token)


@click.command("mqtt-credentials")
@click.option("--password-file", type=click.Path(path_type=Path), required=True)
@click.option("--acl-file", type=click.Path(path_type=Path), required=True)
@click.option("--issue-missing", is_flag=True, help="Give active sensors without a login one.")
@click.option(
    "--ingest-user",
    default=None,
    help="Make (or replace) this ingestion account's password and print it.",
)
def mqtt_credentials_command(
    password_file: Path, acl_file: Path, issue_missing: bool, ingest_user: str | None
) -> None:
    """Write Mosquitto's password and ACL files from the sensor registry (then SIGHUP mosquitto)."""
    runtime, now = _runtime(), dt.datetime.now(dt.UTC)
    try:
        with runtime.uow() as uow:
            new = mqtt_acl.issue_missing_sensor_credentials(uow, now=now) if issue_missing else {}
            if ingest_user:
                new[ingest_user] = mqtt_acl.issue_service_credential(
                    uow, username=ingest_user, now=now
                )
            uow.commit()
            files = mqtt_acl.mosquitto_files(uow, topic_prefix=runtime.settings.mqtt_topic_prefix)
    finally:
        runtime.close()
    mqtt_acl.write_mosquitto_files(files, password_file, acl_file)
    for username, password in new.items():
        click.echo(f"new MQTT login (shown once): {username} {password}")
    click.echo(f"{len(files.sensors)} sensors can log in; wrote {password_file} and {acl_file}")
    if files.skipped:
        click.echo(f"active sensors without a usable login: {', '.join(files.skipped)}")


def register(cli: click.Group) -> None:
    """Add the auth commands to the `coldchain` command."""
    for command in (create_user_command, create_token_command, mqtt_credentials_command):
        cli.add_command(command)
