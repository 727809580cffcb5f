"""Held doses are what the pending quarantine reviews hold (issue 11, point 1), on PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from logistics.models.alerts import QuarantineReview
from logistics.models.stock import Movement, StockBalance
from logistics.services.quarantine import discard_review, release_review
from logistics.services.stock import receive_stock, recorded
from tests.support.alerts_fixtures import add_sensor, ingest, make_tree, readings

pytestmark = pytest.mark.integration
T0 = dt.datetime(2021, 1, 9, 12, 0, tzinfo=dt.UTC)
H = dt.timedelta(hours=1)


@pytest.fixture
def tree(runtime):
    with runtime.uow() as uow:
        tree = make_tree(uow, doses=0)
        uow.session.query(StockBalance).delete()
        add_sensor(uow, tree.ilr.id)
        uow.commit()
    receive(runtime, tree, 500, T0 - H)
    return tree


def receive(runtime, tree, doses, at, client_id=None):
    with runtime.uow() as uow:
        receive_stock(
            uow,
            store_id=tree.centre.id,
            unit_id=tree.ilr.id,
            doses=doses,
            rec=recorded("asha", at, client_id, now=at + H),
            lot={"lot_id": tree.lot.id},
        )
        uow.commit()


def heat_then_freeze(runtime):
    """A heat alarm (10 h at +9 C), then a freeze alarm (61 min at -1 C) in one unit."""
    ingest(runtime, readings(T0, (30, 5.0), (601, 9.0), (62, -1.0)), T0 + 12 * H)


def state(runtime):
    with runtime.uow() as uow:
        balance = uow.session.scalars(select(StockBalance)).one()
        reviews = {
            r.reason: (r.state, r.doses)
            for r in uow.session.scalars(select(QuarantineReview).order_by(QuarantineReview.id))
        }
        wastage = uow.session.scalar(
            select(func.count()).select_from(Movement).where(Movement.kind == "wastage")
        )
        return (balance.doses, balance.quarantined_doses), reviews, wastage


def review_id(runtime, reason):
    with runtime.uow() as uow:
        return uow.session.scalars(
            select(QuarantineReview.id).where(QuarantineReview.reason == reason)
        ).one()


def decide(runtime, reason, how, at):
    with runtime.uow() as uow:
        how(uow, review_id=review_id(runtime, reason), comment="checked", actor="asha", now=at)
        uow.commit()


def test_releasing_the_heat_review_leaves_the_frozen_doses_held(runtime, tree):
    heat_then_freeze(runtime)
    assert state(runtime) == (
        (500, 500),
        {"heat_exposure": ("pending", 500), "frozen": ("pending", 500)},
        0,
    )
    decide(runtime, "heat_exposure", release_review, T0 + 13 * H)
    assert state(runtime) == (
        (500, 500),
        {"heat_exposure": ("released", 500), "frozen": ("pending", 500)},
        0,
    )


def test_releasing_both_reviews_frees_the_doses(runtime, tree):
    heat_then_freeze(runtime)
    decide(runtime, "frozen", release_review, T0 + 13 * H)
    assert state(runtime)[0] == (500, 500)
    decide(runtime, "heat_exposure", release_review, T0 + 13 * H)
    assert state(runtime)[0] == (500, 0)


def test_a_discard_removes_the_doses_through_the_ledger_once(runtime, tree):
    heat_then_freeze(runtime)
    decide(runtime, "frozen", discard_review, T0 + 13 * H)
    # The heat review held the same doses: closed with them, no second wastage.
    assert state(runtime) == (
        (0, 0),
        {"heat_exposure": ("discarded", 0), "frozen": ("discarded", 500)},
        1,
    )


def test_doses_arriving_during_an_open_alarm_are_held_too(runtime, tree):
    ingest(runtime, readings(T0, (30, 5.0), (601, 9.0)), T0 + 11 * H)
    assert state(runtime)[0] == (500, 500)
    receive(runtime, tree, 200, T0 + 11 * H)
    assert state(runtime) == ((700, 700), {"heat_exposure": ("pending", 700)}, 0)
    # Once the alarm is over, new doses are usable; the held ones stay held.
    ingest(runtime, readings(T0 + 631 * dt.timedelta(minutes=1), (30, 5.0)), T0 + 12 * H)
    receive(runtime, tree, 100, T0 + 12 * H)
    assert state(runtime) == ((800, 700), {"heat_exposure": ("pending", 700)}, 0)
    decide(runtime, "heat_exposure", discard_review, T0 + 13 * H)
    assert state(runtime) == ((100, 0), {"heat_exposure": ("discarded", 700)}, 1)


def test_arrivals_after_the_lot_was_released_during_the_alarm_get_a_review(runtime, tree):
    ingest(runtime, readings(T0, (30, 5.0), (601, 9.0)), T0 + 11 * H)
    decide(runtime, "heat_exposure", release_review, T0 + 11 * H)
    assert state(runtime)[0] == (500, 0)
    receive(runtime, tree, 50, T0 + 11 * H)
    with runtime.uow() as uow:
        reviews = [
            (r.state, r.doses)
            for r in uow.session.scalars(select(QuarantineReview).order_by(QuarantineReview.id))
        ]
    assert reviews == [("released", 500), ("pending", 50)]
    assert state(runtime)[0] == (550, 50)


def test_a_reversed_discard_brings_the_doses_back_held(runtime, tree):
    from logistics.services.stock import reverse_movement

    heat_then_freeze(runtime)
    decide(runtime, "frozen", discard_review, T0 + 13 * H)
    with runtime.uow() as uow:
        wastage = uow.session.scalars(select(Movement).where(Movement.kind == "wastage")).one()
        reverse_movement(uow, movement_id=wastage.id, actor="asha", client_id=None)
        uow.commit()
    # The frozen doses are back in the unit, held again until an officer decides once more.
    doses, reviews, _ = state(runtime)
    assert doses == (500, 500)
    assert reviews["frozen"] == ("pending", 500)
