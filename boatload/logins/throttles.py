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

    def cache_key_for(self, ident):
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
            return self.cache_key_for(f"name:{username.strip().casefold()}")
        raw = data.get("refresh") or data.get("token")
        if isinstance(raw, str):
            try:
                return self.cache_key_for(f"id:{UntypedToken(raw)[api_settings.USER_ID_CLAIM]}")
            except (TokenError, KeyError):
                return None  # a forged or broken token names nobody; the address throttle still counts it
        return None


class LoginAddressThrottle(_SettingsRateThrottle):
    """Per client address (REMOTE_ADDR, or X-Forwarded-For behind BOATLOAD_TRUSTED_PROXIES proxies)."""

    scope = "login-address"
    rate_setting = "LOGIN_RATE_ADDRESS"

    def get_cache_key(self, request, view):
        return self.cache_key_for(f"addr:{self.get_ident(request)}")


LOGIN_THROTTLES = [LoginAddressThrottle, LoginUserThrottle]


class CredentialUserThrottle(_SettingsRateThrottle):
    """Per signed-in user, for making and revoking credentials (API keys, scale hooks).

    The same bucket as the token refreshes of that user (`id:<user id>`): one budget for minting
    credentials per user, at BOATLOAD_LOGIN_RATE_USER."""

    scope = "login-user"
    rate_setting = "LOGIN_RATE_USER"

    def get_cache_key(self, request, view):
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return self.cache_key_for(f"id:{user.pk}")


CREDENTIAL_THROTTLES = [LoginAddressThrottle, CredentialUserThrottle]


class KeyFailureThrottle(_SettingsRateThrottle):
    """Wrong, revoked or expired API keys and hook secrets, per client address (BOATLOAD_LOGIN_RATE_ADDRESS).

    Unlike a login, a key is sent with every request of a machine, so only failures count; but
    once an address is over the rate, every key it sends is refused until the window has passed,
    the right one too, so a lockout cannot be guessed through."""

    scope = "key-address"
    rate_setting = "LOGIN_RATE_ADDRESS"

    def get_cache_key(self, request, view):
        return self.cache_key_for(f"addr:{self.get_ident(request)}")

    def wait_if_over(self, request):
        """Seconds to wait when the address is over the rate now, else None; counts nothing."""
        if self.rate is None:
            return None
        self.key = self.get_cache_key(request, None)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()
        return max(1, math.ceil(self.wait() or 1)) if len(self.history) >= self.num_requests else None

    def record_failure(self, request):
        """Count one failure; the seconds to wait when this one went over the rate, else None."""
        if self.allow_request(request, None):
            return None
        return max(1, math.ceil(self.wait() or 1))


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
