"""API keys as credentials: `Authorization: Token <key>` (or `X-API-Key: <key>`), wherever a JWT is accepted.

The key stands for its user: request.user is the key's owner, with exactly that user's rights,
and request.auth the APIKey row. A wrong, revoked or expired key (or one of an inactive user)
is 401 and counts against the client address's key throttle; an address over it gets 429 with
Retry-After for every key it sends (boatload/logins/throttles.py).
"""
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from boatload.logins.models import APIKey
from boatload.logins.throttles import KeyFailureThrottle

KEYWORD = "Token"
HEADER = "X-API-Key"


def key_from(request):
    """The raw key a request sends, or None when it sends none; a malformed header is a 401."""
    words = authentication.get_authorization_header(request).split()
    if words and words[0].lower() == KEYWORD.lower().encode():
        if len(words) != 2:
            raise exceptions.AuthenticationFailed(f"Send the key as `Authorization: {KEYWORD} <key>`, one word.")
        try:
            return words[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("An API key is ASCII.") from None
    return request.headers.get(HEADER) or None


def throttled_key_check(request, check):
    """Run `check()` (a row or None) under the key throttle of the request's address: 429 when over it,
    401 (counted) when `check` finds nothing."""
    throttle = KeyFailureThrottle()
    wait = throttle.wait_if_over(request)
    if wait is not None:
        raise exceptions.Throttled(wait, detail=f"Too many wrong keys; try again in {wait} s.")
    row = check()
    if row is None:
        wait = throttle.record_failure(request)
        if wait is not None:
            raise exceptions.Throttled(wait, detail=f"Too many wrong keys; try again in {wait} s.")
        return None
    return row


class APIKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        raw = key_from(request)
        if raw is None:
            return None
        row = throttled_key_check(request, lambda: APIKey.objects.usable_for(raw))
        if row is None:
            raise exceptions.AuthenticationFailed("The API key is wrong, revoked or expired.")
        row.mark_used()
        return row.user, row

    def authenticate_header(self, request):
        return KEYWORD


class APIKeyScheme(OpenApiAuthenticationExtension):
    """Describes API keys in the OpenAPI schema."""

    target_class = "boatload.logins.authentication.APIKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": f"`{KEYWORD} <key>` (or the key alone in `{HEADER}`): a per-user API key "
                               "from `/v1/apikey/`, with its user's rights."}
