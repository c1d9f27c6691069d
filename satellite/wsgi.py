"""WSGI entry point of a satellite."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "satellite.settings")
application = get_wsgi_application()
