"""The local Docker engine: one shared client and the mapping of its errors to ours.

Docker-py raises NotFound for 404 only; 409 and 5xx arrive as APIError, and connection
errors and timeouts are not APIError at all. `docker_errors()` is the single place that
turns all of them into BoatLoad errors naming this host.
"""
import contextlib
import threading

import requests
from django.conf import settings

import docker
from common.errors import BadInput, Conflict, NotFound, RemoteError

_client = None
_lock = threading.Lock()


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
        raise RemoteError(f"The {engine_name()} timed out", remote=settings.NAME, status_code=504,
                          code="engine_timeout", outcome_unknown=mutating, detail=extra) from None
    except (requests.exceptions.ConnectionError, docker.errors.DockerException) as exc:
        raise RemoteError(f"The {engine_name()} is unreachable: {exc}", remote=settings.NAME,
                          code="engine_unavailable", outcome_unknown=mutating, detail=extra) from None
