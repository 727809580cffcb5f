"""Commands of the sensors package, added to `coldchain` (ingest, simulate, broker, demo)."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    """Add the sensors commands to the `coldchain` command group."""
