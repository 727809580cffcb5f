"""The live parts built from settings (engine, sessions): on demand, never at import."""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from logistics.config import Settings
from logistics.db import UnitOfWork, make_engine, make_session_factory

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Runtime:
    """Settings with the engine and session factory made from them."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        """Build the engine and session factory for these settings."""
        engine = make_engine(
            settings.database_url, settings.database_pool_size, settings.database_echo
        )
        return cls(settings, engine, make_session_factory(engine))

    def uow(self) -> UnitOfWork:
        """A fresh unit of work."""
        return UnitOfWork(self.session_factory)

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()


class ThreadDied(RuntimeError):
    """A thread the process depends on has ended: the process must end too (non-zero)."""


def watch(stop: threading.Event, threads: Callable[[], list[threading.Thread]]) -> None:
    """Wait for `stop`; raise ThreadDied as soon as one of the threads is no longer alive.

    A process whose writer died would stay connected and take messages it never stores; ending it
    lets the supervisor (systemd, Kubernetes) restart it, and the broker redeliver.
    """
    while not stop.wait(0.5):
        dead = [thread.name for thread in threads() if not thread.is_alive()]
        if dead:
            log.critical("thread %s died; ending the process", ", ".join(dead))
            raise ThreadDied(", ".join(dead))
