"""Run a private Mosquitto with the project's config/mosquitto.conf on a loopback port.

Used by tests and benchmarks that need the shipped broker settings (queue size, inflight window,
persistence) without touching the machine's broker.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from logistics.config import CONFIG_DIR

# Lines of the production file that do not apply to a private loopback broker.
_REPLACED = (
    "user ",
    "listener",
    "password_file",
    "acl_file",
    "allow_anonymous",
    "persistence_location",
    "log_dest",
)


def project_config(
    port: int,
    data_dir: Path,
    source: Path = CONFIG_DIR / "mosquitto.conf",
    overrides: dict[str, str] | None = None,
) -> str:
    """The shipped configuration on 127.0.0.1:port, anonymous, persisting into data_dir.

    `overrides` replaces options by name (e.g. {"autosave_interval": "30"} to measure another
    setting); the rest is the file as shipped.
    """
    overrides = overrides or {}
    kept = [
        line
        for line in source.read_text().splitlines()
        if not line.strip().startswith(_REPLACED) and (line.split() or [""])[0] not in overrides
    ]
    kept += [f"{name} {value}" for name, value in overrides.items()]
    # Started as root, mosquitto would switch to user "mosquitto", who cannot write our temp dir.
    return "\n".join(
        [
            *kept,
            f"user {getpass.getuser()}",
            f"listener {port} 127.0.0.1",
            "allow_anonymous true",
            f"persistence_location {data_dir}/",
            f"log_dest file {data_dir}/mosquitto.log",
            "",
        ]
    )


class PrivateMosquitto:
    """A mosquitto process of our own; stop() ends it, restart() keeps its persisted state."""

    def __init__(self, port: int | None = None, overrides: dict[str, str] | None = None):
        self.port = port or _free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="coldchain-mosquitto-"))
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(project_config(self.port, self.dir, overrides=overrides))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL for settings."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10) -> PrivateMosquitto:
        """Start and wait until it accepts connections."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen(
            [binary, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"mosquitto did not start on port {self.port}; see {self.dir}/mosquitto.log"
        )

    def stop(self) -> None:
        """Stop it (SIGTERM: it saves its persistence file)."""
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def kill(self) -> None:
        """SIGKILL it, as a crash or an OOM kill would: nothing is saved on the way out."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None

    @property
    def saved_at(self) -> float | None:
        """When the persistence file was last written (None: never)."""
        path = self.dir / "mosquitto.db"
        return path.stat().st_mtime if path.exists() else None

    def cleanup(self) -> None:
        """Stop it and remove its files."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
