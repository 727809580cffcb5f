"""Commands of the sensors package, added to `coldchain`.

ingest, evaluate, simulate, simulate-trip, broker, demo.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import click

from logistics.config import load_settings
from logistics.runtime import Runtime

log = logging.getLogger(__name__)


def register(cli: click.Group) -> None:
    """Add the sensors commands to the `coldchain` command group."""
    for command in (ingest, evaluate, simulate, simulate_trip, broker, demo):
        cli.add_command(command)


@contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by Ctrl-C or SIGTERM, so every part can stop cleanly."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# sysexits.h EX_SOFTWARE: an internal error; supervisors restart the process.
EXIT_THREAD_DIED = 70


@contextmanager
def exit_when_a_thread_dies() -> Iterator[None]:
    """Turn ThreadDied into a non-zero exit (after the callers' clean-up has run)."""
    from logistics.runtime import ThreadDied

    try:
        yield
    except ThreadDied as exc:
        click.echo(f"a thread died ({exc}); exiting with {EXIT_THREAD_DIED}", err=True)
        raise SystemExit(EXIT_THREAD_DIED) from exc


def _logging(verbose: bool) -> None:
    from logistics.logs import configure_logging

    # Text or JSON lines (logging.format); libraries' start-up chatter stays quiet.
    configure_logging(load_settings(), verbose)


@click.command("ingest")
@click.option(
    "--client-id",
    default=None,
    help="MQTT client id (default: mqtt.client_id); stable per process.",
)
@click.option(
    "--evaluate",
    "with_evaluator",
    is_flag=True,
    help="Also evaluate excursions in this process (small sites; else run `coldchain evaluate`).",
)
@click.option("--verbose", is_flag=True)
def ingest(client_id: str | None, with_evaluator: bool, verbose: bool) -> None:
    """Take readings from the broker (mqtt.url) into the database until stopped."""
    from logistics.services.evaluation import Evaluator
    from sensors.ingest import run_until_stopped

    _logging(verbose)
    runtime = Runtime.from_settings(load_settings())
    evaluator = Evaluator(runtime).start() if with_evaluator else None
    try:
        with stop_on_signals() as stop, exit_when_a_thread_dies():
            stats = run_until_stopped(
                runtime,
                stop,
                client_id,
                evaluator.threads if evaluator else list,
                metrics_port=runtime.settings.metrics_ingest_port,
            )
    finally:
        if evaluator is not None:
            evaluator.stop()
    click.echo(f"stopped: {stats}")
    if evaluator is not None:
        click.echo(f"evaluator: {evaluator.stats}")


@click.command("evaluate")
@click.option("--verbose", is_flag=True)
def evaluate(verbose: bool) -> None:
    """Evaluate excursions of the units the ingestion touched, until stopped (run one or more)."""
    from logistics.services.evaluation import run_until_stopped

    _logging(verbose)
    runtime = Runtime.from_settings(load_settings())
    with stop_on_signals() as stop, exit_when_a_thread_dies():
        stats = run_until_stopped(runtime, stop, runtime.settings.metrics_evaluate_port)
    click.echo(f"stopped: {stats}")


@click.command("simulate")
@click.option(
    "--sensors", "count", default=10, show_default=True, help="Number of simulated loggers."
)
@click.option(
    "--prefix", default="SIM", show_default=True, help="Sensor id prefix (ids are PREFIX001...)."
)
@click.option(
    "--interval-s", default=60, show_default=True, help="Seconds between readings of a logger."
)
@click.option(
    "--speedup", default=60.0, show_default=True, help="Simulated seconds per wall-clock second."
)
@click.option(
    "--history-h", default=12.0, show_default=True, help="Start the traces this many hours ago."
)
@click.option("--duration-s", default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
@click.option("--url", default=None, help="Broker URL (default: mqtt.url).")
def simulate(
    count: int,
    prefix: str,
    interval_s: int,
    speedup: float,
    history_h: float,
    duration_s: float,
    url: str | None,
) -> None:
    """Publish ILR traces: door spikes, a power cut, a freeze, a silent logger, a backlog."""
    from sensors.mqtt import parse_broker_url
    from sensors.simulate import Simulator, SimulatorClock, publisher
    from sensors.traces import plans_for

    _logging(False)
    settings = load_settings()
    if not (url or settings.mqtt_url):
        raise click.UsageError("no broker: pass --url or set mqtt.url (COLDCHAIN_MQTT_URL)")
    address = parse_broker_url(
        url or settings.mqtt_url, settings.mqtt_username, settings.mqtt_password
    )
    now = dt.datetime.now(dt.UTC)
    clock = SimulatorClock(now - dt.timedelta(hours=history_h), now, speedup)
    client = publisher(address)
    simulator = Simulator(
        client, plans_for(prefix, count, interval_s), clock, settings.mqtt_topic_prefix
    )
    with stop_on_signals() as stop:
        if duration_s:
            threading.Timer(duration_s, stop.set).start()
        simulator.run(stop)
    client.disconnect()
    click.echo(f"published {simulator.published} messages")


@click.command("simulate-trip")
@click.option("--sensor", "sensor_id", required=True, help="The carrier's logger id.")
@click.option(
    "--scenario", type=click.Choice(["on_time", "freeze"]), default="on_time", show_default=True
)
@click.option("--duration-min", default=240, show_default=True, help="Length of the trip.")
@click.option("--ended-ago-min", default=0, show_default=True, help="The trip ended this long ago.")
@click.option("--interval-s", default=60, show_default=True, help="Seconds between readings.")
@click.option("--live", is_flag=True, help="One reading a message (default: one upload after).")
@click.option(
    "--issue",
    "issue_route",
    default=None,
    metavar="FROM:TO:LOT_ID:DOSES:UNIT",
    help="Also issue in the logger's carrier and receive into UNIT at the end "
    "(store codes, lot id, doses, the receiver's unit code).",
)
@click.option("--url", default=None, help="Broker URL (default: mqtt.url).")
def simulate_trip(
    sensor_id: str,
    scenario: str,
    duration_min: int,
    ended_ago_min: int,
    interval_s: int,
    live: bool,
    issue_route: str | None,
    url: str | None,
) -> None:
    """Run a carrier's trip (issue 18): on time, or with a freeze on the road."""
    from sensors.mqtt import parse_broker_url
    from sensors.simulate import publish_chunked, publisher
    from sensors.trip import Shipment, TripPlan, run_trip

    _logging(False)
    settings = load_settings()
    if not (url or settings.mqtt_url):
        raise click.UsageError("no broker: pass --url or set mqtt.url (COLDCHAIN_MQTT_URL)")
    shipment = None
    if issue_route:
        parts = issue_route.split(":")
        if len(parts) != 5:
            raise click.UsageError("--issue FROM:TO:LOT_ID:DOSES:UNIT")
        shipment = Shipment(parts[0], parts[1], int(parts[2]), int(parts[3]), parts[4])
    address = parse_broker_url(
        url or settings.mqtt_url, settings.mqtt_username, settings.mqtt_password
    )
    end = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=ended_ago_min)
    plan = TripPlan(
        sensor_id, end - dt.timedelta(minutes=duration_min), duration_min, scenario, interval_s
    )
    client = publisher(address)
    try:
        done = run_trip(
            Runtime.from_settings(settings) if shipment else None,
            lambda items: publish_chunked(client, items),
            plan,
            shipment,
            settings.mqtt_topic_prefix,
            live,
        )
    finally:
        client.disconnect()
    click.echo(f"trip {scenario}: {done}")


@click.command("broker")
def broker() -> None:
    """Run the embedded MQTT broker (amqtt) in the foreground; docs/sensors.md: its limits."""
    from sensors.broker import EmbeddedBroker, new_password

    _logging(False)
    settings = load_settings()
    password = settings.broker_ingest_password or new_password()
    embedded = EmbeddedBroker(
        settings.broker_host,
        settings.broker_port,
        {settings.broker_ingest_username: password},
        settings.broker_password_file,
    )
    embedded.start()
    if not settings.broker_ingest_password:
        click.echo(
            f"ingestion account: {settings.broker_ingest_username} / {password} (made for this run)"
        )
    with stop_on_signals() as stop:
        stop.wait()
    embedded.stop()


@click.command("demo")
@click.option(
    "--sensors", "count", default=8, show_default=True, help="Number of simulated loggers."
)
@click.option(
    "--speedup", default=120.0, show_default=True, help="Simulated seconds per wall-clock second."
)
@click.option(
    "--history-h", default=12.0, show_default=True, help="Simulated hours replayed at start."
)
@click.option("--port", default=None, type=int, help="HTTP port (default: http.port).")
@click.option("--duration-s", default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
def demo(count: int, speedup: float, history_h: float, port: int | None, duration_s: float) -> None:
    """Run everything: schema, demo data, broker, ingestion, simulator, web server."""
    from sensors.demo import Demo

    _logging(False)
    settings = load_settings()
    with stop_on_signals() as stop:
        if duration_s:
            threading.Timer(duration_s, stop.set).start()
        Demo(settings, count=count, speedup=speedup, history_h=history_h, http_port=port).run(stop)
