"""Benchmark of the monthly paperwork on PostgreSQL (issue 19), through the service functions.

A district with N centres; each centre receives stock and records a month of daily consumption
and a few discards through the ledger's own use cases, and one ILR has a month of readings every
minute (44,640). Measured: the median time to build the district's monthly stock report over its
subtree (JSON document, and PDF), and a unit's monthly temperature log (JSON document, and PDF).

Everything runs on 127.0.0.1 in a fresh database, dropped at the end.
Usage: python benchmarks/paperwork.py [--centres 20] [--repeat 5]
The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import create_database, drop_database, log  # noqa: E402

from logistics.config import load_settings  # noqa: E402
from logistics.db import UnitOfWork, make_engine, make_session_factory  # noqa: E402
from logistics.migrate import upgrade  # noqa: E402
from logistics.models.readings import Reading, Sensor, SensorAssignment  # noqa: E402
from logistics.services import catalog, documents, reports, stock  # noqa: E402
from logistics.services.reference import seed_reference_data  # noqa: E402

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
MONTH = dt.date(2026, 5, 1)
NOW = dt.datetime(2026, 7, 1, tzinfo=dt.UTC)


def _rec(at: dt.datetime) -> stock.Recorded:
    return stock.recorded("bench", at, uuid.uuid4().hex, "Asia/Kolkata", now=NOW)


def _centre_month(uow: UnitOfWork, centre: int, unit: int, lot: int) -> int:
    stock.receive_stock(
        uow,
        store_id=centre,
        unit_id=unit,
        doses=20_000,
        rec=_rec(dt.datetime(2026, 4, 28, 10, tzinfo=IST)),
        lot={"lot_id": lot},
    )
    moves = 1
    for day in range(1, 32):
        at = dt.datetime(2026, 5, day, 12, tzinfo=IST)
        stock.record_consumption(
            uow,
            store_id=centre,
            unit_id=unit,
            lot_id=lot,
            doses=90,
            actor="bench",
            occurred_at=at,
            client_id=uuid.uuid4().hex,
        )
        moves += 1
        if day % 7 == 0:
            stock.record_wastage(
                uow,
                store_id=centre,
                unit_id=unit,
                lot_id=lot,
                doses=5,
                reason="open_vial",
                actor="bench",
                occurred_at=at,
                client_id=uuid.uuid4().hex,
            )
            moves += 1
    uow.commit()
    return moves


def build(factory, centres: int) -> tuple[int, int, int]:  # noqa: ANN001
    with UnitOfWork(factory) as uow:
        seed_reference_data(uow)
        uow.commit()
        state = catalog.create_store(uow, code="S", name="State", level_code="state")
        uow.commit()
        district = catalog.create_store(
            uow, code="D", name="District", level_code="district", parent_id=state.id
        )
        uow.commit()
        product = catalog.create_product(
            uow, code="CS", name="Covishield", doses_per_vial=10, min_temp_c=2, max_temp_c=8
        )
        uow.commit()
        lot = catalog.create_lot(
            uow,
            {
                "product_id": product.id,
                "lot_number": "L1",
                "manufacturer": "SII",
                "expiry_date": dt.date(2027, 12, 31),
            },
        )
        uow.commit()
        units, moves = [], 0
        for n in range(centres):
            centre = catalog.create_store(
                uow, code=f"C{n}", name=f"Centre {n}", level_code="centre", parent_id=district.id
            )
            uow.commit()
            units.append(
                catalog.create_unit(
                    uow, store_id=centre.id, code="ILR-1", kind="ilr", min_temp_c=2, max_temp_c=8
                ).id
            )
            uow.commit()
            moves += _centre_month(uow, centre.id, units[-1], lot.id)
        return district.id, units[0], moves


def add_readings(factory, unit: int) -> int:  # noqa: ANN001
    start = dt.datetime(2026, 4, 30, 18, 30, tzinfo=dt.UTC)
    with UnitOfWork(factory) as uow:
        uow.session.add(Sensor(sensor_id="B-1", expected_interval_s=60, registered_at=start))
        uow.session.flush()
        uow.session.add(SensorAssignment(sensor_id="B-1", unit_id=unit, valid_from=start))
        rows = [
            {
                "sensor_id": "B-1",
                "unit_id": unit,
                "ts": start + dt.timedelta(minutes=m),
                "temp_c": 5.0 + (m % 97) / 20,
                "received_at": start + dt.timedelta(minutes=m),
            }
            for m in range(31 * 1440)
        ]
        uow.session.execute(Reading.__table__.insert(), rows)
        uow.commit()
    return len(rows)


def median_ms(fn, repeat: int) -> float:  # noqa: ANN001
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--centres", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    url = create_database()
    engine = make_engine(url)
    try:
        upgrade(url)
        factory = make_session_factory(engine)
        settings = load_settings({"database_url": url})
        log(f"building {args.centres} centres' month through the ledger")
        district, unit, moves = build(factory, args.centres)
        readings = add_readings(factory, unit)

        def stock_report(uow: UnitOfWork) -> reports.StockReport:
            return reports.monthly_stock_report(
                uow,
                store_id=district,
                month=MONTH,
                subtree=True,
                timezone=settings.site_timezone,
                now=NOW,
            )

        def temperature_log(uow: UnitOfWork) -> reports.TemperatureLog:
            return reports.temperature_log(uow, settings, unit_id=unit, month=MONTH, now=NOW)

        # Rendered inside the unit of work, as a request does (the rows stay loaded).
        with UnitOfWork(factory) as uow:
            report = stock_report(uow)
            figures = {
                "report_lines": len(report.lines),
                "stock_report_ms": median_ms(
                    lambda: reports.stock_report_document(stock_report(uow)), args.repeat
                ),
                "stock_report_pdf_ms": median_ms(
                    lambda: documents.stock_report_pdf(report), args.repeat
                ),
            }
        with UnitOfWork(factory) as uow:
            month_log = temperature_log(uow)
            figures |= {
                "temperature_log_ms": median_ms(lambda: temperature_log(uow), args.repeat),
                "temperature_log_pdf_ms": median_ms(
                    lambda: documents.temperature_log_pdf(month_log), args.repeat
                ),
            }
        print(
            json.dumps(
                {
                    "benchmark": "paperwork",
                    "centres": args.centres,
                    "movements": moves,
                    "readings": readings,
                    **figures,
                }
            )
        )
    finally:
        engine.dispose()
        drop_database(url)


if __name__ == "__main__":
    main()
