"""Fetching `scripturl` and `dataurl` without becoming a proxy into private networks.

Only http and https; every target (and every redirect) is resolved and refused when any
address is loopback, private, link-local, reserved or multicast, unless the allow-list
`SATELLITE_FETCH_ALLOW` names its network or host. For plain http the connection goes to
the address that was checked (no second DNS lookup to rebind). Bodies are streamed into a
temp file with a size cap and an overall deadline.
"""
import ipaddress
import socket
import tempfile
import time
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
from django.conf import settings

from common.errors import BadInput, RemoteError, TooLarge

MAX_REDIRECTS = 5
CHUNK = 64 * 1024


def _allowed_networks():
    networks, names = [], set()
    for item in settings.FETCH_ALLOW:
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            names.add(item.lower())
    return networks, names


def check_target(url, field):
    """Return (url to connect to, Host header or None) after checking scheme and addresses."""
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
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise BadInput(field, f"the host {host} can not be resolved") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    networks, names = _allowed_networks()
    for address in addresses:
        allowed = host.lower() in names or any(address in net for net in networks)
        if not allowed and not address.is_global:
            raise BadInput(field, f"{host} resolves to {address}, a non-public address this satellite "
                                  "does not fetch from (see SATELLITE_FETCH_ALLOW)")
    if parts.scheme == "http":
        address = addresses[0]
        literal = f"[{address}]" if address.version == 6 else str(address)
        netloc = f"{literal}:{port}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), parts.netloc
    return url, None


def fetch_to_file(url, *, field, max_bytes):
    """Download `url` into a temp file (caller closes it); refuse more than `max_bytes`."""
    deadline = time.monotonic() + settings.FETCH_TIMEOUT
    session = requests.Session()
    session.trust_env = False  # never go through a proxy from the environment
    for _ in range(MAX_REDIRECTS + 1):
        target, host_header = check_target(url, field)
        headers = {"Host": host_header} if host_header else {}
        try:
            response = session.get(target, headers=headers, stream=True, allow_redirects=False,
                                   timeout=(min(5, settings.FETCH_TIMEOUT), settings.FETCH_TIMEOUT))
        except requests.RequestException as exc:
            raise RemoteError(f"Fetching {field} failed: {exc.__class__.__name__}", remote=url,
                              code="fetch_failed", detail={"field": field}) from None
        if response.is_redirect:
            url = urljoin(url, response.headers.get("Location", ""))
            response.close()
            continue
        if response.status_code != 200:
            response.close()
            raise BadInput(field, f"fetching it answered HTTP {response.status_code}")
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
        for chunk in response.iter_content(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise TooLarge(f"{field}: over the limit of {max_bytes} bytes", detail={"field": field})
            if time.monotonic() > deadline:
                raise RemoteError(f"Fetching {field} took longer than {settings.FETCH_TIMEOUT}s",
                                  remote=response.url, status_code=504, code="fetch_timeout",
                                  detail={"field": field})
            out.write(chunk)
    except BaseException:
        out.close()
        raise
    finally:
        response.close()
    out.seek(0)
    return out
