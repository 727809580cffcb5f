"""State machine over alarms, receipts, consumptions, releases and discards (issue 11, point 1).

After every step the held doses of each (unit, lot) must equal what the pending reviews cover.
The expectation is computed by the model below from the rules as the issue states them, never by
the code under test:
- an alarm holds every dose of each lot in the unit (one pending review per lot with doses);
- doses arriving while an alarm is open join that alarm's pending review of the lot (or start one);
- the held doses are the largest pending review (the reviews hold the same doses, they overlap);
- a release frees only what no other pending review holds;
- a discard takes the review's doses out of the unit once; the other reviews keep at most what
  stays held, and those left holding nothing are closed as discarded with no second wastage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import func, select

from logistics.domain.errors import InsufficientStock
from logistics.models.alerts import Excursion, QuarantineReview
from logistics.models.catalog import Lot
from logistics.models.stock import Movement, StockBalance
from logistics.services import stock
from logistics.services.quarantine import discard_review, quarantine_unit, release_review
from logistics.services.reference import seed_reference_data
from tests.support.alerts_fixtures import make_tree
from tests.support.schema import empty_tables

pytestmark = pytest.mark.integration
T0 = dt.datetime(2021, 1, 9, 12, 0, tzinfo=dt.UTC)


@dataclasses.dataclass
class ModelReview:
    excursion_id: int
    lot: int  # index into the machine's lots
    doses: int
    state: str = "pending"


def _machine(runtime):
    class ReviewHolds(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            empty_tables(runtime.engine)
            with runtime.uow() as uow:
                seed_reference_data(uow)
                uow.commit()
                tree = make_tree(uow, doses=0)
                uow.session.query(StockBalance).delete()
                second = Lot(
                    product_id=tree.product.id,
                    lot_number="4121Z045",
                    manufacturer="Serum Institute of India",
                    expiry_date=dt.date(2021, 9, 30),
                )
                uow.session.add(second)
                uow.session.flush()
                uow.commit()
                self.store_id, self.unit_id = tree.centre.id, tree.ilr.id
                self.lot_ids = [tree.lot.id, second.id]
            self.now = T0
            self.doses = [0, 0]
            self.reviews: list[ModelReview] = []
            self.open: list[int] = []  # excursion ids of open alarms
            self.wastages = 0

        # --- helpers ------------------------------------------------------------------------

        def tick(self) -> dt.datetime:
            self.now += dt.timedelta(minutes=7)
            return self.now

        def pending(self, lot: int) -> list[ModelReview]:
            return [r for r in self.reviews if r.lot == lot and r.state == "pending"]

        def held(self, lot: int) -> int:
            return max((r.doses for r in self.pending(lot)), default=0)

        def review_ids(self) -> list[int]:
            with runtime.uow() as uow:
                return list(
                    uow.session.scalars(select(QuarantineReview.id).order_by(QuarantineReview.id))
                )

        # --- rules --------------------------------------------------------------------------

        @rule(kind=st.sampled_from(["heat_alarm", "cold_alarm"]), stays_open=st.booleans())
        def alarm(self, kind, stays_open):
            at = self.tick()
            with runtime.uow() as uow:
                excursion = Excursion(
                    unit_id=self.unit_id,
                    store_id=self.store_id,
                    sensor_id="S-1",
                    kind=kind,
                    started_at=at - dt.timedelta(minutes=5),
                    triggered_at=at,
                    ended_at=None if stays_open else at,
                    peak_temp_c=9.0 if kind == "heat_alarm" else -2.0,
                    minutes_outside=5.0,
                    thresholds={},
                    lots=[],
                    updated_at=at,
                )
                uow.session.add(excursion)
                uow.session.flush()
                quarantine_unit(uow, excursion, at)
                uow.commit()
                excursion_id = excursion.id
            for lot in (0, 1):
                if self.doses[lot] > 0:
                    self.reviews.append(ModelReview(excursion_id, lot, self.doses[lot]))
            if stays_open:
                self.open.append(excursion_id)

        @precondition(lambda self: self.open)
        @rule(data=st.data())
        def end_alarm(self, data):
            excursion_id = data.draw(st.sampled_from(self.open))
            at = self.tick()
            with runtime.uow() as uow:
                uow.session.get(Excursion, excursion_id).ended_at = at
                uow.commit()
            self.open.remove(excursion_id)

        @rule(lot=st.sampled_from([0, 1]), doses=st.integers(1, 300))
        def receipt(self, lot, doses):
            at = self.tick()
            with runtime.uow() as uow:
                stock.receive_stock(
                    uow,
                    store_id=self.store_id,
                    unit_id=self.unit_id,
                    doses=doses,
                    rec=stock.recorded("asha", at, None, now=at),
                    lot={"lot_id": self.lot_ids[lot]},
                )
                uow.commit()
            self.doses[lot] += doses
            for excursion_id in self.open:
                review = next(
                    (r for r in self.pending(lot) if r.excursion_id == excursion_id), None
                )
                if review is None:
                    self.reviews.append(ModelReview(excursion_id, lot, doses))
                else:
                    review.doses += doses

        @rule(lot=st.sampled_from([0, 1]), doses=st.integers(1, 300))
        def consumption(self, lot, doses):
            at = self.tick()
            usable = self.doses[lot] - self.held(lot)
            with runtime.uow() as uow:
                call = dict(
                    store_id=self.store_id,
                    unit_id=self.unit_id,
                    lot_id=self.lot_ids[lot],
                    doses=doses,
                    actor="asha",
                    occurred_at=at,
                )
                if doses > usable:
                    with pytest.raises(InsufficientStock):
                        stock.record_consumption(uow, **call)
                    return
                stock.record_consumption(uow, **call)
                uow.commit()
            self.doses[lot] -= doses

        @precondition(lambda self: any(r.state == "pending" for r in self.reviews))
        @rule(data=st.data())
        def release(self, data):
            index = data.draw(
                st.sampled_from([i for i, r in enumerate(self.reviews) if r.state == "pending"])
            )
            with runtime.uow() as uow:
                release_review(
                    uow,
                    review_id=self.review_ids()[index],
                    comment="checked",
                    actor="asha",
                    now=self.tick(),
                )
                uow.commit()
            self.reviews[index].state = "released"

        @precondition(lambda self: any(r.state == "pending" for r in self.reviews))
        @rule(data=st.data())
        def discard(self, data):
            index = data.draw(
                st.sampled_from([i for i, r in enumerate(self.reviews) if r.state == "pending"])
            )
            with runtime.uow() as uow:
                discard_review(
                    uow,
                    review_id=self.review_ids()[index],
                    comment="discarded",
                    actor="asha",
                    now=self.tick(),
                )
                uow.commit()
            review = self.reviews[index]
            held_before = self.held(review.lot)
            review.state = "discarded"
            if review.doses == 0:
                return
            self.wastages += 1
            self.doses[review.lot] -= review.doses
            stays_held = min(self.doses[review.lot], held_before - review.doses)
            for other in self.pending(review.lot):
                other.doses = min(other.doses, stays_held)
                if other.doses == 0:
                    other.state = "discarded"

        # --- what must always hold --------------------------------------------------------------

        @invariant()
        def held_doses_are_what_the_pending_reviews_cover(self):
            with runtime.uow() as uow:
                balances = {
                    b.lot_id: (b.doses, b.quarantined_doses)
                    for b in uow.session.scalars(select(StockBalance))
                }
                reviews = [
                    (r.excursion_id, r.lot_id, r.state, r.doses)
                    for r in uow.session.scalars(
                        select(QuarantineReview).order_by(QuarantineReview.id)
                    )
                ]
                wastages = uow.session.scalar(
                    select(func.count()).select_from(Movement).where(Movement.kind == "wastage")
                )
            for lot in (0, 1):
                expected = (self.doses[lot], self.held(lot))
                assert balances.get(self.lot_ids[lot], (0, 0)) == expected
            assert reviews == [
                (r.excursion_id, self.lot_ids[r.lot], r.state, r.doses) for r in self.reviews
            ]
            assert wastages == self.wastages

    return ReviewHolds


def test_held_doses_always_equal_what_the_pending_reviews_cover(runtime):
    from hypothesis.stateful import run_state_machine_as_test

    run_state_machine_as_test(
        _machine(runtime),
        settings=settings(
            max_examples=40,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
