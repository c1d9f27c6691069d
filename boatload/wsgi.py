"""WSGI entry point of the API server (gunicorn boatload.wsgi)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "boatload.settings")
application = get_wsgi_application()

from boatload.heartbeat import HeartbeatApplication  # noqa: E402  (needs the apps get_wsgi_application set up)

application = HeartbeatApplication(application)  # heartbeats ahead of Django's handler
