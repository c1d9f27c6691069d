"""The heartbeat (POST /v1/host/heartbeat/), served by HeartbeatApplication ahead of Django's request handler
(HeartbeatMiddleware ahead of the rest of the stack under any other handler).

1,000 hosts every 10 s are 100 heartbeats a second, and they must take under 10% of one API core:
under 1 ms of CPU each (bench/heartbeats.py measures it). Through DRF a heartbeat cost ~15 ms, most of
it building the ORM's UPDATE, DRF's request and serializer machinery, and the middleware a satellite
needs none of (sessions, CSRF, messages, audit, which skips heartbeats anyway). So it is answered right
after the request metrics, the request id and the access log, with every check of before and the same
code doing them:

- the Host header against ALLOWED_HOSTS (as CommonMiddleware checks);
- the HMAC signature over method, path, query, body, timestamp, nonce and key id, and the timestamp
  window (common.signing.verify, the satellite's own verifier);
- the key: one indexed read of the host by key id or the key being rotated in (`host_for_key`), or
  none when this worker saw the key before (`_known`): the UPDATE then requires the key and its
  secret to be still the host's, so a key retired or a host unregistered meanwhile writes nothing
  and is asked again from the row, which says why it is refused;
- the body: a JSON object (common.parsers.JSONParser), its fields checked by HeartbeatSerializer (a body
  equal byte for byte to the last one its key sent, which passed, gives the facts it gave then);
- the replay check and the facts in the host row's one UPDATE (services.host_heartbeat);
- the answer signed back with the key the request was signed with (common.signing).

Every refusal is the one JSON error shape (common.errors.exception_handler), the 401s with
`WWW-Authenticate: BoatLoad-HMAC`. HeartbeatView stays in the URLs for the OpenAPI schema and answers
through `serve` too, should the middleware not be installed.
"""
import io
import json
from functools import cache

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIRequest
from django.db import close_old_connections, connection
from django.http import HttpResponse, JsonResponse
from django.urls import resolve
from django.utils.module_loading import import_string
from rest_framework import exceptions

from boatload import services
from boatload.api.serializers import HeartbeatSerializer
from boatload.auth import HEARTBEAT_NONCE
from boatload.models import Host
from common import errors, signing
from common.parsers import JSONParser

PATH = "/v1/host/heartbeat/"
AUTH_HEADER = "BoatLoad-HMAC"
# What a heartbeat reads of its host: the keys, and what services.host_heartbeat and heartbeat_answer use.
# In the model's order, as Model.from_db takes a subset of its fields.
HOST_FIELDS = tuple(field.attname for field in Host._meta.concrete_fields if field.attname in {
    "id", "name", "key_id", "secret", "next_key_id", "next_secret", "state", "satellite_url", "tls_certificate",
    "seal_public_key"})
KEY_COLUMN = HOST_FIELDS.index("key_id")


class HeartbeatApplication:
    """The API's WSGI application (boatload.wsgi): a heartbeat is answered here, ahead of Django's request
    handler; every other request goes to `application`, Django's.

    A heartbeat passes the middleware configured ahead of HeartbeatMiddleware in MIDDLEWARE (the request
    metrics, the request id, the access log), each wrapped as Django's handler wraps it (an exception
    becomes Django's response for it: a DisallowedHost its 400, a database outage its 503), then `serve`.
    What Django's handler would add and a heartbeat never uses, it skips: the URL resolver's script
    prefix, the rest of the middleware, the request signals (their receivers close the database
    connections, done here: the pooled one goes back to its pool, and reset caches and DEBUG's query log,
    which a heartbeat does not use), the response's closing callbacks.
    """

    def __init__(self, application):
        self.application = application
        self.handler = convert_exception_to_response(serve)
        ahead = settings.MIDDLEWARE[:settings.MIDDLEWARE.index(f"{__name__}.{HeartbeatMiddleware.__name__}")]
        for path in reversed(ahead):
            self.handler = convert_exception_to_response(import_string(path)(self.handler))

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.application(environ, start_response)
        try:
            response = self.handler(WSGIRequest(environ))
        finally:
            close_old_connections()  # the pooled connection goes back to its pool
        if not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        cookies = [("Set-Cookie", cookie.output(header="")) for cookie in response.cookies.values()]
        headers = [*response.items(), *cookies]
        start_response(f"{response.status_code} {response.reason_phrase}", headers)
        return [response.content]


class HeartbeatMiddleware:
    """Answers POST /v1/host/heartbeat/ itself (see the module); every other request passes on. Served by
    HeartbeatApplication, a heartbeat never reaches it; under any other handler (Django's test client,
    another WSGI entry point) it does, after the middleware listed before it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path_info == PATH and request.method == "POST":
            return serve(request)
        return self.get_response(request)


_route = []


def serve(request):
    """The signed answer to one heartbeat, or its refusal in the one error shape."""
    if not _route:
        _route.append(resolve(PATH))  # the view's name, for the request metrics' label
    request.resolver_match = _route[0]
    request.get_host()  # DisallowedHost (a 400 from Django's handler) unless ALLOWED_HOSTS has it
    try:
        return _beat(request)
    except (exceptions.APIException, SuspiciousOperation) as exc:  # RequestDataTooBig (a 413) is one too
        return _refusal(exc)


class _Headers:
    """A request's headers by name, read from its META as request.headers reads them, without making every
    header's name first (a heartbeat reads four of a dozen)."""

    __slots__ = ("meta",)

    def __init__(self, meta):
        self.meta = meta

    def get(self, name, default=None):
        return self.meta.get(_meta_key(name), default)

    def __contains__(self, name):
        return _meta_key(name) in self.meta

    def __getitem__(self, name):
        return self.meta[_meta_key(name)]


@cache
def _meta_key(name):
    return "HTTP_" + name.upper().replace("-", "_")


def _beat(request, *, remembered=True):
    headers = _Headers(request.META)
    if signing.HEADER_SIGNATURE not in headers:
        raise exceptions.NotAuthenticated()
    body = request.body
    hosts, from_memory = {}, set()

    def secret_for(key_id):
        host = _known.get(key_id) if remembered else None
        if host is None:
            host = host_for_key(key_id)
        else:
            from_memory.add(key_id)
        hosts[key_id] = host
        if host is None:
            return None
        return host.secret if host.key_id == key_id else host.next_secret

    try:  # the nonce is checked (and recorded) by the heartbeat's UPDATE: here only its form
        key_id = signing.verify(method=request.method, path=request.path, query=request.META.get("QUERY_STRING", ""),
                                body=body, headers=headers, secret_for=secret_for,
                                remember_nonce=lambda key_id, nonce: bool(HEARTBEAT_NONCE.fullmatch(nonce)))
    except signing.SignatureError as exc:
        raise exceptions.AuthenticationFailed(str(exc)) from None
    host = hosts[key_id]
    secret = host.secret if key_id == host.key_id else host.next_secret  # as verified
    facts = validated_facts(request, body, host, key_id)
    signed_at = (int(headers[signing.HEADER_TIMESTAMP]), headers[signing.HEADER_NONCE])
    try:  # the UPDATE also checks that the key is still the host's, so a remembered one needs no read
        host = services.host_heartbeat(host=host, key_id=key_id, secret=secret, signed_at=signed_at, **facts)
    except exceptions.AuthenticationFailed:
        _known.pop(key_id, None)
        if key_id in from_memory:
            return _beat(request, remembered=False)  # the key may be gone or rotated: say which, from the row
        raise
    remember(key_id, host)
    return signed_answer(request, key_id, secret, services.heartbeat_answer(host, key_id))


# Hosts by the key id they last heartbeated with, in this process (a heartbeat's read of its key is then
# skipped: its UPDATE requires the key and secret to be still the host's, so a stale entry writes nothing
# and is dropped). A key id's secret never changes; a rotation makes a new key id.
_known = {}
KNOWN_MAX = 100_000


def remember(key_id, host):
    if len(_known) >= KNOWN_MAX:
        _known.clear()
    _known[key_id] = host


# The last body each key sent that passed the checks, with its facts as checked, in this process: a
# satellite sends the same body (facts, URL, certificate, seal key) beat after beat, and the checks of a
# body give the same facts whatever else is true (the pinned certificate and seal key only spare parsing
# them again), so a body equal byte for byte to the last one is not parsed and checked again.
_checked_bodies = {}


def host_for_key(key_id):
    """The host whose key (or key being rotated in) is `key_id`, with HOST_FIELDS only; None if none is.

    One indexed read (key_id is unique, next_key_id indexed), without the ORM's query building."""
    if not key_id:
        return None
    host_table = Host._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(HOST_FIELDS)} FROM {host_table} WHERE key_id = %s OR next_key_id = %s",
                       [key_id, key_id])
        rows = cursor.fetchall()
    rows.sort(key=lambda row: row[KEY_COLUMN] != key_id)  # the host's own key first
    return Host.from_db(connection.alias, HOST_FIELDS, rows[0]) if rows else None


def validated_facts(request, body, host, key_id=None):
    """The heartbeat's fields, checked as HeartbeatSerializer checks them (BadInput or ValidationError);
    those of the last body `key_id` sent, when this one is the same (`_checked_bodies`)."""
    if body and "json" not in request.content_type:
        raise exceptions.UnsupportedMediaType(request.content_type)
    checked = _checked_bodies.get(key_id)
    if checked is not None and checked[0] == body:
        return dict(checked[1])
    data = JSONParser().parse(io.BytesIO(body)) if body else {}
    checker = _checkers.pop() if _checkers else HeartbeatSerializer()
    checker._context = {"host": host}  # the pinned certificate and seal key are not parsed again
    try:
        facts = checker.run_validation(data)
    finally:
        checker._context = {}
        _checkers.append(checker)
    if key_id is not None:
        if len(_checked_bodies) >= KNOWN_MAX:
            _checked_bodies.clear()
        _checked_bodies[key_id] = (body, dict(facts))
    return facts


# HeartbeatSerializers ready to check a body: making one (DRF copies its fields) costs more than the check.
# One is taken for one check at a time (list pop and append are atomic), so threads and greenlets never share.
_checkers = []


def _refusal(exc):
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        exc.auth_header = AUTH_HEADER
    answer = errors.exception_handler(exc, {})
    response = JsonResponse(answer.data, status=answer.status_code)
    for name in ("WWW-Authenticate", "Retry-After"):
        if name in answer:
            response[name] = answer[name]
    return response


def signed_answer(request, key_id, secret, answer):
    """A JSON answer signed with the key the request was signed with, bound to the request's nonce."""
    body = json.dumps(answer).encode()
    headers = signing.sign_response_headers(secret, key_id, status=200, method=request.method, path=request.path,
                                            request_nonce=request.META.get(_meta_key(signing.HEADER_NONCE)),
                                            body=body)
    headers["X-Content-Type-Options"] = "nosniff"  # as SecurityMiddleware sets on every other answer
    return HttpResponse(body, content_type="application/json", headers=headers)
