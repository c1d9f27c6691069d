"""Domain exceptions and the one JSON error shape, shared by the API server and satellites.

Every error leaves a process as
`{"error": {"code": "<machine_code>", "message": "<sentence>", "detail": {...}}}`,
made here and nowhere else. A stack trace never reaches a client.
"""
import logging
import math
from http import HTTPStatus

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response

log = logging.getLogger("boatload.errors")


class BoatLoadError(exceptions.APIException):
    """Base of every domain error; `code` is machine-readable, `message` a sentence."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    code = "error"
    message = "The request failed."

    def __init__(self, message=None, *, detail=None, code=None, status_code=None):
        self.message = message or self.message
        self.extra = detail or {}
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        super().__init__(self.message, self.code)


class BadInput(BoatLoadError):
    status_code = 400
    code = "invalid"

    def __init__(self, field, message):
        super().__init__(f"{field}: {message}" if field else message, detail={"field": field})


class NotFound(BoatLoadError):
    status_code = 404
    code = "not_found"
    message = "No such object."


class Conflict(BoatLoadError):
    status_code = 409
    code = "conflict"


class TooLarge(BoatLoadError):
    status_code = 413
    code = "too_large"


class NoHealthyHost(BoatLoadError):
    status_code = 503
    code = "no_healthy_host"
    message = "No active host can take this request."


class RemoteError(BoatLoadError):
    """A satellite, connector or engine failed (502, or 504 for a timeout), naming the remote.

    `outcome_unknown` is set when a mutating call timed out or lost its connection: the
    caller must observe again before acting, never blindly repeat a create.
    """

    status_code = 502
    code = "remote_error"

    def __init__(self, message, *, remote, status_code=None, code=None, outcome_unknown=False, detail=None):
        self.remote = remote
        self.outcome_unknown = outcome_unknown
        extra = {"remote": remote, "outcome_unknown": outcome_unknown, **(detail or {})}
        super().__init__(message, detail=extra, code=code, status_code=status_code)


class SatelliteUnavailable(RemoteError):
    """A satellite could not be reached, or failed to serve the call (5xx, refused our key)."""

    code = "satellite_unavailable"


class SatelliteTimeout(SatelliteUnavailable):
    status_code = 504
    code = "satellite_timeout"


class ConnectorError(RemoteError):
    """A Genisys connector could not be reached, failed, or answered what the protocol does not allow."""

    code = "connector_error"


class ConnectorTimeout(ConnectorError):
    status_code = 504
    code = "connector_timeout"


class ContainerNotFound(NotFound):
    """The satellite holds no container labelled with the row's uuid."""


def error_body(code, message, detail=None):
    return {"error": {"code": code, "message": message, "detail": detail or {}}}


def _first_error(errors, prefix=""):
    """(field path, message) of the first validation error, e.g. ("spec.ports[0].port", "…")."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            if isinstance(key, int):  # an item of a list field
                return _first_error(value, f"{prefix}[{key}]")
            name = "" if key == "non_field_errors" else str(key)
            return _first_error(value, f"{prefix}.{name}" if prefix and name else prefix or name)
    if isinstance(errors, list) and errors:
        if isinstance(errors[0], (dict, list)):
            for index, item in enumerate(errors):
                if item:
                    return _first_error(item, f"{prefix}[{index}]")
        return prefix, str(errors[0])
    return prefix, str(errors)


def exception_handler(exc, context):
    """DRF exception handler: every exception becomes the one error shape."""
    headers = {}
    if isinstance(exc, Http404):
        exc = NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):  # DATA_UPLOAD_MAX_MEMORY_SIZE, raised while the body is read
        exc = TooLarge("The request body is larger than this server accepts.", detail={"field": ""})
    elif isinstance(exc, SuspiciousOperation):  # too many form fields or files, and the like
        exc = BadInput("", str(exc) or "The request is malformed.")

    if isinstance(exc, BoatLoadError):
        body = error_body(exc.code, exc.message, exc.extra)
        retry_after = exc.extra.get("retry_after") if isinstance(exc.extra, dict) else None
        # A busy satellite's 429 (or a 503) says when to come back, also when the API passes it on.
        headers = {"Retry-After": str(retry_after)} if retry_after else None
        return Response(body, status=exc.status_code, headers=headers)
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_error(exc.detail)
        message = f"Invalid input: {field}: {message}" if field else f"Invalid input: {message}"
        return Response(error_body("invalid", message, {"field": field, "fields": exc.detail}), status=400)
    if isinstance(exc, exceptions.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            headers["Retry-After"] = str(max(1, math.ceil(exc.wait)))
        detail = exc.detail if isinstance(exc.detail, (dict, list)) else {}
        if "Retry-After" in headers:
            detail = {"retry_after": int(headers["Retry-After"])}
        message = exc.detail if isinstance(exc.detail, str) else str(exc.default_detail)
        if isinstance(exc.detail, dict) and "detail" in exc.detail:
            message = str(exc.detail["detail"])
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        return Response(error_body(code, str(message), detail), status=exc.status_code, headers=headers)

    log.exception("unhandled error in %s", context.get("view").__class__.__name__ if context else "?")
    return Response(error_body("internal_error", "The server failed to handle this request."), status=500)


@csrf_exempt  # no path here to protect: a POST to an unknown path is a 404, not a CSRF 403
def json_404(request, exception=None):
    return JsonResponse(error_body("not_found", "No such path."), status=404)


def json_500(request):
    return JsonResponse(error_body("internal_error", "The server failed to handle this request."), status=500)


def json_400(request, exception=None):
    return JsonResponse(error_body("bad_request", "The request is malformed."), status=400)


def json_403(request, exception=None):
    return JsonResponse(error_body("permission_denied", "You may not do this."), status=403)


STATUS_CODES = {400: "bad_request", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
                405: "method_not_allowed", 406: "not_acceptable", 413: "too_large", 415: "unsupported_media_type",
                429: "throttled", 500: "internal_error"}
_REPLACED_HEADERS = {"content-type", "content-length", "content-disposition", "content-encoding"}


def _is_json(response):
    content_type = response.get("Content-Type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


def html_page(response):
    """Mark a rendered HTML page whose 4xx/5xx status is meant for a person to read (see below)."""
    response.html_page = True
    return response


class JsonErrorMiddleware:
    """Any error response that is not JSON leaves as the one error shape, with DEBUG on too.

    Django's own error pages (the debug page of a DisallowedHost, technical 404 and 500
    pages, CSRF failures, the admin's 404s) and DRF's browsable API are HTML; none of them
    may reach a client from an error path. A DRF response keeps its error body; any other
    gets the code of its status. Headers such as Allow, Retry-After and WWW-Authenticate stay.
    A page made to be shown in a browser with its error status (the console's form with the
    error next to its field: `html_page(response)`) is left as it is.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if response.status_code < 400 or _is_json(response) or getattr(response, "html_page", False):
            return response  # html_page: a console form shown again with its errors next to their fields
        data = getattr(response, "data", None)
        if isinstance(data, dict) and set(data) == {"error"}:
            body = data
        else:
            status_code = response.status_code
            code = STATUS_CODES.get(status_code, "internal_error" if status_code >= 500 else "error")
            body = error_body(code, _phrase(status_code))
        answer = JsonResponse(body, status=response.status_code)
        for name, value in response.items():
            if name.lower() not in _REPLACED_HEADERS:
                answer[name] = value
        answer.cookies = response.cookies
        return answer


def _phrase(status_code):
    try:
        return f"{HTTPStatus(status_code).phrase}."
    except ValueError:
        return "The request failed."
