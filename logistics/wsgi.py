"""WSGI entry point for production servers: gunicorn 'logistics.wsgi:app'."""

from logistics.app import create_app

app = create_app()
