"""One HTTP client base for every remote BoatLoad calls: satellites and Genisys connectors.

Every response passes `_raise_for_status()`, which turns a remote's error shape back into
the same domain error (its status, code and message), and connection failures and
timeouts into RemoteError naming the remote, with `outcome_unknown` set on mutating calls.
"""
import threading

import requests

from boatload import requestid, tls
from boatload.errors import BoatLoadError, RemoteError

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
STREAM_CHUNK = 64 * 1024
_sessions = {}
_sessions_lock = threading.Lock()


def shared_session(key, auth, certificate=None):
    """One keep-alive session per remote, credentials and pinned certificate, shared by threads (its
    pool is thread-safe). With `certificate` (PEM), HTTPS trusts exactly that certificate."""
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = requests.Session()
            session.trust_env = False
            session.auth = auth
            session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=32))
            session.mount("https://", tls.PinnedAdapter(certificate=certificate, pool_maxsize=32) if certificate
                          else requests.adapters.HTTPAdapter(pool_maxsize=32))
            _sessions[key] = session
        return session


class RemoteClient:
    """Calls one remote; subclasses name it (`kind`, `remote`) and give its URL and auth."""

    kind = "remote"

    def __init__(self, base_url, *, remote, auth=None, timeout=30, certificate=None):
        self.base_url = base_url.rstrip("/")
        self.remote = remote
        self.timeout = timeout
        self.session = shared_session((self.base_url, repr(getattr(auth, "key_id", None)),
                                       getattr(auth, "secret", None) or getattr(auth, "token", None),
                                       certificate or None), auth, certificate)

    def request(self, method, path, *, params=None, json=None, stream=False, read_timeout=-1):
        """One call; `read_timeout=None` waits forever (follow streams)."""
        from observe import metrics  # here: satellites import this module too, and need no Prometheus client

        with metrics.remote_call(self.kind, self.remote, method, path):
            return self._request(method, path, params=params, json=json, stream=stream, read_timeout=read_timeout)

    def _request(self, method, path, *, params, json, stream, read_timeout):
        read_timeout = self.timeout if read_timeout == -1 else read_timeout
        headers = {"X-Request-ID": requestid.current()} if requestid.current() != "-" else None
        try:
            response = self.session.request(method, f"{self.base_url}{path}", params=params, json=json,
                                            stream=stream, timeout=(5, read_timeout), headers=headers)
        except requests.Timeout:
            raise RemoteError(f"The {self.kind} of {self.remote} timed out.", remote=self.remote,
                              status_code=504, code=f"{self.kind}_timeout",
                              outcome_unknown=method in MUTATING) from None
        except requests.RequestException as exc:
            raise RemoteError(f"The {self.kind} of {self.remote} is unreachable: {exc.__class__.__name__}.",
                              remote=self.remote, code=f"{self.kind}_unavailable",
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
            code, message, detail = f"{self.kind}_error", response.text[:200] or response.reason, {}
        finally:
            response.close()
        detail = {**detail, "remote": self.remote}
        if response.status_code >= 500 or response.status_code == 401:
            # A remote refusing our credentials is its failure to serve us, not the user's.
            raise RemoteError(f"{self.remote}: {message}", remote=self.remote,
                              status_code=504 if response.status_code == 504 else 502, code=code,
                              outcome_unknown=bool(detail.get("outcome_unknown")) and method in MUTATING,
                              detail=detail)
        raise BoatLoadError(message, detail=detail, code=code, status_code=response.status_code)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs).json()

    def post(self, path, json=None, **kwargs):
        response = self.request("POST", path, json=json, **kwargs)
        return response.json() if response.content else None

    def put(self, path, json=None, **kwargs):
        response = self.request("PUT", path, json=json, **kwargs)
        return response.json() if response.content else None

    def delete(self, path, **kwargs):
        self.request("DELETE", path, **kwargs)

    def stream(self, path, params=None):
        """(response, chunk iterator) of a streamed answer; the caller closes the response."""
        response = self.request("GET", path, params=params, stream=True, read_timeout=None)
        return response, response.iter_content(STREAM_CHUNK)
