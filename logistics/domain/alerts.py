"""Alert lifecycle and stock-state rules: plain functions, no database, `now` passed in."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Literal

from logistics.domain.errors import Conflict, Invalid

AlertState = Literal["open", "acknowledged", "resolved"]
SEVERITY_RANK = {"info": 0, "warning": 1, "alarm": 2}

# The kinds of alert the service raises (transit adds its own "transit_" kinds), by what they
# watch; stock-state and expiry kinds with the severity each is raised at.
EXCURSION_KINDS = ("heat_warning", "heat_alarm", "cold_warning", "cold_alarm")
SENSOR_KINDS = ("sensor_silent", "sensor_low_battery", "sensor_power_off", "power_failure")
STOCK_KINDS = {"stock_out": "alarm", "below_min": "warning", "above_max": "warning"}
EXPIRY_KINDS = {"lot_expiring": "warning", "lot_expired": "alarm"}
OVERCOMMITTED = "sessions_overcommitted"
TEMPERATURE_KINDS = frozenset(EXCURSION_KINDS + SENSOR_KINDS)
SUPPLY_KINDS = frozenset([*STOCK_KINDS, *EXPIRY_KINDS, OVERCOMMITTED])


def power_failure_severity(
    on_battery_since: dt.datetime, now: dt.datetime, alarm_after: dt.timedelta
) -> str:
    """A logger on battery (mains lost) is a warning at once and an alarm once it has lasted.

    An ILR's ice lining holds +2 to +8 C for hours without power (WHO PQS E003: 8-16 h below
    +10 C), so the first minutes need attention, not alarm; a long cut needs someone to act
    (generator, or moving the doses) before the lining is spent.
    """
    return "alarm" if now - on_battery_since >= alarm_after else "warning"


def check_acknowledge(state: str, comment: str | None) -> None:
    """Refuse acknowledging a resolved or already acknowledged alert, or without a comment."""
    if not (comment or "").strip():
        raise Invalid("a comment is required to acknowledge an alert", field="comment")
    if state != "open":
        raise Conflict(f"alert is {state}; only an open alert can be acknowledged")


def check_resolve(state: str, comment: str | None) -> None:
    """Refuse resolving by hand without a comment, or twice."""
    if not (comment or "").strip():
        raise Invalid("a comment is required to resolve an alert by hand", field="comment")
    if state == "resolved":
        raise Conflict("alert is already resolved")


@dataclasses.dataclass(frozen=True)
class ReminderPolicy:
    """When an unacknowledged alarm is notified again, and when it climbs one store up."""

    remind_every: dt.timedelta
    escalate_after_reminders: int
    max_level: int


def reminder_due(
    state: str,
    severity: str,
    last_notified_at: dt.datetime | None,
    opened_at: dt.datetime,
    policy: ReminderPolicy,
    now: dt.datetime,
) -> bool:
    """Tell whether an alarm left unacknowledged is due to be notified again."""
    if state != "open" or severity != "alarm":
        return False
    return now - (last_notified_at or opened_at) >= policy.remind_every


def next_escalation_level(
    reminders_sent: int, level: int, policy: ReminderPolicy, levels_available: int
) -> int:
    """Escalate one level up the store tree after every `escalate_after_reminders` reminders."""
    if policy.escalate_after_reminders <= 0 or reminders_sent % policy.escalate_after_reminders:
        return level
    return min(level + 1, policy.max_level, levels_available)


# --- stock states (shared/domain.md "Stock rules": raised only on a change of state) ---

StockState = Literal["stock_out", "below_min", "ok", "above_max"]


def stock_state(doses: int, min_doses: float | None, max_doses: float | None) -> StockState:
    """Classify a store's stock of one product: stock-out (0), under minimum, over maximum, ok."""
    if doses <= 0:
        return "stock_out"
    if min_doses is not None and doses < min_doses:
        return "below_min"
    if max_doses is not None and doses > max_doses:
        return "above_max"
    return "ok"


def level_in_doses(value: float, basis: str, daily_consumption_doses: float | None) -> float | None:
    """Turn a min/max given as days of stock into doses (days of stock = stock / daily rate)."""
    if basis == "doses":
        return value
    if not daily_consumption_doses:
        return None  # no consumption rate known: a level in days cannot be judged
    return value * daily_consumption_doses


def expiry_state(
    expiry_date: dt.date, today: dt.date, warn_days: int
) -> Literal["ok", "expiring", "expired"]:
    """A lot is expired from its expiry date on, and 'expiring' within `warn_days` of it."""
    if expiry_date < today:  # usable through its expiry date, not after
        return "expired"
    if (expiry_date - today).days <= warn_days:
        return "expiring"
    return "ok"
