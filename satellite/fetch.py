"""Fetching `scripturl` and `dataurl` without becoming a proxy into private networks.

Only http and https; every target (and every redirect) is resolved and refused when any
address is loopback, private, link-local, reserved or multicast, unless the allow-list
`SATELLITE_FETCH_ALLOW` names its network or host. The connection goes to the address
that was checked, for http and https alike (no second DNS lookup to rebind; https still
verifies the certificate for the URL's host name). Bodies are streamed into a temp file
with a size cap.

One wall-clock deadline (`SATELLITE_FETCH_TIMEOUT`) covers the whole fetch, redirects
included: name resolution, connect, TLS, headers and body. A watchdog shuts the socket
down when the deadline passes, so a server that drips one byte at a time can not hold a
satellite thread past it; every socket operation also times out at the time left.
"""
import http.client
import ipaddress
import socket
import ssl
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from common.errors import BadInput, RemoteError, TooLarge

MAX_REDIRECTS = 5
CHUNK = 64 * 1024
USER_AGENT = "boatload-satellite"

# Name resolution can not be interrupted; it runs here so the caller waits only the time left.
_resolver = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fetch-dns")


class Deadline:
    """The time left of one fetch; `expired()` raises the 504 naming the field."""

    def __init__(self, field, seconds):
        self.field = field
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self):
        return self.end - time.monotonic()

    def check(self, url):
        if self.left() <= 0:
            raise self.expired(url)
        return self.left()

    def expired(self, url):
        return RemoteError(f"Fetching {self.field} took longer than {self.seconds:g}s", remote=url,
                           status_code=504, code="fetch_timeout", detail={"field": self.field})


class Watchdog:
    """Shuts a socket down at the deadline, which ends any read or write blocked on it."""

    def __init__(self, sock, seconds):
        self._sock = sock.dup()  # a second handle to the same connection, unaffected by TLS wrapping
        self.fired = False
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self):
        with self._lock:
            if self._sock is None:
                return
            self.fired = True
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self._timer.cancel()
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def _allowed_networks():
    networks, names = [], set()
    for item in settings.FETCH_ALLOW:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            names.add(item.lower())
    return networks, names


def _resolve(host, port, field, deadline, url):
    future = _resolver.submit(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    try:
        return future.result(timeout=max(deadline.left(), 0))
    except FutureTimeout:
        raise deadline.expired(url) from None
    except (socket.gaierror, UnicodeError):
        raise BadInput(field, f"the host {host} can not be resolved") from None


def check_target(url, field, deadline=None):
    """Return (scheme, host, port, checked address) after checking scheme and addresses."""
    deadline = deadline or Deadline(field, settings.FETCH_TIMEOUT)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise BadInput(field, "only http and https URLs can be fetched")
    host = parts.hostname
    if not host:
        raise BadInput(field, "the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadInput(field, "the URL has a bad port") from None
    infos = _resolve(host, port, field, deadline, url)
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    networks, names = _allowed_networks()
    for address in addresses:
        allowed = host.lower() in names or any(address in net for net in networks)
        if not allowed and not address.is_global:
            raise BadInput(field, f"{host} resolves to {address}, a non-public address this satellite "
                                  "does not fetch from (see SATELLITE_FETCH_ALLOW)")
    return parts.scheme, host, port, addresses[0]


class _Response:
    """An open response: its status, headers and body reader, and what must be closed."""

    def __init__(self, connection, response, watchdog, url):
        self.connection, self.response, self.watchdog, self.url = connection, response, watchdog, url
        self.status = response.status
        self.headers = response.headers

    def close(self):
        self.watchdog.close()
        self.response.close()  # its file holds a reference that would keep the socket open
        self.connection.close()


def _open(url, field, deadline):
    """Connect to the checked address of `url` and read the status line and headers."""
    scheme, host, port, address = check_target(url, field, deadline)
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        sock = socket.create_connection((str(address), port), timeout=deadline.check(url))
    except TimeoutError:
        raise deadline.expired(url) from None
    except OSError as exc:
        raise RemoteError(f"Fetching {field} failed: {exc.__class__.__name__}", remote=url,
                          code="fetch_failed", detail={"field": field}) from None
    watchdog = Watchdog(sock, deadline.left())
    connection = http.client.HTTPConnection(str(address), port, timeout=deadline.left())
    try:
        if scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        connection.sock = sock
        connection.putrequest("GET", path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", parts.netloc.rsplit("@", 1)[-1])
        connection.putheader("User-Agent", USER_AGENT)
        connection.putheader("Accept-Encoding", "identity")
        connection.endheaders()
        sock.settimeout(max(deadline.left(), 0.001))
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as exc:
        watchdog.close()
        connection.close()
        if watchdog.fired or deadline.left() <= 0 or isinstance(exc, TimeoutError):
            raise deadline.expired(url) from None
        raise RemoteError(f"Fetching {field} failed: {exc.__class__.__name__}", remote=url,
                          code="fetch_failed", detail={"field": field}) from None
    return _Response(connection, response, watchdog, url)


def fetch_to_file(url, *, field, max_bytes):
    """Download `url` into a temp file (caller closes it); refuse more than `max_bytes`."""
    deadline = Deadline(field, settings.FETCH_TIMEOUT)
    for _ in range(MAX_REDIRECTS + 1):
        response = _open(url, field, deadline)
        if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
            url = urljoin(url, response.headers["Location"])
            response.close()
            continue
        if response.status != 200:
            response.close()
            raise BadInput(field, f"fetching it answered HTTP {response.status}")
        return _save(response, field=field, max_bytes=max_bytes, deadline=deadline)
    raise BadInput(field, f"more than {MAX_REDIRECTS} redirects")


def _save(response, *, field, max_bytes, deadline):
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        response.close()
        raise TooLarge(f"{field}: {declared} bytes is over the limit of {max_bytes}", detail={"field": field})
    out = tempfile.TemporaryFile()
    size = 0
    try:
        while True:
            deadline.check(response.url)
            try:
                chunk = response.response.read1(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                if response.watchdog.fired or deadline.left() <= 0 or isinstance(exc, TimeoutError):
                    raise deadline.expired(response.url) from None
                raise RemoteError(f"Fetching {field} failed: {exc.__class__.__name__}", remote=response.url,
                                  code="fetch_failed", detail={"field": field}) from None
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"{field}: over the limit of {max_bytes} bytes", detail={"field": field})
            out.write(chunk)
        if response.watchdog.fired:  # the watchdog's shutdown reads as an early end of the body
            raise deadline.expired(response.url)
        if response.response.length:  # the server closed before sending what Content-Length said
            raise RemoteError(f"Fetching {field} failed: the body ended early", remote=response.url,
                              code="fetch_failed", detail={"field": field})
    except BaseException:
        out.close()
        raise
    finally:
        response.close()
    out.seek(0)
    return out
