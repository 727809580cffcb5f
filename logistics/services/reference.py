"""Reference data every database starts with."""

from __future__ import annotations

from sqlalchemy import select

from logistics.db import UnitOfWork
from logistics.models.catalog import StoreLevel

# The levels modelled at least (shared/domain.md, "The network"); more can be added as data.
DEFAULT_LEVELS = (
    ("state", "State vaccine store", 0),
    ("district", "District vaccine store", 1),
    ("centre", "Cold chain point / vaccination centre", 2),
)


def seed_reference_data(uow: UnitOfWork) -> None:
    """Create the default store levels where they are missing."""
    existing = set(uow.session.scalars(select(StoreLevel.code)))
    for code, name, rank in DEFAULT_LEVELS:
        if code not in existing:
            uow.session.add(StoreLevel(code=code, name=name, rank=rank))
    uow.session.flush()
