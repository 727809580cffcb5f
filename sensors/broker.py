"""The embedded MQTT broker (amqtt 0.12) for a one-command run; production uses Mosquitto.

What it does and does not guarantee is written in docs/sensors.md. In short: MQTT 3.1.1 only, it
keeps queued messages for a disconnected persistent session in memory only (lost when the process
stops), and it queues nothing at all for a client that logged in anonymously; so every client
here must log in with a user and password from a password file (amqtt's FileAuthPlugin, Argon2).
It also delivers such queued messages with the retain flag set: the ingestion ignores that flag on
readings topics.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import tempfile
import threading
from pathlib import Path

log = logging.getLogger(__name__)


def hash_password(password: str) -> str:
    """An Argon2 hash amqtt's FileAuthPlugin verifies."""
    from pwdlib import PasswordHash
    from pwdlib.hashers.argon2 import Argon2Hasher

    return PasswordHash((Argon2Hasher(),)).hash(password)


def new_password() -> str:
    """A random password for an account made for this run."""
    return secrets.token_urlsafe(18)


def broker_config(host: str, port: int, password_file: Path) -> dict[str, object]:
    """amqtt configuration: a loopback TCP listener, password logins, no anonymous access."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": 0}},
        # Only FileAuthPlugin: with AnonymousAuthPlugin a client may log in without a user and
        # amqtt then keeps no messages for it while it is disconnected (broker.py, _run_broadcast).
        "plugins": {
            "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(password_file)}
        },
    }


def write_password_file(path: Path, users: dict[str, str], extra_file: str = "") -> None:
    """Write `user:argon2-hash` lines for these accounts, plus the lines of an existing file."""
    lines = [f"{user}:{hash_password(password)}" for user, password in users.items()]
    if extra_file:
        lines += [
            line.strip() for line in Path(extra_file).read_text().splitlines() if line.strip()
        ]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


class EmbeddedBroker:
    """An amqtt broker running on its own asyncio loop in a background thread."""

    def __init__(self, host: str, port: int, users: dict[str, str], extra_password_file: str = ""):
        self.host, self.port = host, port
        self._users, self._extra = users, extra_password_file
        self._dir = tempfile.TemporaryDirectory(prefix="coldchain-broker-")
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout_s: float = 15) -> None:
        """Start listening; raise if the broker could not start."""
        password_file = Path(self._dir.name) / "passwd"
        write_password_file(password_file, self._users, self._extra)
        config = broker_config(self.host, self.port, password_file)
        self._thread = threading.Thread(
            target=self._run, args=(config,), name="embedded-broker", daemon=True
        )
        self._thread.start()
        if not self._started.wait(timeout_s) or self._error:
            raise RuntimeError(
                f"embedded broker did not start on {self.host}:{self.port}: {self._error}"
            )
        log.info("embedded MQTT broker (amqtt) listening on %s:%s", self.host, self.port)

    def _run(self, config: dict[str, object]) -> None:
        try:
            asyncio.run(self._serve(config))
        except BaseException as exc:  # report to start() instead of dying silently
            self._error = exc
            self._started.set()

    async def _serve(self, config: dict[str, object]) -> None:
        from amqtt.broker import Broker

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        broker = Broker(config)
        await broker.start()
        self._started.set()
        await self._stopping.wait()
        await broker.shutdown()

    def stop(self) -> None:
        """Shut the broker down (queued messages are dropped: they live in memory only)."""
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(15)
        self._dir.cleanup()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
