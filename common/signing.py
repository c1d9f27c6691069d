"""HMAC-SHA256 request signatures between the API server and its satellites.

The signature covers the method, the path and query, the SHA-256 of the body, a
timestamp, a nonce and the key id. The receiver rejects a missing header, a clock skew
over `MAX_SKEW` seconds, a nonce already seen inside the window, an unknown key, or a bad
signature. Unlike a constant bearer token, a captured request can not be replayed.

Answers that change the receiver's state (heartbeat answers) are signed back with the key
the request was signed with, bound to the request's nonce (`sign_response_headers`,
`verify_response`), so an old answer can not be replayed and a forged one is refused.
`docs/security.md` ("The channel") describes the canonical forms byte by byte.
"""
import hashlib
import hmac
import os
import secrets
import threading
import time
from urllib.parse import unquote, urlsplit

import requests

MAX_SKEW = 300
HEADER_KEY = "X-BoatLoad-Key"
HEADER_TIMESTAMP = "X-BoatLoad-Timestamp"
HEADER_NONCE = "X-BoatLoad-Nonce"
HEADER_SIGNATURE = "X-BoatLoad-Signature"


class SignatureError(Exception):
    """The request is not signed by a key the receiver knows, or not recently."""


def canonical(method, path, query, body_sha256, timestamp, nonce, key_id):
    return "\n".join([method.upper(), path, query, body_sha256, str(timestamp), nonce, key_id]).encode()


def signature(secret, message):
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_headers(secret, key_id, method, path, query, body, *, timestamp=None, nonce=None):
    """Headers that sign one request; `path` is the decoded path, `query` the raw query."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    nonce = nonce or secrets.token_hex(16)
    digest = hashlib.sha256(body or b"").hexdigest()
    message = canonical(method, path, query, digest, timestamp, nonce, key_id)
    return {
        HEADER_KEY: key_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: signature(secret, message),
    }


class HmacAuth(requests.auth.AuthBase):
    """requests auth that signs every prepared request with a key id and secret."""

    def __init__(self, key_id, secret):
        self.key_id = key_id
        self.secret = secret

    def __call__(self, request):
        parts = urlsplit(request.url)
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        if not isinstance(body, bytes):
            raise TypeError("signed requests need a body in memory, not a stream")
        request.headers.update(
            sign_headers(self.secret, self.key_id, request.method, unquote(parts.path), parts.query, body)
        )
        return request


class NonceMemory:
    """Nonces seen inside the skew window, in this process; thread-safe."""

    def __init__(self, window=2 * MAX_SKEW):
        self.window = window
        self._seen = {}
        self._lock = threading.Lock()

    def remember(self, key_id, nonce):
        """True when the nonce is new; False when it was seen inside the window."""
        now = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {k: t for k, t in self._seen.items() if now - t < self.window}
            seen_at = self._seen.get((key_id, nonce))
            if seen_at is not None and now - seen_at < self.window:
                return False
            self._seen[(key_id, nonce)] = now
            return True


def _fresh(timestamp, now, what):
    """The signed timestamp as an int, when it is one and within MAX_SKEW of `now`; else SignatureError."""
    try:
        timestamp = int(timestamp)
    except ValueError:
        raise SignatureError(f"{what} timestamp is not an integer.") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > MAX_SKEW:
        raise SignatureError(f"{what} timestamp is too far from this host's clock.")
    return timestamp


def verify(*, method, path, query, body, headers, secret_for, remember_nonce, now=None):
    """Check a signed request; return its key id or raise SignatureError.

    `secret_for(key_id)` returns the secret or None; `remember_nonce(key_id, nonce)`
    returns False when the nonce was already used.
    """
    key_id = headers.get(HEADER_KEY)
    timestamp = headers.get(HEADER_TIMESTAMP)
    nonce = headers.get(HEADER_NONCE)
    sent = headers.get(HEADER_SIGNATURE)
    if not (key_id and timestamp and nonce and sent):
        raise SignatureError("The request is not signed.")
    timestamp = _fresh(timestamp, now, "The signature")
    secret = secret_for(key_id)
    if not secret:
        raise SignatureError("The signing key is unknown.")
    digest = hashlib.sha256(body or b"").hexdigest()
    expected = signature(secret, canonical(method, path, query, digest, timestamp, nonce, key_id))
    if not hmac.compare_digest(expected, sent):
        raise SignatureError("The signature does not match the request.")
    if not remember_nonce(key_id, nonce):
        raise SignatureError("The request was already used (nonce replayed).")
    return key_id


def response_canonical(status, method, path, request_nonce, body_sha256, timestamp, key_id):
    return "\n".join(["RESPONSE", str(int(status)), method.upper(), path, request_nonce, body_sha256,
                      str(timestamp), key_id]).encode()


def sign_response_headers(secret, key_id, *, status, method, path, request_nonce, body, timestamp=None):
    """Headers that sign an answer to the request whose nonce was `request_nonce`."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    digest = hashlib.sha256(body or b"").hexdigest()
    message = response_canonical(status, method, path, request_nonce, digest, timestamp, key_id)
    return {HEADER_KEY: key_id, HEADER_TIMESTAMP: str(timestamp), HEADER_SIGNATURE: signature(secret, message)}


def verify_response(response, *, key_id, secret, request_nonce, now=None):
    """Check that a requests response is the signed answer to our request; raise SignatureError."""
    headers = response.headers
    sent, timestamp = headers.get(HEADER_SIGNATURE), headers.get(HEADER_TIMESTAMP)
    if not (sent and timestamp):
        raise SignatureError("The answer is not signed.")
    if headers.get(HEADER_KEY) != key_id:
        raise SignatureError("The answer is signed with another key than the request.")
    timestamp = _fresh(timestamp, now, "The answer's signature")
    request = response.request
    digest = hashlib.sha256(response.content or b"").hexdigest()
    expected = signature(secret, response_canonical(response.status_code, request.method,
                                                    unquote(urlsplit(request.url).path), request_nonce, digest,
                                                    timestamp, key_id))
    if not hmac.compare_digest(expected, sent):
        raise SignatureError("The answer's signature does not match (forged, altered or for another request).")


class PersistentNonceMemory(NonceMemory):
    """NonceMemory that survives a restart: every nonce is appended to a file before the request
    is served, and the file's live entries are loaded on first use, so a request captured before
    a restart is still refused as a replay afterwards (and the clock-skew window stays as it is).

    The file holds `<unix time seen> <key id> <nonce>` lines; it is rewritten without the
    expired ones at load and every 20,000 lines.
    """

    def __init__(self, path_of, window=2 * MAX_SKEW):
        super().__init__(window)
        self.path_of = path_of  # a callable: the state folder is known once settings are
        self._fd = None
        self._lines = 0

    def _open(self):
        path = self.path_of()
        now = time.time()
        try:
            for line in path.read_text().splitlines():
                parts = line.split(" ", 2)
                if len(parts) == 3:
                    try:
                        seen = float(parts[0])
                    except ValueError:
                        continue
                    if now - seen < self.window:
                        self._seen[(parts[1], parts[2])] = seen
        except FileNotFoundError:
            pass
        self._rewrite(path)

    def _rewrite(self, path):
        tmp = path.with_name(f".{path.name}.tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{seen:.3f} {key} {nonce}\n" for (key, nonce), seen in self._seen.items())
        os.replace(tmp, path)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._lines = len(self._seen)

    def remember(self, key_id, nonce):
        now = time.time()
        with self._lock:
            if self._fd is None:
                self._open()
            seen_at = self._seen.get((key_id, nonce))
            if seen_at is not None and now - seen_at < self.window:
                return False
            self._seen[(key_id, nonce)] = now
            os.write(self._fd, f"{now:.3f} {key_id} {nonce}\n".encode())
            self._lines += 1
            if self._lines > 20_000:
                self._seen = {k: t for k, t in self._seen.items() if now - t < self.window}
                self._rewrite(self.path_of())
            return True
