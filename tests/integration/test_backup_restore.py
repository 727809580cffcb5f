"""Backup and restore (issue 16, docs/operations.md): a pg_dump of a running system, restored into a
fresh database, holds the same balances, open quarantine reviews and open alerts, and works on.
"""

from __future__ import annotations

import datetime as dt
import glob
import subprocess
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select, text

from logistics.db import make_engine, make_session_factory
from logistics.models.alerts import Alert, QuarantineReview
from logistics.models.readings import Reading
from logistics.models.stock import StockBalance
from logistics.runtime import Runtime
from logistics.services.demo import load_demo
from logistics.services.readings import record_readings
from logistics.services.sensors import register_sensor
from tests.support import services
from tests.support.alerts_fixtures import ingest, readings

pytestmark = pytest.mark.integration
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


def pg_tool(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    assert found, f"{name} not found under /usr/lib/postgresql/*/bin"
    return found[-1]


def libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def restored_url() -> Iterator[str]:
    url = services.create_database()
    yield url
    services.drop_database(url)


def _state(runtime: Runtime) -> dict[str, list[tuple]]:
    """What must survive a restore exactly: balances, open reviews, open alerts."""
    with runtime.uow() as uow:
        s = uow.session
        balances = s.execute(
            select(
                StockBalance.store_id, StockBalance.unit_id, StockBalance.lot_id, StockBalance.doses
            ).order_by(StockBalance.id)
        ).all()
        reviews = s.execute(
            select(
                QuarantineReview.id,
                QuarantineReview.unit_id,
                QuarantineReview.lot_id,
                QuarantineReview.doses,
                QuarantineReview.state,
            )
            .where(QuarantineReview.state == "pending")
            .order_by(QuarantineReview.id)
        ).all()
        alerts = s.execute(
            select(
                Alert.id,
                Alert.kind,
                Alert.subject_id,
                Alert.severity,
                Alert.state,
                Alert.opened_at,
                Alert.details,
            )
            .where(Alert.state != "resolved")
            .order_by(Alert.id)
        ).all()
    return {
        "balances": [tuple(r) for r in balances],
        "reviews": [tuple(r) for r in reviews],
        "alerts": [tuple(r) for r in alerts],
    }


def _running_system(runtime: Runtime) -> int:
    """The demo network and stock, a heat alarm holding an ILR's doses; returns that ILR."""
    with runtime.uow() as uow:
        ids = load_demo(uow, NOW)
        uow.commit()
    unit_id = ids["centre_ilrs"][0]["unit_id"]
    start = NOW - dt.timedelta(hours=12)
    with runtime.uow() as uow:
        for sensor in ("BK-1", "BK-2"):
            register_sensor(
                uow, sensor_id=sensor, unit_id=unit_id, valid_from=start, actor="test", now=NOW
            )
            uow.commit()
    # Eleven hours at +12 C: a heat alarm (WHO PQS E006: +8 C for 10 h) and a quarantine review.
    ingest(runtime, readings(start, (660, 12.0), sensor_id="BK-1"), NOW)
    return unit_id


def test_a_dump_of_a_running_system_restores_identically(runtime, settings, restored_url):
    unit_id = _running_system(runtime)
    before = _state(runtime)
    assert before["reviews"] and before["alerts"] and before["balances"]
    # Readings keep arriving while the dump runs (pg_dump reads one consistent snapshot).
    stop, written = threading.Event(), []

    def keep_ingesting() -> None:
        at = NOW - dt.timedelta(hours=1)
        while not stop.is_set():
            batch = readings(at, (10, 5.0), sensor_id="BK-2")
            with runtime.uow() as uow:
                record_readings(uow, batch, NOW)
                uow.commit()
            written.append(len(batch))
            at += dt.timedelta(minutes=10)

    writer = threading.Thread(target=keep_ingesting)
    writer.start()
    try:
        dump = subprocess.run(
            [pg_tool("pg_dump"), "--format=custom", "--no-owner", libpq_url(settings.database_url)],
            capture_output=True,
            check=True,
            timeout=300,
        ).stdout
    finally:
        stop.set()
        writer.join(30)
    assert written  # the system was writing while it was dumped
    subprocess.run(
        [
            pg_tool("pg_restore"),
            "--no-owner",
            "--exit-on-error",
            f"--dbname={libpq_url(restored_url)}",
        ],
        input=dump,
        capture_output=True,
        check=True,
        timeout=300,
    )
    engine = make_engine(restored_url)
    restored = Runtime(
        settings.replace(database_url=restored_url), engine, make_session_factory(engine)
    )
    try:
        assert _state(restored) == before
        with restored.uow() as uow:
            count = uow.session.scalar(text("SELECT count(*) FROM readings"))
            partitioned = uow.session.scalar(
                text(
                    "SELECT count(*) FROM pg_partitioned_table WHERE "
                    "partrelid = 'readings'::regclass"
                )
            )
            version = uow.session.scalar(text("SELECT version_num FROM alembic_version"))
        assert count >= 660 and partitioned == 1
        with runtime.uow() as uow:
            assert version == uow.session.scalar(text("SELECT version_num FROM alembic_version"))
        # The restored system works on: ingestion stores new readings once.
        late = readings(NOW + dt.timedelta(minutes=1), (2, 4.0), sensor_id="BK-1")
        with restored.uow() as uow:
            record_readings(uow, late, NOW + dt.timedelta(minutes=3))
            record_readings(uow, late, NOW + dt.timedelta(minutes=3))
            uow.commit()
        with restored.uow() as uow:
            new = uow.session.scalars(select(Reading.unit_id).where(Reading.ts > NOW)).all()
        assert new == [unit_id, unit_id]
    finally:
        engine.dispose()
    assert urlsplit(restored_url).path != urlsplit(settings.database_url).path
