"""Hostile messages through the machine's Mosquitto into a running ingestion (issue 12, point 2).

Each hostile message is followed by a good reading: the good one must be stored (nothing stalls)
and the hostile one must leave a dead letter (nothing vanishes).
"""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from logistics.models.readings import DeadLetter, Reading
from tests.faults.corpus import CORPUS
from tests.integration.test_ingest import count, make_unit, new_sensor, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_every_hostile_message_is_dead_lettered_and_the_next_good_reading_stored(
    runtime, publisher, start_ingestor, prefix
):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    sensor_id = new_sensor(runtime, make_unit(runtime, "ILR-1"), since=now - dt.timedelta(days=30))
    ingestor = start_ingestor()
    for index, (kind, topic, payload) in enumerate(CORPUS):
        letters_before = count(runtime, DeadLetter)
        publisher.raw(f"{prefix}/{topic.format(s=sensor_id)}", payload)
        good_ts = now - dt.timedelta(minutes=index + 1)
        publisher.reading(sensor_id, good_ts, 5.0)
        stored = wait_until(
            lambda ts=good_ts: (
                count(runtime, Reading, Reading.sensor_id == sensor_id, Reading.ts == ts) == 1
            ),
            15,
        )
        assert stored, f"after {kind!r} the next good reading was not stored"
        assert count(runtime, DeadLetter) > letters_before, f"{kind!r} left no dead letter"
    assert all(thread.is_alive() for thread in ingestor.threads())
    assert ingestor.stats.unstorable == 0
    # Nothing hostile became a reading: only the good ones are there.
    assert count(runtime, Reading) == len(CORPUS)
    with runtime.uow() as uow:
        nul = uow.session.scalar(select(DeadLetter).where(DeadLetter.raw == b"\x00garbage"))
        assert nul is not None and nul.reason == "not_json"
        ghost = uow.session.scalar(
            select(func.count()).where(
                DeadLetter.reason == "unknown_sensor", DeadLetter.topic.like("%/status")
            )
        )
        assert ghost == 1
