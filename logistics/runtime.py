"""The live parts built from settings (engine, sessions): on demand, never at import."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from logistics.config import Settings
from logistics.db import UnitOfWork, make_engine, make_session_factory


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
