"""Throttles of logins and token refresh: per user (the username tried) and per client address.

The counters live in Django's default cache, the database cache (settings.CACHES), so every
gunicorn worker and every API server on the same database shares them. Rates are read from
settings on each request (BOATLOAD_LOGIN_RATE_USER, BOATLOAD_LOGIN_RATE_ADDRESS). A request
over a rate gets 429 with Retry-After, in the one error shape (boatload.errors).
"""
import hashlib

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import UntypedToken


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
        data = request.data if hasattr(request.data, "get") else {}
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
