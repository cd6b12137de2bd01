"""WSGI entry point: `gunicorn -c api/gunicorn.conf.py` serves `api.wsgi:app`."""

from api import create_app

app = create_app()
