"""Stock rules, free of any framework: FEFO, running balances, usable doses, vials, wastage factor.

Quantities are doses everywhere (shared/domain.md, "Stock rules"); vials are only shown.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Iterable, Sequence

from logistics.domain.errors import InsufficientStock, Invalid

RECEIPT, ISSUE, TRANSFER, CONSUMPTION, WASTAGE, COUNT, REVERSAL = (
    "receipt",
    "issue",
    "transfer",
    "consumption",
    "wastage",
    "count",
    "reversal",
)
MOVEMENT_KINDS = (RECEIPT, ISSUE, TRANSFER, CONSUMPTION, WASTAGE, COUNT, REVERSAL)

# Reasons of a discard (WHO/UNICEF wastage categories as listed in shared/domain.md).
WASTAGE_REASONS = (
    "expired",
    "frozen",
    "vvm",
    "heat_exposure",
    "breakage",
    "open_vial",
    "contamination",
    "lost",
    "other",
)
# Why a shipment arrived with fewer doses than were issued ("expired": a lot that expired on the
# way is received as 0 doses, never into usable stock).
SHORT_RECEIPT_REASONS = (
    "short",
    "damaged",
    "frozen",
    "heat_exposure",
    "expired",
    "lost",
    "other",
)

# WHO VVM stages 1-2 are usable; 3 reached the discard point, 4 is beyond it.
VVM_USABLE_MAX = 2


def vials(doses: int, doses_per_vial: int) -> float:
    """Vials these doses fill (shown next to doses; an opened vial counts as a fraction)."""
    return round(doses / doses_per_vial, 2)


def whole_vials(doses: int, doses_per_vial: int) -> int:
    """Vials these doses need, counting a partly used vial as one."""
    return math.ceil(doses / doses_per_vial)


def wastage_factor(wastage_pct: float) -> float:
    """WF = 100 / (100 - wastage %): 10 % allowed COVID wastage gives 1.11 (shared/domain.md)."""
    if not 0 <= wastage_pct < 100:
        raise ValueError("wastage percentage must be in [0, 100)")
    return 100 / (100 - wastage_pct)


def is_expired(expiry_date: dt.date, on: dt.date) -> bool:
    """A lot may be used up to and including its expiry date; from the next day it is expired."""
    return expiry_date < on


@dataclasses.dataclass(frozen=True)
class LotStock:
    """One lot's stock in one unit, as FEFO and usable-dose rules see it."""

    unit_id: int
    lot_id: int
    expiry_date: dt.date
    doses: int
    quarantined_doses: int = 0
    vvm_stage: int = 1
    lot_quarantined: bool = False


def usable_whatever_the_date(
    doses: int, quarantined_doses: int, vvm_stage: int, lot_quarantined: bool
) -> int:
    """Doses that may be given at all: not held (quarantine, recall), VVM usable."""
    if lot_quarantined or vvm_stage > VVM_USABLE_MAX:
        return 0
    return max(doses - quarantined_doses, 0)


def usable_doses(stock: LotStock, on: dt.date) -> int:
    """Doses that may be issued or booked on this date: not expired, not held, VVM usable."""
    if is_expired(stock.expiry_date, on):
        return 0
    return usable_whatever_the_date(
        stock.doses, stock.quarantined_doses, stock.vvm_stage, stock.lot_quarantined
    )


@dataclasses.dataclass(frozen=True)
class RecallScope:
    """A recall in force: one lot, held in the subtree whose root has this path (None: all)."""

    lot_id: int
    store_path: str | None

    def covers(self, path: str) -> bool:
        """Tell whether the recall holds the lot at the store with this path."""
        return self.store_path is None or path.startswith(self.store_path)


def recalled(lot_id: int, path: str, scopes: Iterable[RecallScope]) -> bool:
    """Tell whether any recall in force holds this lot at the store with this path."""
    return any(s.lot_id == lot_id and s.covers(path) for s in scopes)


@dataclasses.dataclass(frozen=True)
class Allocation:
    """Doses taken from one lot in one unit."""

    unit_id: int
    lot_id: int
    doses: int


def fefo_order(stocks: Iterable[LotStock]) -> list[LotStock]:
    """Earliest expiry first; at equal expiry the more heat-exposed VVM first (WHO EEFO/FEFO)."""
    return sorted(stocks, key=lambda s: (s.expiry_date, -s.vvm_stage, s.lot_id, s.unit_id))


def fefo_allocate(stocks: Iterable[LotStock], doses: int, on: dt.date) -> list[Allocation]:
    """Choose lots for an issue on date `on`; never expired, held or VVM-unusable stock."""
    if doses <= 0:
        raise Invalid("quantity must be a positive number of doses", field="doses")
    wanted, allocations = doses, []
    for stock in fefo_order(stocks):
        take = min(usable_doses(stock, on), wanted)
        if take > 0:
            allocations.append(Allocation(stock.unit_id, stock.lot_id, take))
            wanted -= take
        if wanted == 0:
            return allocations
    available = doses - wanted
    raise InsufficientStock(
        f"only {available} usable doses on {on.isoformat()}, {doses} asked",
        field="doses",
        available_doses=available,
    )


def balance_as_of(current: int, later_changes: Sequence[int]) -> int:
    """The balance at a past time, from today's balance and the changes recorded after it."""
    return current - sum(later_changes)


def lowest_running_balance(current: int, later_changes: Sequence[int]) -> int:
    """Lowest balance from a past time until now, given the changes after it in time order."""
    running = balance_as_of(current, later_changes)
    lowest = running
    for change in later_changes:
        running += change
        lowest = min(lowest, running)
    return lowest


def check_debit(current: int, later_changes: Sequence[int], doses: int, at: dt.datetime) -> None:
    """Refuse a debit at time `at` that would make the balance, then or at any later time, negative.

    `later_changes` are the signed doses of the entries that happened after `at`, in time order.
    A back-dated debit lowers every later running balance by `doses`: the lowest must cover it.
    """
    lowest = lowest_running_balance(current, later_changes)
    if lowest >= doses:
        return
    if later_changes and balance_as_of(current, later_changes) >= doses:
        detail = (
            f"a debit of {doses} doses at {at.isoformat()} would make a later running balance "
            f"negative (lowest later balance {lowest})"
        )
    else:
        detail = f"only {lowest} doses in stock at {at.isoformat()}, {doses} asked"
    raise InsufficientStock(detail, field="doses", available_doses=max(lowest, 0))


def count_difference(counted: int, current: int, later_changes: Sequence[int]) -> int:
    """Doses a count adds (or removes) so the balance at its time equals what was counted."""
    if counted < 0:
        raise Invalid("a count cannot be negative", field="counted_doses")
    return counted - balance_as_of(current, later_changes)


def daily_rate(consumed_doses: int, window_days: int) -> float | None:
    """Average doses consumed a day over the window; None when nothing was consumed."""
    if window_days <= 0 or consumed_doses <= 0:
        return None
    return consumed_doses / window_days


def days_of_stock(doses: int, rate_per_day: float | None) -> float | None:
    """Days of stock = stock / daily consumption rate (shared/domain.md); None if unknown."""
    if rate_per_day is None or rate_per_day <= 0:
        return None
    return round(doses / rate_per_day, 1)
