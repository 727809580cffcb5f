"""Indent rules, free of any framework: the suggested quantity and the indent's states.

The suggestion follows the max-min stock rules of shared/domain.md ("Stock rules"): the minimum
is 25 % of one supply period's needs, the maximum is the period's needs plus the minimum (or the
store's own maximum where one is set: levels are data). An indent asks for what brings the stock
expected on the day of delivery up to the maximum, in whole vials.
"""

from __future__ import annotations

import dataclasses
import math

from logistics.domain.errors import Conflict, Invalid

MIN_SHARE_OF_PERIOD_NEEDS = 0.25  # minimum stock = 25 % of one supply period's needs

REQUESTED, APPROVED, REJECTED, SHIPPED, RECEIVED, CANCELLED = (
    "requested",
    "approved",
    "rejected",
    "shipped",
    "received",
    "cancelled",
)
# The states an indent moves through: request -> approval -> shipment -> receipt.
NEXT_STATES: dict[str, frozenset[str]] = {
    REQUESTED: frozenset({APPROVED, REJECTED, CANCELLED}),
    APPROVED: frozenset({SHIPPED, CANCELLED}),
    # A shipment whose issue is reversed goes back to approved, to be shipped again.
    SHIPPED: frozenset({RECEIVED, APPROVED}),
    REJECTED: frozenset(),
    RECEIVED: frozenset(),
    CANCELLED: frozenset(),
}


@dataclasses.dataclass(frozen=True)
class IndentNeeds:
    """What the suggestion is worked out from, all in doses (rates in doses a day)."""

    daily_consumption_doses: float | None
    lead_days: int  # from today to the date the doses are needed by
    period_days: int  # the supply period the delivery must last
    sessions_before_doses: int  # planned sessions' capacity before the needed-by date
    sessions_after_doses: int  # planned sessions' capacity within the period after it
    on_hand_doses: int  # usable doses at the store now
    in_transit_doses: int  # doses shipped to the store and not yet received
    max_level_doses: float | None  # the store's maximum stock level, if one is set
    doses_per_vial: int


@dataclasses.dataclass(frozen=True)
class Suggestion:
    """The suggested quantity and each step of its working."""

    use_before_doses: int
    period_needs_doses: int
    minimum_doses: int
    maximum_doses: int
    available_at_delivery_doses: int
    suggested_doses: int


def suggest(needs: IndentNeeds) -> Suggestion:
    """Doses to ask for: the maximum level less the stock expected when the delivery arrives.

    Use before delivery and the period's needs are each the larger of the consumption rate's
    figure and the sessions already planned (planned sessions are known demand; the rate covers
    the days without any). Rounded up to whole vials.
    """
    rate = needs.daily_consumption_doses or 0.0
    use_before = math.ceil(max(rate * needs.lead_days, needs.sessions_before_doses))
    period_needs = math.ceil(max(rate * needs.period_days, needs.sessions_after_doses))
    minimum = math.ceil(MIN_SHARE_OF_PERIOD_NEEDS * period_needs)
    maximum = (
        math.ceil(needs.max_level_doses)
        if needs.max_level_doses is not None
        else period_needs + minimum
    )
    available = max(needs.on_hand_doses + needs.in_transit_doses - use_before, 0)
    short = max(maximum - available, 0)
    vials = math.ceil(short / needs.doses_per_vial)
    return Suggestion(
        use_before, period_needs, minimum, maximum, available, vials * needs.doses_per_vial
    )


def check_transition(indent_id: int, state: str, new_state: str) -> None:
    """Refuse a change of state the indent's life does not allow."""
    if new_state not in NEXT_STATES[state]:
        raise Conflict(
            f"indent {indent_id} is {state}; it cannot become {new_state}", field="state"
        )


def check_approval(requested: int, approved: int, reason: str | None) -> None:
    """The parent approves 1..requested doses; approving fewer needs a reason.

    More than asked is a conflict with the stored indent (409), not a malformed request.
    """
    if approved < 1:
        raise Invalid("approve at least 1 dose (or reject the indent)", field="doses")
    if approved > requested:
        raise Conflict(
            f"approve between 1 and {requested} doses (or reject the indent)", field="doses"
        )
    if approved < requested and not (reason or "").strip():
        raise Invalid("approving fewer doses than asked needs a reason", field="reason")
