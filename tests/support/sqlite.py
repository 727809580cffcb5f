"""A runtime on a fresh SQLite file (the one-command demo's database), schema and reference data
made, for tests of what differs by dialect."""

from __future__ import annotations

from pathlib import Path

from logistics.config import load_settings
from logistics.db import Base
from logistics.runtime import Runtime
from logistics.services.reference import seed_reference_data


def sqlite_runtime(folder: Path, name: str = "coldchain.db") -> Runtime:
    """A runtime on `folder/name` with the schema made by create_all and the reference data."""
    runtime = Runtime.from_settings(load_settings({"database_url": f"sqlite:///{folder}/{name}"}))
    Base.metadata.create_all(runtime.engine)
    with runtime.uow() as uow:
        seed_reference_data(uow)
        uow.commit()
    return runtime
