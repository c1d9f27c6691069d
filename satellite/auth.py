"""Every request to a satellite must be signed by the API (see common.signing).

The nonces seen inside the window are kept in the state folder (`nonces.log`), so a request
captured before a restart is refused after it as well (see PersistentNonceMemory for why
this and not a cut-off at the process start).
"""
from pathlib import Path

from django.conf import settings
from rest_framework import authentication, exceptions

from common import signing
from satellite import credentials

nonces = signing.PersistentNonceMemory(lambda: Path(settings.STATE_DIR) / "nonces.log")


class APICaller:
    """The verified caller: the API server holding one of this host's keys."""

    is_authenticated = True

    def __init__(self, key_id):
        self.key_id = key_id


class SignatureAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        try:
            key_id = signing.verify(
                method=request.method, path=request.path, query=request.META.get("QUERY_STRING", ""),
                body=request.body, headers=request.headers, secret_for=credentials.secret_for,
                remember_nonce=nonces.remember,
            )
        except signing.SignatureError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        return APICaller(key_id), key_id

    def authenticate_header(self, request):
        return "BoatLoad-HMAC"
