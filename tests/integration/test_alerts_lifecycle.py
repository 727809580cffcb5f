"""Alert lifecycle on real PostgreSQL: one open alert per subject and kind, ack, resolve."""

from __future__ import annotations

import datetime as dt

import pytest

from logistics.domain.errors import Conflict, Invalid
from logistics.models.alerts import Alert
from logistics.services.alerts import (
    AlertFilter,
    acknowledge_alert,
    clear_alert,
    list_alerts,
    raise_alert,
    resolve_alert,
)
from tests.support.alerts_fixtures import make_tree

pytestmark = pytest.mark.integration
NOW = dt.datetime(2021, 1, 10, 2, 0, tzinfo=dt.UTC)


def _raise(uow, store_id, subject="7", kind="sensor_silent", details=None):
    return raise_alert(
        uow,
        kind=kind,
        subject_type="sensor",
        subject_id=subject,
        store_id=store_id,
        severity="alarm",
        message="sensor silent",
        details=details or {},
        now=NOW,
    )


def test_raise_is_idempotent_and_updates_details(uow):
    tree = make_tree(uow)
    first = _raise(uow, tree.centre.id, details={"n": 1})
    second = _raise(uow, tree.centre.id, details={"n": 2})
    uow.commit()
    assert first.id == second.id
    assert uow.session.get(Alert, first.id).details == {"n": 2}
    assert uow.session.query(Alert).count() == 1


def test_clear_resolves_and_a_new_alert_opens_after(uow):
    tree = make_tree(uow)
    first = _raise(uow, tree.centre.id)
    resolved = clear_alert(
        uow, kind="sensor_silent", subject_type="sensor", subject_id="7", now=NOW
    )
    assert resolved.state == "resolved" and resolved.resolved_by == "system"
    again = _raise(uow, tree.centre.id)
    uow.commit()
    assert again.id != first.id
    assert clear_alert(uow, kind="other", subject_type="sensor", subject_id="7", now=NOW) is None


def test_acknowledge_needs_a_comment_and_resolve_by_hand(uow):
    tree = make_tree(uow)
    alert = _raise(uow, tree.centre.id)
    uow.commit()
    with pytest.raises(Invalid):
        acknowledge_alert(uow, alert_id=alert.id, comment=" ", actor="asha", now=NOW)
        uow.commit()
    acknowledge_alert(uow, alert_id=alert.id, comment="going to the ILR", actor="asha", now=NOW)
    uow.commit()
    with pytest.raises(Conflict):
        acknowledge_alert(uow, alert_id=alert.id, comment="again", actor="asha", now=NOW)
        uow.commit()
    done = resolve_alert(uow, alert_id=alert.id, comment="sensor replaced", actor="asha", now=NOW)
    uow.commit()
    assert done.state == "resolved" and done.acknowledged_by == "asha"
    assert [e.event for e in done.events] == ["opened", "acknowledged", "resolved"]


def test_list_by_store_subtree(uow):
    tree = make_tree(uow)
    _raise(uow, tree.centre.id, subject="1")
    _raise(uow, tree.other_centre.id, subject="2")
    uow.commit()
    district = list_alerts(uow, AlertFilter(store_id=tree.district.id))
    centre = list_alerts(uow, AlertFilter(store_id=tree.centre.id))
    assert {a.subject_id for a in district} == {"1"}
    assert {a.subject_id for a in centre} == {"1"}
    assert len(list_alerts(uow, AlertFilter(store_id=tree.state.id))) == 2
