"""A hand-built month of movements (May 2026) at a district store, for the paperwork tests.

Every figure the monthly stock report should show for it is written out in EXPECTED_MAY.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

from logistics.db import UnitOfWork
from logistics.models.alerts import Excursion
from logistics.services import catalog, quarantine, stock
from tests.support.ledger import Network, build_network, rec

IST = dt.timezone(dt.timedelta(hours=5, minutes=30))


def at(month: int, day: int, hour: int = 11) -> dt.datetime:
    """A time in 2026 at the site (India)."""
    return dt.datetime(2026, month, day, hour, 0, tzinfo=IST)


@dataclasses.dataclass
class Month:
    net: Network
    district_ilr2: int
    wastage_to_reverse: int


# The district's May of Covishield, worked out by hand from build_month's movements.
EXPECTED_MAY = {
    "opening_doses": 2000,
    "receipts_doses": 3000,
    "issues_doses": 1500,
    "consumption_doses": 600,
    "wastage_doses": 130,
    "wastage_by_reason": {"breakage": 10, "heat_exposure": 100, "open_vial": 20},
    "adjustments_doses": -10,
    "transfers_doses": 0,
    "closing_doses": 2760,
    "held_after_excursions_doses": 100,
    "released_after_excursions_doses": 0,
    "discarded_after_excursions_doses": 100,
    "wastage_rate_pct": 17.81,  # 130 / (600 + 130)
    "open_vial_wastage_doses": 20,
    "daily_consumption_doses": 19.35,  # 600 / 31 days
    "days_of_stock": 142.6,  # 2760 / (600 / 31)
}


def _issue_and_receive(uow: UnitOfWork, net: Network, doses: int, sent: dt.datetime) -> None:
    issue = stock.issue_stock(
        uow,
        store_id=net.state,
        to_store_id=net.district,
        doses=doses,
        rec=rec(sent),
        product_id=net.covishield,
    )
    uow.commit()
    stock.receive_shipment(
        uow,
        store_id=net.district,
        unit_id=net.district_ilr,
        shipment_id=issue.shipment_id,
        rec=rec(sent + dt.timedelta(days=1)),
    )
    uow.commit()


def _debit(
    uow: UnitOfWork, net: Network, kind: str, doses: int, when: dt.datetime, **extra: object
) -> int:
    record = stock.record_consumption if kind == "consumption" else stock.record_wastage
    movement = record(
        uow,
        store_id=net.district,
        unit_id=extra.pop("unit", net.district_ilr),
        lot_id=net.lot_late,
        doses=doses,
        actor="tester",
        occurred_at=when,
        client_id=uuid.uuid4().hex,
        **extra,
    )
    uow.commit()
    return movement.id


def _excursion_in(uow: UnitOfWork, net: Network, unit_id: int, when: dt.datetime) -> None:
    """A heat alarm in the district's second ILR: its doses are held, then discarded."""
    excursion = Excursion(
        unit_id=unit_id,
        store_id=net.district,
        kind="heat_alarm",
        started_at=when,
        triggered_at=when + dt.timedelta(hours=10),
        ended_at=when + dt.timedelta(hours=12),
        peak_temp_c=14.0,
        minutes_outside=720.0,
        thresholds={},
        lots=[],
        updated_at=when,
    )
    uow.session.add(excursion)
    uow.session.flush()
    quarantine.quarantine_unit(uow, excursion, when + dt.timedelta(hours=10))
    uow.commit()
    review = excursion_reviews(uow, excursion.id)[0]
    quarantine.discard_review(
        uow,
        review_id=review,
        comment="heat damage",
        actor="officer",
        now=when + dt.timedelta(days=1),
    )
    uow.commit()


def excursion_reviews(uow: UnitOfWork, excursion_id: int) -> list[int]:
    from sqlalchemy import select

    from logistics.models.alerts import QuarantineReview

    query = select(QuarantineReview.id).where(QuarantineReview.excursion_id == excursion_id)
    return list(uow.session.scalars(query))


def build_month(uow: UnitOfWork) -> Month:
    """April's stock, May's movements (EXPECTED_MAY), and one June movement outside the month."""
    net = build_network(uow, dt.date(2026, 5, 1))
    ilr2 = catalog.create_unit(
        uow, store_id=net.district, code="ILR-2", kind="ilr", min_temp_c=2, max_temp_c=8
    ).id
    uow.commit()
    stock.receive_stock(
        uow,
        store_id=net.state,
        unit_id=net.state_ilr,
        doses=10000,
        rec=rec(at(4, 20)),
        lot={"lot_id": net.lot_late},
    )
    uow.commit()
    _issue_and_receive(uow, net, 2000, at(4, 22))  # opening 2000
    _issue_and_receive(uow, net, 3000, at(5, 3))  # receipts 3000
    stock.issue_stock(
        uow,
        store_id=net.district,
        to_store_id=net.centre,
        doses=1500,
        rec=rec(at(5, 5)),
        product_id=net.covishield,
    )  # in transit at month end
    uow.commit()
    stock.receive_stock(
        uow,
        store_id=net.district,
        unit_id=net.district_ilr,
        doses=400,
        rec=rec(at(5, 8)),
        lot={"lot_id": net.lot_covaxin},
    )  # another product
    uow.commit()
    _debit(uow, net, "consumption", 400, at(5, 10))
    _debit(uow, net, "wastage", 20, at(5, 12), reason="open_vial")
    _debit(uow, net, "wastage", 10, at(5, 13), reason="breakage")
    stock.record_count(
        uow,
        store_id=net.district,
        unit_id=net.district_ilr,
        lot_id=net.lot_late,
        counted_doses=3060,
        rec=rec(at(5, 15)),
    )  # the ledger said 3070
    uow.commit()
    stock.transfer_stock(
        uow,
        store_id=net.district,
        from_unit_id=net.district_ilr,
        to_unit_id=ilr2,
        lot_id=net.lot_late,
        doses=100,
        rec=rec(at(5, 16)),
    )
    uow.commit()
    _excursion_in(uow, net, ilr2, at(5, 17, 1))
    mistake = _debit(uow, net, "wastage", 30, at(5, 20), reason="expired")
    stock.reverse_movement(uow, movement_id=mistake, actor="tester", client_id=uuid.uuid4().hex)
    uow.commit()
    _debit(uow, net, "consumption", 200, at(5, 25))
    _debit(uow, net, "consumption", 100, at(6, 2))  # June: not in May's report
    return Month(net, ilr2, mistake)
