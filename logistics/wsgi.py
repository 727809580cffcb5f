"""WSGI entry point for production servers: gunicorn 'logistics.wsgi:app'."""

from logistics.app import create_app
from logistics.config import load_settings
from logistics.logs import configure_logging

_settings = load_settings()
configure_logging(_settings)
app = create_app(_settings)
