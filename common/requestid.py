"""Request ids: every request gets one (or keeps the caller's X-Request-ID); every log line carries it."""
import contextvars
import logging
import re
import secrets

from django.utils.functional import SimpleLazyObject, empty

_current = contextvars.ContextVar("request_id", default="-")
_request = contextvars.ContextVar("request", default=None)
_VALID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.META.get("HTTP_X_REQUEST_ID", "")  # request.headers would build every header's name
        request_id = given if _VALID.match(given) else secrets.token_hex(8)  # 16 random hex digits, as uuid4's were
        token, request_token = _current.set(request_id), _request.set(request)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
            _request.reset(request_token)
        response["X-Request-ID"] = request_id
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.request_id = _current.get()
        return True


def current():
    """The id of the request this thread serves, to pass on to satellites and connectors."""
    return _current.get()


def user_of(request):
    """The username a request is served for, as far as it is known without authenticating anything: the
    user DRF or the session authenticated, else a satellite's `as_user` (its caller is the API), else `-`."""
    if request is None:
        return "-"
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        user = None  # not authenticated yet: asking now would query the session
    try:
        if user is not None and hasattr(user, "get_username") and user.is_authenticated:
            return user.get_username()
        return request.GET.get("as_user") or "-"  # a satellite: the user the API calls it for
    except Exception:  # a log line never fails its request
        return "-"


def current_user():
    """The user of the request this thread serves (log lines carry it)."""
    return user_of(_request.get())
