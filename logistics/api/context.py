"""What views need from the running app: a unit of work and the settings."""

from __future__ import annotations

from flask import current_app, g

from logistics.config import Settings
from logistics.db import UnitOfWork
from logistics.runtime import Runtime


def runtime() -> Runtime:
    """The runtime (settings, engine, session factory) of the current app."""
    return current_app.extensions["coldchain"]


def new_uow() -> UnitOfWork:
    """A fresh unit of work for one request's use case."""
    return UnitOfWork(runtime().session_factory)


def settings() -> Settings:
    """The settings of the current app."""
    return runtime().settings


def current_actor() -> str:
    """Name of the user making this request, recorded on every movement and audit entry.

    Authentication (logistics.auth) sets `g.actor`; until then requests act as "anonymous".
    """
    return getattr(g, "actor", None) or "anonymous"
