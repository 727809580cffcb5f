"""`coldchain demo`: the whole service in one process, each part in its own thread.

Order of start: schema, demo data and sensors, embedded broker (unless mqtt.url is set),
excursion evaluator, ingestion, simulator, scheduler, web server.
Ctrl-C stops them in reverse order; the ingestion finishes its batch and acknowledges it first.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any

from sqlalchemy import select
from werkzeug.serving import make_server

from logistics.config import Settings
from logistics.db import UnitOfWork
from logistics.models.catalog import StorageUnit, Store
from logistics.models.readings import Sensor
from logistics.runtime import Runtime
from logistics.services.reference import seed_reference_data
from logistics.services.sensors import register_sensor

log = logging.getLogger(__name__)
SIMULATOR_USER = "coldchain-simulator"


def prepare_schema(runtime: Runtime) -> None:
    """Bring the schema up to date with the migrations."""
    from logistics.migrate import upgrade

    upgrade(runtime.settings.database_url)


def demo_units(uow: UnitOfWork, now: dt.datetime) -> list[int]:
    """Load the ledger's demo data when it offers some, and return the ids of the centres' ILRs."""
    try:
        from logistics.services.demo import load_demo
    except ImportError:
        load_demo = None
    loaded = load_demo(uow, now) if load_demo else None
    uow.commit()
    if isinstance(loaded, dict) and loaded.get("centre_ilrs"):
        return [int(ilr["unit_id"]) for ilr in loaded["centre_ilrs"]]
    query = select(StorageUnit.id).where(StorageUnit.kind == "ilr", StorageUnit.active.is_(True))
    ids = list(uow.session.scalars(query.order_by(StorageUnit.id)))
    return ids or [_minimal_centre(uow)]


def _minimal_centre(uow: UnitOfWork) -> int:
    """A state store with one ILR, for a database where no demo data exists."""
    store = Store(code="DEMO-CENTRE", name="Demo cold chain point", level_code="centre", path="/")
    uow.session.add(store)
    uow.session.flush()
    store.path = f"/{store.id}/"
    unit = StorageUnit(store_id=store.id, code="ILR-1", kind="ilr", min_temp_c=2.0, max_temp_c=8.0)
    uow.session.add(unit)
    uow.commit()
    return unit.id


def register_demo_sensors(
    uow: UnitOfWork,
    sensor_ids: list[str],
    unit_ids: list[int],
    since: dt.datetime,
    now: dt.datetime,
) -> None:
    """Put the simulated loggers in the demo ILRs, one per unit round-robin; skip known ones."""
    known = set(
        uow.session.scalars(select(Sensor.sensor_id).where(Sensor.sensor_id.in_(sensor_ids)))
    )
    for index, sensor_id in enumerate(sensor_ids):
        if sensor_id not in known:
            register_sensor(
                uow,
                sensor_id=sensor_id,
                unit_id=unit_ids[index % len(unit_ids)],
                valid_from=since,
                actor="demo",
                now=now,
                expected_interval_s=60,
            )
            uow.commit()


def demo_credentials(uow: UnitOfWork) -> dict[str, dict[str, Any]]:
    """Users of the demo with passwords made for this run (none is stored in the repository)."""
    from logistics.services.auth import ensure_demo_credentials

    result = ensure_demo_credentials(uow)
    uow.commit()
    return result


class Demo:
    """Starts and stops every part of the one-command run."""

    def __init__(
        self,
        settings: Settings,
        *,
        count: int,
        speedup: float,
        history_h: float,
        http_port: int | None = None,
    ):
        self.settings, self.count, self.speedup, self.history_h = (
            settings,
            count,
            speedup,
            history_h,
        )
        self.http_port = http_port or settings.http_port
        self._stoppers: list[Any] = []
        self.credentials: dict[str, dict[str, Any]] = {}

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set, then stop every part in reverse order."""
        try:
            self._start_all(stop)
            base_url = f"http://{self.settings.http_host}:{self.http_port}"
            if self.credentials:  # the web app and its users first: what a newcomer opens
                from logistics.auth.cli import demo_login_text

                print(demo_login_text(self.credentials, base_url), flush=True)
            log.info("demo running; API documentation at %s/api/docs  (Ctrl-C to stop)", base_url)
            stop.wait()
        finally:
            for stopper in reversed(self._stoppers):
                try:
                    stopper()
                except Exception:
                    log.exception("while stopping")

    def _start_all(self, stop: threading.Event) -> None:
        from sensors.traces import plans_for

        now = dt.datetime.now(dt.UTC)
        plans = plans_for("SIM", self.count)
        runtime = Runtime.from_settings(self.settings)
        self._stoppers.append(runtime.close)
        prepare_schema(runtime)
        with runtime.uow() as uow:
            seed_reference_data(uow)
            uow.commit()
            units = demo_units(uow, now)
            register_demo_sensors(
                uow,
                [p.sensor_id for p in plans],
                units,
                now - dt.timedelta(hours=self.history_h + 1),
                now,
            )
            self.credentials = demo_credentials(uow)
        settings, publisher_address = self._broker()
        runtime = Runtime(settings, runtime.engine, runtime.session_factory)
        self._ingestion(runtime)
        self._simulator(publisher_address, plans, now, stop)
        self._scheduler(runtime)
        self._web(runtime)

    def _broker(self) -> tuple[Settings, Any]:
        from sensors.broker import EmbeddedBroker, new_password
        from sensors.mqtt import BrokerAddress, parse_broker_url

        if self.settings.mqtt_url:
            address = parse_broker_url(
                self.settings.mqtt_url, self.settings.mqtt_username, self.settings.mqtt_password
            )
            return self.settings, address
        s = self.settings
        ingest_password, simulator_password = (
            s.broker_ingest_password or new_password(),
            new_password(),
        )
        embedded = EmbeddedBroker(
            s.broker_host,
            s.broker_port,
            {s.broker_ingest_username: ingest_password, SIMULATOR_USER: simulator_password},
            s.broker_password_file,
        )
        embedded.start()
        self._stoppers.append(embedded.stop)
        url = f"mqtt://{s.broker_host}:{s.broker_port}"
        return (
            demo_settings(s, url, s.broker_ingest_username, ingest_password),
            BrokerAddress(s.broker_host, s.broker_port, SIMULATOR_USER, simulator_password),
        )

    def _ingestion(self, runtime: Runtime) -> None:
        from logistics.services.evaluation import Evaluator
        from sensors.ingest import Ingestor

        evaluator = Evaluator(runtime).start()
        self._stoppers.append(evaluator.stop)
        ingestor = Ingestor(runtime)
        ingestor.start()
        self._stoppers.append(ingestor.stop)

    def _simulator(
        self, address: Any, plans: list[Any], now: dt.datetime, stop: threading.Event
    ) -> None:
        from sensors.simulate import Simulator, SimulatorClock, publisher

        client = publisher(address)
        clock = SimulatorClock(now - dt.timedelta(hours=self.history_h), now, self.speedup)
        simulator = Simulator(client, plans, clock, self.settings.mqtt_topic_prefix)
        sim_stop = threading.Event()
        thread = threading.Thread(
            target=simulator.run, args=(sim_stop,), name="simulator", daemon=True
        )
        thread.start()
        self._stoppers.append(
            lambda: (sim_stop.set(), thread.join(30), client.disconnect(), client.loop_stop())
        )

    def _scheduler(self, runtime: Runtime) -> None:
        from logistics.services.scheduler import Scheduler, build_apscheduler

        scheduler = Scheduler(runtime)
        aps = build_apscheduler(scheduler, blocking=False)
        aps.start()
        self._stoppers.append(lambda: (aps.shutdown(wait=False), scheduler.stop()))

    def _web(self, runtime: Runtime) -> None:
        from logistics.app import create_app

        server = make_server(
            self.settings.http_host, self.http_port, create_app(runtime=runtime), threaded=True
        )
        thread = threading.Thread(target=server.serve_forever, name="web", daemon=True)
        thread.start()
        self._stoppers.append(lambda: (server.shutdown(), thread.join(10)))


def demo_settings(settings: Settings, url: str, username: str, password: str) -> Settings:
    """Settings pointing the ingestion at the embedded broker (which speaks MQTT 3.1.1 only)."""
    return settings.replace(
        mqtt_url=url, mqtt_username=username, mqtt_password=password, mqtt_protocol="3.1.1"
    )
