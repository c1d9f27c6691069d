"""The local Docker engine: one shared client and the mapping of its errors to ours.

Docker-py raises NotFound for 404 only; 409 and 5xx arrive as APIError, and connection
errors and timeouts are not APIError at all. `docker_errors()` is the single place that
turns all of them into BoatLoad errors naming this host, and `exception_handler` applies
the same mapping to any engine error a view let through (e.g. from a clean-up after a
failure), so an engine that went down is always `engine_unavailable`, never a 500.

The client is made once; its connection pool reconnects by itself when the engine comes
back. The engine going away and coming back is logged once each way.
"""
import contextlib
import logging
import threading

import requests
from django.conf import settings

import docker
from common import errors
from common.errors import BadInput, Conflict, NotFound, RemoteError

log = logging.getLogger("satellite.engine")

_client = None
_lock = threading.Lock()
_engine_down = False  # last seen state, for logging the transitions only


def client():
    """The process-wide Docker client; its connection pool is sized for parallel work."""
    global _client
    with _lock:
        if _client is None:
            with docker_errors():  # from_env asks the engine for its API version: it may be down
                _client = docker.from_env(timeout=settings.DOCKER_TIMEOUT, max_pool_size=settings.DOCKER_POOL)
            if _client.api.base_url.startswith("http+docker://"):
                # A unix socket has no proxy and no netrc: skip requests' per-call scan of both.
                _client.api.trust_env = False
        return _client


def engine_name():
    return f"docker engine of {settings.NAME}"


@contextlib.contextmanager
def docker_errors(*, mutating=False, step=None):
    """Map Docker SDK exceptions to domain errors; `step` names what was being done."""
    extra = {"step": step} if step else {}
    try:
        yield
        engine_seen(up=True)
    except docker.errors.ImageNotFound as exc:
        raise NotFound(f"Image not found on host {settings.NAME}: {exc.explanation}",
                       detail={"field": "image_name", **extra}, code="image_not_found") from None
    except docker.errors.NotFound as exc:
        raise NotFound(f"Not found on host {settings.NAME}: {exc.explanation}", detail=extra) from None
    except docker.errors.APIError as exc:
        status = exc.status_code or 500
        if status == 409:
            raise Conflict(str(exc.explanation), detail=extra) from None
        if status == 400:
            error = BadInput(step or "spec", f"the Docker engine refused it: {exc.explanation}")
            error.extra.update(extra)
            raise error from None
        raise RemoteError(f"The {engine_name()} failed: {exc.explanation}", remote=settings.NAME,
                          code="engine_error", detail=extra) from None
    except requests.exceptions.Timeout:
        engine_seen(up=False, reason="timed out")
        raise RemoteError(f"The {engine_name()} timed out", remote=settings.NAME, status_code=504,
                          code="engine_timeout", outcome_unknown=mutating, detail=extra) from None
    except (requests.exceptions.RequestException, docker.errors.DockerException, OSError) as exc:
        engine_seen(up=False, reason=exc.__class__.__name__)
        raise RemoteError(f"The {engine_name()} is unreachable: {exc}", remote=settings.NAME,
                          code="engine_unavailable", outcome_unknown=mutating, detail=extra) from None


def engine_seen(*, up, reason=""):
    """Record whether the engine answered; log only when that changes."""
    global _engine_down
    if up and _engine_down:
        _engine_down = False
        log.warning("the %s answers again", engine_name())
    elif not up and not _engine_down:
        _engine_down = True
        log.error("the %s is down (%s); calls answer engine_unavailable until it is back", engine_name(), reason)


ENGINE_ERRORS = (docker.errors.DockerException, requests.exceptions.RequestException, OSError)


def exception_handler(exc, context):
    """The satellite's DRF exception handler: an engine error a view let through is mapped as
    `docker_errors` maps it (naming this host), then answered in the one error shape."""
    if isinstance(exc, ENGINE_ERRORS):
        request = context.get("request") if context else None
        mutating = bool(request is not None and request.method not in ("GET", "HEAD", "OPTIONS"))
        try:
            with docker_errors(mutating=mutating):
                raise exc
        except errors.BoatLoadError as mapped:
            exc = mapped
    return errors.exception_handler(exc, context)
