"""The overview's tiles: each child store's worst open stock and temperature alert, and a count."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from logistics.models.alerts import Alert
from logistics.services.alerts import raise_alert
from tests.support.alerts_fixtures import make_tree

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 12, 1, 6, tzinfo=dt.UTC)


def _alert(uow, store, kind: str, severity: str, subject: str) -> None:
    raise_alert(
        uow,
        kind=kind,
        subject_type="store",
        subject_id=subject,
        store_id=store.id,
        severity=severity,
        message=kind,
        details={},
        now=NOW,
    )


def test_each_tile_shows_the_worst_alert_of_its_subtree(runtime, person):
    with runtime.uow() as uow:
        tree = make_tree(uow)
        # District AS-CAC: a heat alarm and a below-minimum warning at its centre, a low battery
        # warning at the district store itself. District AS-KAM: an expiring lot at its centre.
        _alert(uow, tree.centre, "heat_alarm", "alarm", "1")
        _alert(uow, tree.centre, "below_min", "warning", "2")
        _alert(uow, tree.district, "sensor_low_battery", "warning", "3")
        _alert(uow, tree.other_centre, "lot_expiring", "warning", "4")
        _alert(uow, tree.state, "stock_out", "alarm", "5")  # the state's own: on no tile
        # Two more heat alarms at the centre (other subjects) and a resolved one: 2 more, not 3.
        _alert(uow, tree.centre, "heat_alarm", "alarm", "6")
        _alert(uow, tree.centre, "heat_alarm", "alarm", "7")
        _alert(uow, tree.centre, "heat_alarm", "alarm", "8")
        uow.session.flush()
        resolved = uow.session.scalars(
            select(Alert).where(Alert.subject_id == "8", Alert.kind == "heat_alarm")
        ).one()
        resolved.state = "resolved"
        uow.commit()
        state, names = tree.state.id, (tree.district.name, tree.other_district.name)
    page = person("state_officer", state).get(f"/overview/{state}").get_data(as_text=True)
    tiles = {
        re.search(r"<strong>(.*?)</strong>", tile)[1]: re.findall(r'class="st st-(\w+)"', tile)
        + re.findall(r"(\d+) open alerts", tile)
        for tile in re.findall(r'<li class="tile">(.*?)</li>', page, re.S)
    }
    assert tiles == {
        names[0]: ["warning", "alarm", "5"],  # stock, temperature, open alerts
        names[1]: ["warning", "ok", "1"],
    }
