"""Words shown for the service's codes (alert kinds, reasons, states...), each translatable."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flask_babel import lazy_gettext as _l
from markupsafe import Markup, escape

from logistics.web.i18n import kept_translation

LABELS = {
    # severities and states
    "alarm": _l("Alarm"),
    "warning": _l("Warning"),
    "info": _l("Information"),
    "open": _l("Open"),
    "acknowledged": _l("Acknowledged"),
    "resolved": _l("Resolved"),
    "pending": _l("Waiting"),
    "released": _l("Released"),
    "discarded": _l("Discarded"),
    "in_transit": _l("In transit"),
    "received": _l("Received"),
    "cancelled": _l("Cancelled"),
    "reported": _l("Reported"),
    # alert kinds
    "heat_warning": _l("Heat warning"),
    "heat_alarm": _l("Heat alarm"),
    "cold_warning": _l("Cold warning"),
    "cold_alarm": _l("Freeze alarm"),
    "sensor_silent": _l("Sensor silent"),
    "sensor_low_battery": _l("Sensor battery low"),
    "sensor_power_off": _l("Power off"),
    "power_failure": _l("Power failure"),
    "stock_out": _l("Stock-out"),
    "below_min": _l("Under minimum"),
    "above_max": _l("Over maximum"),
    "lot_expired": _l("Lot expired"),
    "lot_expiring": _l("Lot expiring soon"),
    "sessions_overcommitted": _l("Sessions at risk"),
    # movement kinds
    "receipt": _l("Receipt"),
    "issue": _l("Issue"),
    "transfer": _l("Transfer"),
    "consumption": _l("Consumption"),
    "wastage": _l("Wastage"),
    "count": _l("Physical count"),
    "reversal": _l("Reversal"),
    # wastage and short-receipt reasons
    "expired": _l("Expired"),
    "frozen": _l("Frozen"),
    "vvm": _l("VVM past discard point"),
    "heat_exposure": _l("Heat exposure"),
    "breakage": _l("Breakage"),
    "open_vial": _l("Opened vial discarded"),
    "contamination": _l("Contamination"),
    "lost": _l("Lost"),
    "other": _l("Other"),
    "short": _l("Short"),
    "damaged": _l("Damaged"),
    # roles
    "admin": _l("Administrator"),
    "state_officer": _l("State officer"),
    "district_officer": _l("District officer"),
    "centre_officer": _l("Store officer"),
    "planner": _l("Centre planner"),
    "viewer": _l("Viewer"),
    # store levels, units, sensor power
    "state": _l("State"),
    "district": _l("District"),
    "centre": _l("Centre"),
    "national": _l("National"),
    "region": _l("Region"),
    "ilr": _l("Ice-lined refrigerator"),
    "deep_freezer": _l("Deep freezer"),
    "walk_in_cooler": _l("Walk-in cooler"),
    "walk_in_freezer": _l("Walk-in freezer"),
    "mains": _l("Mains"),
    "battery": _l("Battery"),
    "off": _l("Off"),
    "online": _l("Online"),
    "offline": _l("Offline"),
    "active": _l("Active"),
    "retired": _l("Retired"),
    # freeze indicator
    "ok": _l("OK"),
    "absent": _l("Absent"),
    # alert history and review proposals
    "opened": _l("Opened"),
    "reminded": _l("Reminder sent"),
    "escalated": _l("Escalated"),
    "discard": _l("Discard"),
    "review": _l("Review by an officer"),
    # paperwork (issue 19): indent states, working statuses, energy sources, their alerts
    "requested": _l("Requested"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "shipped": _l("Shipped"),
    "working": _l("Working"),
    "needs_repair": _l("Needs repair"),
    "not_working": _l("Not working"),
    "unit_not_working": _l("Unit not working"),
    "indent_unanswered": _l("Indent unanswered"),
    "electricity": _l("Electricity"),
    "solar": _l("Solar"),
    "solar_battery": _l("Solar with battery"),
    "gas": _l("Gas"),
    "kerosene": _l("Kerosene"),
    "hybrid": _l("Hybrid"),
    # vaccines in transit (issue 18): carriers and the alerts of a trip
    "cold_box": _l("Cold box"),
    "vaccine_carrier": _l("Vaccine carrier"),
    "transit_heat_warning": _l("Heat warning on the road"),
    "transit_heat_alarm": _l("Heat alarm on the road"),
    "transit_cold_warning": _l("Cold warning on the road"),
    "transit_cold_alarm": _l("Freeze alarm on the road"),
    # dose numbers
    "1": _l("Dose 1"),
    "2": _l("Dose 2"),
    "precaution": _l("Precaution dose"),
}

VVM_STAGES = {
    1: _l("Stage 1 (usable)"),
    2: _l("Stage 2 (usable, use first)"),
    3: _l("Stage 3 (do not use)"),
    4: _l("Stage 4 (discard)"),
}


def label(code: object) -> str:
    """The translated word for a code; the code itself when none is known."""
    if code is None:
        return "—"
    return _shown(("label", str(code)), lambda: str(LABELS.get(str(code), code)))


def vvm(stage: int | None) -> str:
    """The translated VVM stage."""
    return _shown(("vvm", stage), lambda: str(VVM_STAGES.get(stage or 1, stage)))


def _shown(key: tuple[str, object], translate: Callable[[], str]) -> str:
    # Translated once per language: a lot's trace or a store's stock shows the same few codes
    # hundreds of times, and each translation look-up costs tens of microseconds.
    return kept_translation(key, translate)


def code_label(code: object) -> tuple[object, str]:
    """(code, its word): an option of a select."""
    return code, label(code)


def attr_pair(item: Any, value: str, text: str) -> tuple[Any, Any]:
    """(item.value, item.text) of an object or a dict: an option of a select."""
    if isinstance(item, dict):
        return item[value], item[text]
    return getattr(item, value), getattr(item, text)


def attr_pairs(items: Iterable[Any], value: str, text: str) -> list[tuple[Any, Any]]:
    """attr_pair of each item: the options of a select (one filter call for a hundred stores,
    where `map('attr_pair', ...)` makes one per item)."""
    return [attr_pair(item, value, text) for item in items]


def option_tags(options: Iterable[tuple[Any, Any]], chosen: Any) -> Markup:
    """The <option> elements of a select, the one whose value reads as `chosen` selected.

    Written here rather than in a template loop: the issue form of a district store offers its
    hundred centres, and a loop in the template spent more time on it than the rest of the form.
    """
    chosen_text, tags = str(chosen), []
    for value, text in options:
        shown = str(value)
        selected = " selected" if shown == chosen_text else ""
        tags.append(f'<option value="{escape(shown)}"{selected}>{escape(text)}</option>')
    return Markup("".join(tags))
