"""Log lines for log shippers (issue 17, item 5): BOATLOAD_LOG_FORMAT=json (SATELLITE_LOG_FORMAT on a
satellite) makes every process write one JSON object a line (python-json-logger's formatter) with the
time, level, logger, message, request id, user, host and, on access lines, the method, path, status
and duration; `plain` keeps the one readable line. Used through common.env.logging_config by the API,
the reconcilers (their management commands) and the satellite.
"""
import logging
import socket
import time

from django.conf import settings
from pythonjsonlogger.json import JsonFormatter

from common import requestid

access_log = logging.getLogger("boatload.access")


class ContextFilter(logging.Filter):
    """Every record gets the request id, the user of the request (or `-`) and the process's host."""

    def __init__(self, host=""):
        super().__init__()
        self.host = host or socket.gethostname()

    def filter(self, record):
        record.request_id = requestid.current()
        if not hasattr(record, "user"):
            record.user = requestid.current_user()
        record.host = self.host
        return True


def json_formatter():
    """The JSON formatter; Python's warnings go through logging too, so they come as JSON lines as well."""
    logging.captureWarnings(True)
    return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(user)s %(host)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                         datefmt="%Y-%m-%dT%H:%M:%S%z", json_ensure_ascii=False)


class AccessLogMiddleware:
    """One access line per request with its duration (to the response's headers), when the access log is
    on; its user is the request's, as DRF or the session authenticated it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not getattr(settings, "ACCESS_LOG", False):
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        access_log.info("%s %s %s", request.method, request.path, response.status_code, extra={
            "method": request.method, "path": request.path, "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "user": requestid.user_of(request)})
        return response


def gunicorn_logconfig(host=""):
    """gunicorn's own lines (start, workers, errors) as JSON lines too: its `logconfig_dict`."""
    return {"version": 1, "disable_existing_loggers": False,
            "formatters": {"json": {"()": "common.logfmt.json_formatter"}},
            "filters": {"context": {"()": "common.logfmt.ContextFilter", "host": host}},
            "handlers": {"json": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"],
                                  "stream": "ext://sys.stdout"}},
            "root": {"handlers": ["json"], "level": "INFO"},  # gunicorn's defaults name handlers of their own
            "loggers": {"gunicorn.error": {"handlers": ["json"], "level": "INFO", "propagate": False},
                        # access lines come from AccessLogMiddleware, with the request id and user
                        "gunicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False}}}
