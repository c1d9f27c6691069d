"""WSGI entry point of the API server (gunicorn boatload.wsgi)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boatload.settings")
application = get_wsgi_application()
