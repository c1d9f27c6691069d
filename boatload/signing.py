"""HMAC-SHA256 request signatures between the API server and its satellites.

The signature covers the method, the path and query, the SHA-256 of the body, a
timestamp, a nonce and the key id. The receiver rejects a missing header, a clock skew
over `MAX_SKEW` seconds, a nonce already seen inside the window, an unknown key, or a bad
signature. Unlike a constant bearer token, a captured request can not be replayed.
"""
import hashlib
import hmac
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
    try:
        timestamp = int(timestamp)
    except ValueError:
        raise SignatureError("The signature timestamp is not an integer.") from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > MAX_SKEW:
        raise SignatureError("The signature timestamp is too far from this host's clock.")
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
