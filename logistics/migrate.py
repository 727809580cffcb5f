"""Run Alembic migrations from code (CLI, demo and tests share this)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The monthly and default partitions of readings on PostgreSQL (issue 16): made and dropped by the
# scheduler, parts of the one `readings` table the models describe.
PARTITION_TABLE = re.compile(r"^readings_(p\d{6}|default)$")


def include_name(name: str | None, type_: str, _parents: dict[str, Any]) -> bool:
    """Autogenerate's filter: compare everything but the partitions of partitioned tables."""
    return not (type_ == "table" and name is not None and PARTITION_TABLE.match(name))


def alembic_config(database_url: str) -> Config:
    """An Alembic configuration pointing at the service's migrations and this database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the schema of this database up to `revision`."""
    command.upgrade(alembic_config(database_url), revision)
