"""What the offline tests share: the app in its own process, a lossy proxy, reading the ledger.

The web server is a real process (`coldchain serve --dev`) on a fixed port, so a test can stop
it and start it again on the same port. The proxy sits between the browser and the server and,
for writes (POST), drops the request or, after the server answered, the response (seeded).
"""

from __future__ import annotations

import collections
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from sqlalchemy import select

from logistics.models.stock import Movement
from logistics.runtime import Runtime
from logistics.services import stock
from logistics.services.auth import create_user

OFFICER, OFFICER_PASSWORD = "asha", "correct horse battery"
CENTRE = "PUN-PHC-BARAMATI"
SECRET = "offline-tests-secret-key-0123456789-abcdefghijklmnop"

# The queue in IndexedDB, read from the page (what offline.js keeps).
READ_QUEUE = """async () => {
  const db = await new Promise((ok, ko) => { const r = indexedDB.open("coldchain-offline", 1);
    r.onsuccess = () => ok(r.result); r.onerror = () => ko(r.error); });
  return await new Promise((ok, ko) => { const t = db.transaction("entries", "readonly");
    const q = t.objectStore("entries").getAll(); q.onsuccess = () => ok(q.result);
    q.onerror = () => ko(q.error); });
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def add_officer(runtime: Runtime, store_code: str = CENTRE) -> None:
    with runtime.uow() as uow:
        create_user(
            uow, username=OFFICER, password=OFFICER_PASSWORD, roles=[("centre_officer", store_code)]
        )
        uow.commit()


def fullest_balance(runtime: Runtime, store_id: int) -> tuple[int, int, int]:
    """(unit_id, lot_id, usable doses) of the centre's largest unquarantined balance."""
    with runtime.uow() as uow:
        rows = [
            (b.unit_id, b.lot_id, b.doses - b.quarantined_doses)
            for b in stock.store_balances(uow, store_id)
        ]
    return max(rows, key=lambda row: row[2])


def balance(runtime: Runtime, store_id: int, unit_id: int, lot_id: int) -> int:
    with runtime.uow() as uow:
        for row in stock.store_balances(uow, store_id):
            if row.unit_id == unit_id and row.lot_id == lot_id:
                return row.doses
    return 0


def movements_by_client_id(runtime: Runtime, client_ids: list[str]) -> dict[str, list[int]]:
    """Each client id -> the doses of every movement entry recorded under it."""
    found: dict[str, list[int]] = collections.defaultdict(list)
    with runtime.uow() as uow:
        rows = uow.session.scalars(select(Movement).where(Movement.client_id.in_(client_ids)))
        for movement in rows:
            found[movement.client_id].append(sum(e.doses for e in movement.entries))
    return dict(found)


def consumption_count(runtime: Runtime, store_id: int) -> int:
    with runtime.uow() as uow:
        rows = uow.session.scalars(
            select(Movement.id).where(Movement.store_id == store_id, Movement.kind == "consumption")
        )
        return len(list(rows))


class ServerProcess:
    """`coldchain serve --dev` on a fixed port, stopped and started again at will."""

    def __init__(self, database_url: str, port: int, workdir: Path):
        self.port, self.workdir = port, workdir
        self.env = {
            **os.environ,
            "COLDCHAIN_DATABASE_URL": database_url,
            "COLDCHAIN_WEB_SECRET_KEY": SECRET,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        coldchain = str(Path(sys.executable).with_name("coldchain"))
        self.process = subprocess.Popen(
            [coldchain, "serve", "--dev", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env,
            cwd=self.workdir,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "server.log", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.workdir / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(self.url + "/login", timeout=2) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                time.sleep(0.1)  # polling for the port to open, not timing a result
        raise AssertionError("the server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
        self.process = None


def _read_message(conn: socket.socket) -> bytes | None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


def _close_after(head: bytes) -> bytes:
    lines = [
        line
        for line in head.split(b"\r\n")
        if not line.lower().startswith((b"connection:", b"keep-alive:"))
    ]
    return b"\r\n".join([*lines, b"Connection: close"])


class LossyProxy:
    """A threaded HTTP proxy on 127.0.0.1: one request per connection; POSTs are dropped at
    random (seeded) before reaching the server, or their answer is dropped after it."""

    def __init__(self, upstream_port: int, seed: int, drop_request: float, drop_response: float):
        self.upstream_port = upstream_port
        self.rng, self.lock = random.Random(seed), threading.Lock()
        self.drop_request, self.drop_response = drop_request, drop_response
        self.counts: collections.Counter[str] = collections.Counter()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while self.running:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _fate(self, request: bytes) -> str:
        if not request.startswith(b"POST "):
            return "pass"
        with self.lock:
            roll = self.rng.random()
        if roll < self.drop_request:
            return "drop_request"
        return "drop_response" if roll < self.drop_request + self.drop_response else "pass"

    def _forward(self, request: bytes) -> bytes:
        head, _, body = request.partition(b"\r\n\r\n")
        with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=60) as up:
            up.sendall(_close_after(head) + b"\r\n\r\n" + body)
            chunks = []
            while chunk := up.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(60)
            try:
                request = _read_message(conn)
                if request is None:
                    return
                fate = self._fate(request)
                if fate == "drop_request":
                    self._count("dropped_request")
                    return
                response = self._forward(request)
                if fate == "drop_response":
                    self._count_lost(response)
                    return
                head, _, body = response.partition(b"\r\n\r\n")
                conn.sendall(_close_after(head) + b"\r\n\r\n" + body)
            except OSError:
                self._count("socket_error")

    def _count(self, what: str) -> None:
        with self.lock:
            self.counts[what] += 1

    def _count_lost(self, response: bytes) -> None:
        committed = response.startswith(b"HTTP/1.1 200") and (
            b'"recorded"' in response or b'class="ok"' in response
        )
        self._count("lost_after_commit" if committed else "dropped_response")

    def close(self) -> None:
        self.running = False
        self.server.close()


def entries_in_queue(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(READ_QUEUE)
