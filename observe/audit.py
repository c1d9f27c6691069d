"""The audit log (issue 17, item 4): every change anyone makes, who, when, from where, on what, the
request (secrets masked) and the result.

Two pieces, so no change is missing and none is counted twice:
- `change(action, target=…)` wraps the work of a service function: the change and its entry are
  written in one transaction (a change is never committed without its entry). A change that
  fails is rolled back and its entry written as failed afterwards.
- AuditMiddleware gives `change()` the request (who, address, masked body, request id) and,
  for a changing request (POST, PUT, PATCH, DELETE) that recorded nothing (refused before any
  change: bad input, 403, 404, throttled), writes the one entry itself, named after its route.
  Entries written during a request get its status code.
Logins, successful and failed, come from Django's auth signals (user_logged_in,
user_login_failed); the JWT token view sends user_logged_in through TokenObtainSerializer.
"""
import contextvars
import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, transaction
from rest_framework.throttling import BaseThrottle
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer

from common import requestid
from common.logmask import mask_secrets  # a scale hook's secret is part of its path
from observe.models import AuditEntry

log = logging.getLogger("boatload.audit")
MASK = "***"
CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# Routes that change nothing anybody needs to answer for (a satellite's heartbeat, token refresh and checks).
UNAUDITED_ROUTES = {"host-heartbeat", "token-refresh", "token-verify"}
ROUTE_ACTIONS = {"token-obtain": "auth.login", "token-revoke": "auth.logout", "login": "auth.login",
                 "logout": "auth.logout", "service-scale-hook": "service.scale", "hook-trigger": "service.redeploy"}
BODY_LIMIT = 256 * 1024  # larger JSON bodies are recorded as their size only

# Keys whose values are secrets wherever they appear; env/environment keep their names, not their values.
SECRET_KEY = re.compile(r"script|token|secret|passw|credential|authorization|signature|(^|_)key$|cookie", re.I)
ENV_KEYS = {"env", "environment"}
SECRET_VALUE = re.compile(r"^(bljt_|hk_|Bearer\s)|^eyJ[\w-]+\.[\w-]+\.[\w-]+$")


@dataclass
class Context:
    request: object
    body: object = None
    entries: list = field(default_factory=list)
    actor: object = None  # whom a hook acts for (act_as): its request has no user of its own
    target: str = ""
    detail: dict = field(default_factory=dict)
    completed: dict = field(default_factory=dict)  # pk: entry completed by outcome(), written with the status


_context = contextvars.ContextVar("audit_context", default=None)


# ---- masking -----------------------------------------------------------------------------------

def mask(value, key="", found=None):
    """`value` with every secret replaced by ***; the secrets replaced are added to `found`."""
    found = set() if found is None else found
    key = str(key)
    if key.lower() in ENV_KEYS:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return _hide(value, found)
        if isinstance(value, dict):
            return {name: _hide(item, found) for name, item in value.items()}
        if isinstance(value, list):
            return [f"{str(item).partition('=')[0]}={_hide(str(item).partition('=')[2], found)}" for item in value]
        return _hide(value, found)
    if key and SECRET_KEY.search(key):
        return _hide(value, found)
    if isinstance(value, dict):
        return {name: mask(item, name, found) for name, item in value.items()}
    if isinstance(value, list):
        return [mask(item, key, found) for item in value]
    if isinstance(value, str) and SECRET_VALUE.search(value):
        return _hide(value, found)
    return value


def _hide(value, found):
    if isinstance(value, (dict, list)):
        for item in (value.values() if isinstance(value, dict) else value):
            _hide(item, found)
    elif value not in (None, "") and not isinstance(value, bool):
        found.add(str(value))
    return MASK


def scrub(text, secrets):
    """`text` without any of `secrets` (an error message may quote what it refused)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, MASK)
    return text


# ---- entries -----------------------------------------------------------------------------------

def _client_address(request):
    try:
        return BaseThrottle().get_ident(request) or None
    except Exception:  # a request without META (a test's signal)
        return None


def _request_record(context, request):
    """The masked query and body of the request, and the secrets found in them."""
    found = set()
    record = {}
    if request is None:
        return record, found
    if request.GET:
        record["query"] = mask({k: v if len(v) > 1 else v[0] for k, v in request.GET.lists()}, found=found)
    body = context.body if context else None
    posted = request.__dict__.get("_post")  # a form the view parsed (never parsed here: uploads stay streams)
    if body is None and posted:
        body = {k: v if len(v) > 1 else v[0] for k, v in posted.lists()}
        files = request.__dict__.get("_files")
        for name in files or ():
            body[name] = "<file>"
    if body is not None:
        record["body"] = mask(body, found=found)
    return record, found


def act_as(user, *, target="", **detail):
    """Within the current request, changes are `user`'s: a hook's secret stands for its maker, so every entry
    the request writes (its change's, or the middleware's when it is refused) names the maker, and
    `detail` (which hook) goes along."""
    context = _context.get()
    if context is not None:
        context.actor, context.target, context.detail = user, str(target), detail


def _new_entry(action, *, target="", target_type="", request=None, actor=None, actor_name=""):
    context = _context.get()
    request = getattr(request, "_request", request)  # a DRF request: the Django request it wraps
    request = request if request is not None else (context.request if context else None)
    acting = context if context is not None and context.request is request else None
    if actor is None and acting is not None and acting.actor is not None:
        actor = acting.actor
    if actor is None and request is not None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            actor = user
    record, found = _request_record(context if context and context.request is request else None, request)
    entry = AuditEntry(action=action, target=str(target)[:200], target_type=target_type, actor=actor,
                       actor_name=(actor.get_username() if actor else actor_name)[:150],
                       address=_client_address(request) if request is not None else None,
                       method=(getattr(request, "method", None) or "") if request is not None else "",
                       path=mask_secrets(getattr(request, "path", None) or "")[:500] if request is not None else "",
                       request=record, detail=dict(acting.detail) if acting is not None else {},
                       request_id=requestid.current() if requestid.current() != "-" else "")
    entry._secrets = found
    return entry


def _note(entry):
    context = _context.get()
    if context is not None and entry.pk:
        context.entries.append(entry.pk)


def _error_facts(error):
    code = getattr(error, "code", None)
    if not isinstance(code, str):
        code = getattr(error, "default_code", None) or error.__class__.__name__
    message = getattr(error, "message", None) or str(getattr(error, "detail", None) or error)
    status = getattr(error, "status_code", None)
    return code, message, status if isinstance(status, int) else None


def _save_failed(entry, error):
    code, message, status = _error_facts(error)
    entry.pk = None
    entry.result = entry.Result.FAILED
    entry.error_code, entry.message = code[:64], scrub(message, entry._secrets)[:2000]
    entry.status_code = entry.status_code or status
    try:
        with transaction.atomic():  # a savepoint: a failed write never breaks the caller's transaction
            entry.save()
    except DatabaseError:
        log.exception("audit: could not record the failure of %s", entry.action)
        return
    _note(entry)


@contextmanager
def change(action, *, target="", target_type="", actor=None):
    """Run a change and write its audit entry in the same transaction; yields the entry (unsaved), which
    the caller may complete (target, detail, result). A change that raises is recorded as failed.
    `actor`: whom the change is for when it is not the request's user (a hook's maker)."""
    entry = _new_entry(action, target=target, target_type=target_type or action.partition(".")[0], actor=actor)
    try:
        with transaction.atomic():
            yield entry
            entry.result = entry.result or entry.Result.OK
            entry.save()
    except Exception as error:
        _save_failed(entry, error)
        raise
    _note(entry)


def outcome(entry, *, result, message="", **detail):
    """Complete an entry written earlier (a create's result, known once the hosts answered)."""
    entry.result = result
    entry.message = scrub(message, getattr(entry, "_secrets", set()))[:2000]
    entry.detail = {**entry.detail, **detail}
    context = _context.get()
    if context is not None and entry.pk in context.entries:
        # Its request is still being answered: AuditMiddleware writes it once, with the status code
        # (one UPDATE, not two). Outside a request, or once its answer is streaming, it is written now.
        context.completed[entry.pk] = entry
        return
    _write_outcome(entry)


def _write_outcome(entry, **also):
    type(entry).objects.filter(pk=entry.pk).update(result=entry.result, message=entry.message, detail=entry.detail,
                                                   **also)


# ---- requests ----------------------------------------------------------------------------------

def _route_action(request):
    """`container.create` for POST container-list, `host.rotate-key`, `service.scale`, `admin.<view>`…"""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.url_name:
        return "request"
    if match.url_name in ROUTE_ACTIONS:
        return ROUTE_ACTIONS[match.url_name]
    namespace = match.namespaces[0] if match.namespaces else ""
    if namespace:
        return f"{namespace}.{match.url_name}"[:64]
    base, _, suffix = match.url_name.partition("-")
    if suffix == "list" and request.method == "POST":
        suffix = "create"
    elif suffix == "detail":
        suffix = "delete" if request.method == "DELETE" else "update"
    return f"{base}.{suffix}" if suffix else base


def _route_target(request, context=None):
    if context is not None and context.target:
        return context.target
    match = getattr(request, "resolver_match", None)
    kwargs = match.kwargs if match else {}
    return next((str(kwargs[key]) for key in ("uuid", "name", "pk") if key in kwargs), "")


def _response_error(response):
    data = getattr(response, "data", None)
    if not isinstance(data, dict):
        try:
            data = json.loads(response.content) if not response.streaming else None
        except (ValueError, AttributeError):
            data = None
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("code", "")), str(error.get("message", ""))
    return "", ""


class AuditMiddleware:
    """Carries the request to `change()`, and records a changing request that recorded nothing itself."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method not in CHANGING or request.path in ("/healthz", "/metrics"):
            return self.get_response(request)
        context = Context(request=request, body=self._json_body(request))
        token = _context.set(context)
        try:
            response = self.get_response(request)
        except BaseException:
            self._write_completed(context)  # no answer to take a status code from: the outcomes still count
            raise
        finally:
            _context.reset(token)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name in UNAUDITED_ROUTES:
            self._write_completed(context)
            return response
        try:
            self._finish(request, response, context)
        except DatabaseError:
            log.exception("audit: could not record %s %s", request.method, request.path)
        return response

    def _json_body(self, request):
        if "json" not in request.content_type:
            return None
        try:
            size = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return None
        if not size:
            return None
        if size > BODY_LIMIT:
            return {"unrecorded": f"{size} bytes"}
        try:
            return json.loads(request.body)
        except (ValueError, RequestDataTooBig):
            return {"unparsed": True}
        except Exception:  # the stream failed; the view will say so
            return None

    def _write_completed(self, context, **also):
        for entry in context.completed.values():
            try:
                _write_outcome(entry, **also)
            except DatabaseError:
                log.exception("audit: could not record the outcome of %s", entry.action)

    def _finish(self, request, response, context):
        if context.entries:
            # An entry completed during the request gets its outcome and status in one write; an entry
            # written with a status (a failure's own) keeps it.
            for entry in context.completed.values():
                _write_outcome(entry, **({} if entry.status_code else {"status_code": response.status_code}))
            rest = [pk for pk in context.entries if pk not in context.completed]
            if rest:
                AuditEntry.objects.filter(pk__in=rest, status_code__isnull=True).update(
                    status_code=response.status_code)
            return
        entry = _new_entry(_route_action(request), target=_route_target(request, context), request=request,
                           actor=context.actor)
        entry.detail = {**context.detail, **entry.detail}
        entry.target_type = entry.action.partition(".")[0]
        entry.status_code = response.status_code
        if response.status_code < 400:
            entry.result = AuditEntry.Result.OK
        else:
            entry.result = AuditEntry.Result.FAILED
            code, message = _response_error(response)
            entry.error_code, entry.message = code[:64], scrub(message, entry._secrets)[:2000]
        with _bound(context), transaction.atomic():  # a savepoint: a failed write leaves any outer transaction usable
            entry.save()


@contextmanager
def _bound(context):
    token = _context.set(context)
    try:
        yield
    finally:
        _context.reset(token)


# ---- logins ------------------------------------------------------------------------------------

def _on_login(sender, request, user, **kwargs):
    entry = _new_entry("auth.login", target=user.get_username(), target_type="user", request=request, actor=user)
    entry.result = entry.Result.OK
    _save_quietly(entry)


def _on_login_failed(sender, credentials, request=None, **kwargs):
    name = str(credentials.get("username", ""))[:150]
    entry = _new_entry("auth.login", target=name, target_type="user", request=request, actor_name=name)
    entry.result, entry.error_code = entry.Result.FAILED, "authentication_failed"
    entry.message = "Wrong username or password, or an inactive user."
    _save_quietly(entry)


def _save_quietly(entry):
    try:
        with transaction.atomic():  # a savepoint: a login is never undone by its audit entry
            entry.save()
    except DatabaseError:
        log.exception("audit: could not record %s", entry.action)
        return
    _note(entry)


def connect_login_signals():
    user_logged_in.connect(_on_login, dispatch_uid="observe.audit.login")
    user_login_failed.connect(_on_login_failed, dispatch_uid="observe.audit.login_failed")


class TokenObtainSerializer(TokenObtainPairSerializer):
    """simplejwt's token pair; a login that succeeds sends user_logged_in like Django's own login()."""

    def validate(self, attrs):
        data = super().validate(attrs)
        request = self.context.get("request")
        user_logged_in.send(sender=self.user.__class__, request=getattr(request, "_request", request), user=self.user)
        return data
