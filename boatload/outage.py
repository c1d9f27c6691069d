"""A database that is down (restarting, failing over) is an outage to name and outlive, not a bug.

The API answers `503 database_unavailable` with `Retry-After` in the one error shape while
the database does not answer, from DRF views (`exception_handler`), from any other view
(`DatabaseOutageMiddleware`) and from whatever reaches the 500 handler (`server_error`).
Django reconnects on the next request once the database is back (health-checked
connections).

Long-running loops (the reconcilers) run each pass through `Survivor`: a database error
closes the broken connection, is logged once as "database unavailable", and the loop
waits with backoff and tries again; "database answers again" is logged when it is back.
Any other error of a pass is logged with its traceback and the loop goes on.
"""
import logging
import sys
import time

from django import db
from django.http import JsonResponse
from rest_framework.response import Response

from common import errors
from common.env import env_duration

log = logging.getLogger("boatload.outage")

DATABASE_ERRORS = (db.OperationalError, db.InterfaceError)
RETRY_AFTER = 5  # seconds a client is asked to wait; a restart usually takes a few


def is_database_outage(exc):
    """True for errors that say the database can not be reached (not for bad SQL or constraints)."""
    return isinstance(exc, DATABASE_ERRORS)


def unavailable_response(exc, response_class=JsonResponse):
    log.error("database unavailable: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else
              exc.__class__.__name__)
    for connection in db.connections.all(initialized_only=True):
        connection.close_if_unusable_or_obsolete()
    body = errors.error_body("database_unavailable", "The database does not answer; try again shortly.",
                             {"retry_after": RETRY_AFTER})
    response = response_class(body, status=503)
    response["Retry-After"] = str(RETRY_AFTER)
    return response


def exception_handler(exc, context):
    """DRF exception handler: common.errors' handler, with database outages as 503."""
    if is_database_outage(exc):
        return unavailable_response(exc, Response)
    return errors.exception_handler(exc, context)


class DatabaseOutageMiddleware:
    """A database outage raised by a view that is not DRF's (the admin, plain views) answers 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if is_database_outage(exception):
            return unavailable_response(exception)
        return None


def server_error(request):
    """handler500: what a middleware raised during an outage is a 503 too, the rest the JSON 500."""
    exc = sys.exc_info()[1]
    if exc is not None and is_database_outage(exc):
        return unavailable_response(exc)
    return errors.json_500(request)


class Survivor:
    """Runs the passes of a loop so that no outage ends it; `name` is the loop's, for the logs."""

    def __init__(self, name, *, max_backoff=None):
        self.name = name
        self.max_backoff = max_backoff or env_duration("BOATLOAD_OUTAGE_MAX_BACKOFF", 30)
        self.failures = 0
        self.database_down = False

    def run(self, step):
        """Run one pass; return the seconds to wait before the next one (0 after a good pass)."""
        try:
            step()
        except DATABASE_ERRORS as exc:
            for connection in db.connections.all(initialized_only=True):
                connection.close()  # a broken connection is never reused; the next query reconnects
            self.failures += 1
            if not self.database_down:
                log.error("%s: database unavailable (%s); retrying with backoff", self.name,
                          str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__)
            self.database_down = True
            return self.backoff()
        except Exception:  # one bad pass (a bug, a peer's odd answer) never ends the loop
            log.exception("%s: the pass failed; the next one follows", self.name)
            self.failures += 1
            return self.backoff()
        if self.database_down:
            log.warning("%s: database answers again; reconciling resumes", self.name)
        self.database_down = False
        self.failures = 0
        return 0

    def backoff(self):
        return min(self.max_backoff, 0.5 * 2 ** min(self.failures - 1, 10))


def sleep_unless(stopping, seconds, tick=0.2):
    """Sleep up to `seconds`, waking early when `stopping()` turns true (SIGTERM)."""
    end = time.monotonic() + seconds
    while not stopping() and time.monotonic() < end:
        time.sleep(min(tick, max(end - time.monotonic(), 0)))
