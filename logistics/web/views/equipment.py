"""The equipment register (issue 19): what a storage unit is, whether it works, its repair
history; "not working" shows the doses to move and the nearest units with room; functional units
by district. The same services as the API (logistics.services.equipment), the same rules.
"""

from __future__ import annotations

from typing import Any

from flask import get_flashed_messages, render_template, url_for
from flask_babel import gettext as _

from logistics.api.equipment import ENERGY_SOURCES
from logistics.db import UnitOfWork
from logistics.domain import equipment as rules
from logistics.services import equipment
from logistics.web import access
from logistics.web.blueprint import web
from logistics.web.forms import Form, FormState
from logistics.web.labels import label
from logistics.web.paperforms import allowed, done, record
from logistics.web.views.units import visible_unit


def _page(unit_id: int, forms: dict[str, FormState] | None = None, status: int = 200) -> Any:
    with access.read_uow() as uow:
        unit = visible_unit(uow, unit_id)
        moving = (
            equipment.evacuation_of(uow, unit) if unit.working_status == rules.NOT_WORKING else None
        )
        register_form = (forms or {}).get("register") or FormState(
            values={name: getattr(unit, name) for name in equipment.REGISTER_FIELDS}
        )
        body = render_template(
            "equipment.html",
            unit=unit,
            store=unit.store,
            evacuation=moving,
            history=list(reversed(equipment.repair_history(uow, unit_id))),
            statuses=rules.WORKING_STATUSES,
            energy_sources=ENERGY_SOURCES,
            may_set=allowed("equipment.UnitStatus", {"unit_id": unit_id}),
            may_describe=allowed("equipment.UnitEquipment", {"unit_id": unit_id}),
            forms={"status": (forms or {}).get("status") or FormState(), "register": register_form},
            notices=get_flashed_messages(),
        )
        return body, status


@web.route("/units/<int:unit_id>/equipment")
def unit_equipment(unit_id: int) -> Any:
    """A unit's register entry, its working status (and doses to move), its repair history."""
    return _page(unit_id)


@web.route("/units/<int:unit_id>/equipment/status", methods=["POST"])
def unit_status(unit_id: int) -> Any:
    """Set the working status (the API's POST /api/units/{id}/status)."""
    with access.read_uow() as uow:
        visible_unit(uow, unit_id)
    form = Form()
    status = form.choice("status", rules.WORKING_STATUSES)
    note = form.text("note")
    form.client_id()
    if not form.errors:

        def action(uow: UnitOfWork) -> str:
            change = equipment.set_working_status(
                uow,
                unit_id=unit_id,
                status=status or "",
                note=note,
                actor=access.principal().username,
                now=access.now(),
            )
            uow.commit()
            return _("Status recorded: %(status)s.", status=label(change.change.to_status))

        message = record(
            form, "equipment.UnitStatus", {"unit_id": unit_id}, action, hidden=("unit_id",)
        )
        if message:
            return done(message, url_for("web.unit_equipment", unit_id=unit_id))
    return _page(unit_id, {"status": form.state()}, 422)


@web.route("/units/<int:unit_id>/equipment", methods=["POST"])
def unit_register(unit_id: int) -> Any:
    """Record what the unit is (the API's PATCH /api/units/{id}/equipment)."""
    with access.read_uow() as uow:
        visible_unit(uow, unit_id)
    form = Form()
    fields = {
        "make": form.text("make", max_length=100),
        "model": form.text("model", max_length=100),
        "pqs_code": form.text("pqs_code", max_length=32),
        "year_installed": form.integer(
            "year_installed", required=False, minimum=1950, maximum=2100
        ),
        "energy_source": form.choice("energy_source", ENERGY_SOURCES, required=False),
        "capacity_doses": form.integer("capacity_doses", required=False),
    }
    form.client_id()
    if not form.errors:

        def action(uow: UnitOfWork) -> str:
            equipment.update_register(uow, unit_id=unit_id, fields=fields)
            uow.commit()
            return _("The register is updated.")

        message = record(
            form, "equipment.UnitEquipment", {"unit_id": unit_id}, action, hidden=("unit_id",)
        )
        if message:
            return done(message, url_for("web.unit_equipment", unit_id=unit_id))
    return _page(unit_id, {"register": form.state()}, 422)


@web.route("/equipment/functional")
def functional_units() -> Any:
    """Functional storage units by district, over the user's stores."""
    with access.read_uow() as uow:
        if access.visible_store_ids(uow) is None:
            rows = equipment.functional_by_district(uow)
        else:
            rows = [
                row
                for store in access.home_stores(uow)
                for row in equipment.functional_by_district(uow, within_id=store.id)
            ]
        return render_template("functional.html", rows=rows)
