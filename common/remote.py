"""One HTTP client base for every remote BoatLoad calls: satellites and Genisys connectors.

A client has one method per operation of its remote, each declared with `@operation(method,
route)`: the route is written once, in the form of the remote's URL conf, and the method
builds its path from it (tests/test_client_routes.py holds the two sides together). Every
response passes `_raise_for_status()`, the one choke point that turns a remote's answer into
a domain error: its own error shape back into the same error (status, code, message, a 404
into `not_found_error`), connection failures into `unavailable_error` and timeouts into
`timeout_error`, naming the remote, with `outcome_unknown` set on mutating calls.
"""
import collections
import contextvars
import functools
import logging
import re
import threading
import time
from urllib.parse import quote

import requests

from common import requestid, tls
from common.errors import BoatLoadError, NotFound, RemoteError

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
CONNECT_TIMEOUT = 5  # seconds, unless the client is given another (the API: BOATLOAD_CONNECT_TIMEOUT)
# When the fan-out (call_all) running this call gives up on it (time.monotonic()); None outside one.
_deadline = contextvars.ContextVar("remote_deadline", default=None)
# A streamed answer is passed on a chunk at a time: each chunk of a chunked answer as it comes (a
# follow stream's line never waits for more), at most this much of it. Large enough to pass on a
# satellite's archive chunks (satellite.files.CHUNK) whole rather than cut in 16.
STREAM_CHUNK = 1024 * 1024
_sessions = {}
_sessions_lock = threading.Lock()

log = logging.getLogger("boatload.remote")


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


class Operation:
    """One operation of a remote: its HTTP method and its route, e.g. `containers/<container_id>/logs`."""

    PARAMETER = re.compile(r"<(\w+)>")

    def __init__(self, method, route):
        self.method, self.route = method, route

    def path(self, **arguments):
        """The route with its parameters filled in, percent-encoded (`path` keeps its slashes)."""
        return "/" + self.PARAMETER.sub(
            lambda m: quote(str(arguments[m.group(1)]), safe="/" if m.group(1) == "path" else ""), self.route)


def operation(method, route):
    """Declare a client method as the operation `method route`; the method gets the Operation first."""
    op = Operation(method, route)

    def declare(function):
        @functools.wraps(function)
        def call(self, *args, **kwargs):
            return function(self, op, *args, **kwargs)
        call.operation = op
        return call
    return declare


def plain(method, route, doc):
    """An operation that takes its route's parameters (then a JSON body, if any) and answers JSON."""
    names = Operation.PARAMETER.findall(route)

    @operation(method, route)
    def call(self, op, *args):
        body = args[len(names)] if len(args) > len(names) else None
        return self.call(op, json=body, **dict(zip(names, args)))
    call.__doc__ = doc
    return call


def operations(client_class):
    """{(method, route): name} of every operation a client class declares."""
    return {(member.operation.method, member.operation.route): name for name, member in vars(client_class).items()
            if hasattr(member, "operation")}


class RemoteClient:
    """Calls one remote; subclasses name it (`kind`, `remote`), give its URL and auth, and the domain
    errors its failures raise."""

    kind = "remote"
    unavailable_error = RemoteError
    timeout_error = RemoteError
    not_found_error = NotFound
    observe = None  # the API sets a context manager timing every call (observe.apps); satellites keep None

    def __init__(self, base_url, *, remote, auth=None, timeout=30, certificate=None, connect_timeout=None):
        self.base_url = base_url.rstrip("/")
        self.remote = remote
        self.timeout = timeout
        self.connect_timeout = connect_timeout or CONNECT_TIMEOUT
        self.session = shared_session((self.base_url, repr(getattr(auth, "key_id", None)),
                                       getattr(auth, "secret", None) or getattr(auth, "token", None),
                                       certificate or None), auth, certificate)

    def request(self, method, path, *, params=None, json=None, stream=False, read_timeout=-1, route=None):
        """One call; `read_timeout=None` waits forever (follow streams). `route` names it in metrics."""
        if self.observe is None:
            return self._request(method, path, params, json, stream, read_timeout)
        with self.observe(self.kind, self.remote, method, route or "(unnamed)"):
            return self._request(method, path, params, json, stream, read_timeout)

    def timeouts(self, read_timeout):
        """(connect, read) timeouts of one call: the connect timeout is the client's, at most the call's own
        timeout (its deadline), and both at most what is left of the fan-out's deadline (call_all), so a
        host that drops connection attempts costs no call more than it may take."""
        connect = self.connect_timeout if read_timeout is None else min(self.connect_timeout, read_timeout)
        deadline = _deadline.get()
        if deadline is not None:
            left = max(deadline - time.monotonic(), 0.001)
            connect, read_timeout = min(connect, left), left if read_timeout is None else min(read_timeout, left)
        return connect, read_timeout

    def _request(self, method, path, params, json, stream, read_timeout):
        connect, read_timeout = self.timeouts(self.timeout if read_timeout == -1 else read_timeout)
        headers = {"X-Request-ID": requestid.current()} if requestid.current() != "-" else None
        try:
            response = self.session.request(method, f"{self.base_url}{path}", params=params, json=json,
                                            stream=stream, timeout=(connect, read_timeout), headers=headers)
        except requests.ConnectTimeout:
            raise self.timeout_error(f"The {self.kind} of {self.remote} did not accept a connection within "
                                     f"{connect:.3g} s.", remote=self.remote, status_code=504,
                                     code=f"{self.kind}_timeout", outcome_unknown=False) from None
        except requests.Timeout:
            raise self.timeout_error(f"The {self.kind} of {self.remote} timed out.", remote=self.remote,
                                     status_code=504, code=f"{self.kind}_timeout",
                                     outcome_unknown=method in MUTATING) from None
        except requests.RequestException as exc:
            log.warning("%s %s %s%s failed: %r", self.kind, self.remote, method, path, exc)  # the answer says less
            raise self.unavailable_error(f"The {self.kind} of {self.remote} is unreachable: "
                                         f"{exc.__class__.__name__}.", remote=self.remote,
                                         code=f"{self.kind}_unavailable", outcome_unknown=method in MUTATING) from None
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
            error = self.timeout_error if response.status_code == 504 else self.unavailable_error
            raise error(f"{self.remote}: {message}", remote=self.remote,
                        status_code=504 if response.status_code == 504 else 502, code=code,
                        outcome_unknown=bool(detail.get("outcome_unknown")) and method in MUTATING, detail=detail)
        if response.status_code == 404:
            raise self.not_found_error(message, detail=detail, code=code)
        raise BoatLoadError(message, detail=detail, code=code, status_code=response.status_code)

    def call(self, op, *, params=None, json=None, read_timeout=-1, **arguments):
        """One operation; its JSON answer (None when it has no body)."""
        response = self.request(op.method, op.path(**arguments), params=params, json=json, read_timeout=read_timeout,
                                route=op.route)
        return response.json() if response.content else None

    def stream(self, op, *, params=None, **arguments):
        """(response, chunk iterator) of a streamed answer; the caller closes the response."""
        response = self.request(op.method, op.path(**arguments), params=params, stream=True, read_timeout=None,
                                route=op.route)
        return response, response.iter_content(STREAM_CHUNK)


def call_all(calls, *, timeout, workers=None):
    """Run every `(key, call)` in parallel; [(key, answer, error)] in their order.

    One hard deadline for them all, counted from the call: a call still running after `timeout`
    seconds is given up as a 504 naming its key, so one slow remote never holds the rest, and the
    caller has its answer then whatever the fleet size. Each remote call made inside knows the
    deadline (RemoteClient.timeouts): it waits no longer to connect or to read than is left of it,
    so a given-up worker ends by the deadline too.

    By default every call gets its own worker (a thread; a greenlet in the API's gevent workers,
    which patch threading), started at once: no shared pool whose workers earlier fan-outs' frozen
    remotes still hold, nor a queue that starts the fifty-first host after the first fifty. With
    `workers`, at most that many threads run them, each taking the next call until none is left or
    the deadline has passed (a call not started by then is given up like a late one): what a
    process of real threads (the reconciler's fleet collection) uses, so 1,000 hosts are not 1,000
    threads a pass. Each call runs in a copy of the caller's context, so the request id reaches
    every remote. A call raising a BoatLoadError has it as its error; any other exception is raised
    here. The calls must not touch the database (make clients before, in the caller's thread).
    """
    calls = list(calls)
    deadline = time.monotonic() + timeout
    outcomes = [None] * len(calls)  # (answer, error, unexpected exception) once the call ended
    finished = threading.Condition()
    pending = [len(calls)]
    waiting = collections.deque(enumerate(calls))  # (index, (key, call)) not started yet
    context = contextvars.copy_context()

    def run(index, call):
        _deadline.set(deadline)
        try:
            outcome = (call(), None, None)
        except BoatLoadError as error:
            outcome = (None, error, None)
        except BaseException as exc:  # raised in the caller's thread, as it would have been there
            outcome = (None, None, exc)
        with finished:
            outcomes[index] = outcome
            pending[0] -= 1
            if not pending[0]:
                finished.notify_all()

    def work():
        while True:
            with finished:
                if not waiting or time.monotonic() >= deadline:
                    return
                index, (_, call) = waiting.popleft()
            context.copy().run(run, index, call)

    for number in range(len(calls) if workers is None else min(workers, len(calls))):
        threading.Thread(target=work, daemon=True, name=f"remote-call-{number}").start()
    with finished:
        while pending[0] and (left := deadline - time.monotonic()) > 0:
            finished.wait(left)
        ended = list(outcomes)  # what ended by the deadline; a later end changes nothing here
        waiting.clear()  # nothing starts after the deadline
    results = []
    for (key, _), outcome in zip(calls, ended):
        if outcome is None:
            name = getattr(key, "name", str(key))
            results.append((key, None, RemoteError(f"{name} did not answer within {timeout:g} s.", remote=name,
                                                   status_code=504, code="timeout")))
            continue
        answer, error, unexpected = outcome
        if unexpected is not None:
            raise unexpected
        results.append((key, answer, error))
    return results
