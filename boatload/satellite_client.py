"""The API server's one client of satellites: signed requests, timeouts, errors mapped once.

Every response passes `_raise_for_status()`, which turns a satellite's error shape back
into the same domain error (its status, code and message), and connection failures and
timeouts into RemoteError naming the host, with `outcome_unknown` set on mutating calls.
"""
import threading

import requests
from django.conf import settings

from boatload.errors import BoatLoadError, RemoteError
from boatload.signing import HmacAuth

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
STREAM_CHUNK = 64 * 1024
_sessions = {}
_sessions_lock = threading.Lock()


def _session_for(host):
    """One keep-alive session per host key, shared by threads (its connection pool is thread-safe)."""
    key = (host.key_id, host.secret, host.satellite_url)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            session.auth = HmacAuth(host.key_id, host.secret)
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=32)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _sessions[key] = session
        return session


class SatelliteClient:
    def __init__(self, host, timeout=None):
        self.host = host
        self.base_url = host.satellite_url.rstrip("/")
        self.timeout = timeout or settings.SATELLITE_TIMEOUT
        self.session = _session_for(host)

    def request(self, method, path, *, params=None, json=None, stream=False, read_timeout=-1):
        """One signed call; `read_timeout=None` waits forever (follow streams)."""
        read_timeout = self.timeout if read_timeout == -1 else read_timeout
        try:
            response = self.session.request(method, f"{self.base_url}{path}", params=params, json=json,
                                            stream=stream, timeout=(5, read_timeout))
        except requests.Timeout:
            raise RemoteError(f"The satellite of host {self.host.name} timed out.", remote=self.host.name,
                              status_code=504, code="satellite_timeout",
                              outcome_unknown=method in MUTATING) from None
        except requests.RequestException as exc:
            raise RemoteError(f"The satellite of host {self.host.name} is unreachable: {exc.__class__.__name__}.",
                              remote=self.host.name, code="satellite_unavailable",
                              outcome_unknown=method in MUTATING) from None
        self._raise_for_status(response, method)
        return response

    def _raise_for_status(self, response, method):
        if response.status_code < 400:
            return
        try:
            error = response.json()["error"]
            code, message, detail = error["code"], error["message"], error.get("detail") or {}
        except (ValueError, KeyError, TypeError):
            code, message, detail = "satellite_error", response.text[:200] or response.reason, {}
        finally:
            response.close()
        detail = {**detail, "host": self.host.name}
        if response.status_code >= 500 or response.status_code == 401:
            # A satellite refusing our signature is its failure to serve us, not the user's.
            raise RemoteError(f"Host {self.host.name}: {message}", remote=self.host.name,
                              status_code=504 if response.status_code == 504 else 502, code=code,
                              outcome_unknown=bool(detail.get("outcome_unknown")) and method in MUTATING,
                              detail=detail)
        raise BoatLoadError(message, detail=detail, code=code, status_code=response.status_code)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs).json()

    def post(self, path, json=None, **kwargs):
        response = self.request("POST", path, json=json, **kwargs)
        return response.json() if response.content else None

    def delete(self, path, **kwargs):
        self.request("DELETE", path, **kwargs)

    def stream(self, path, params=None):
        """(response, chunk iterator) of a streamed answer; the caller closes the response."""
        response = self.request("GET", path, params=params, stream=True, read_timeout=None)
        return response, response.iter_content(STREAM_CHUNK)
