"""Throttles of logins and token refresh: per user (the username tried) and per client address.

The counters live in Django's default cache, the database cache (settings.CACHES), so every
gunicorn worker and every API server on the same database shares them. Rates are read from
settings on each request (BOATLOAD_LOGIN_RATE_USER, BOATLOAD_LOGIN_RATE_ADDRESS). A request
over a rate gets 429 with Retry-After, in the one error shape (common.errors). Django's
own login forms (admin, browsable API) go through the same throttles (throttle_form_logins).
"""
import functools
import hashlib
import math

from django.conf import settings
from django.http import JsonResponse
from rest_framework.throttling import SimpleRateThrottle
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import UntypedToken

from common.errors import error_body


class _SettingsRateThrottle(SimpleRateThrottle):
    rate_setting = None

    def get_rate(self):
        return getattr(settings, self.rate_setting)

    def key(self, ident):
        digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": digest}


class LoginUserThrottle(_SettingsRateThrottle):
    """Per user: the username a login tries, or the user a (valid) refresh token names."""

    scope = "login-user"
    rate_setting = "LOGIN_RATE_USER"

    def get_cache_key(self, request, view):
        data = getattr(request, "data", None)  # a DRF request; a Django login form has POST
        data = data if hasattr(data, "get") else request.POST
        username = data.get("username")
        if isinstance(username, str) and username.strip():
            return self.key(f"name:{username.strip().casefold()}")
        raw = data.get("refresh") or data.get("token")
        if isinstance(raw, str):
            try:
                return self.key(f"id:{UntypedToken(raw)[api_settings.USER_ID_CLAIM]}")
            except (TokenError, KeyError):
                return None  # a forged or broken token names nobody; the address throttle still counts it
        return None


class LoginAddressThrottle(_SettingsRateThrottle):
    """Per client address (REMOTE_ADDR, or X-Forwarded-For behind BOATLOAD_TRUSTED_PROXIES proxies)."""

    scope = "login-address"
    rate_setting = "LOGIN_RATE_ADDRESS"

    def get_cache_key(self, request, view):
        return self.key(f"addr:{self.get_ident(request)}")


LOGIN_THROTTLES = [LoginAddressThrottle, LoginUserThrottle]


def throttle_form_logins(view):
    """The same throttles for Django's own login forms (the admin's, the browsable API's session login)."""

    @functools.wraps(view)
    def throttled(request, *args, **kwargs):
        if request.method == "POST":
            waits = [throttle.wait() for throttle in (cls() for cls in LOGIN_THROTTLES)
                     if not throttle.allow_request(request, view)]
            if waits:
                wait = max(1, math.ceil(max(wait or 1 for wait in waits)))
                return JsonResponse(error_body("throttled", f"Too many logins; try again in {wait} s.",
                                               {"retry_after": wait}), status=429, headers={"Retry-After": str(wait)})
        return view(request, *args, **kwargs)

    return throttled
