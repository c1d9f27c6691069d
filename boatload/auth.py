"""Authentication of satellites calling the API (heartbeats): the shared HMAC signature."""
import re
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from boatload.models import Host, SeenNonce
from common import signing


def remember_nonce(key_id, nonce):
    """Record a nonce in the database so every API worker refuses its replay."""
    try:
        with transaction.atomic():
            SeenNonce.objects.create(key_id=key_id, nonce=nonce)
    except IntegrityError:
        return False
    return True


def forget_old_nonces():
    cutoff = timezone.now() - timedelta(seconds=2 * signing.MAX_SKEW)
    return SeenNonce.objects.filter(seen__lt=cutoff).delete()[0]


class SatellitePrincipal:
    """The caller of a signed request: a satellite, known by its host."""

    is_authenticated = True
    is_staff = False

    def __init__(self, host):
        self.host = host


class HostSignatureAuthentication(authentication.BaseAuthentication):
    """Accepts requests signed with an enrolled host's key; request.auth is the Host.

    The key is found by its indexed column (key_id, else next_key_id while a rotation runs); a
    nonce is remembered in SeenNonce unless a subclass records it elsewhere (`remember`)."""

    def remember(self, request, key_id, nonce):
        return remember_nonce(key_id, nonce)

    def authenticate(self, request):
        if signing.HEADER_SIGNATURE not in request.headers:
            return None
        hosts = {}

        def secret_for(key_id):
            host = None
            if key_id:
                host = Host.objects.filter(key_id=key_id).first() or Host.objects.filter(next_key_id=key_id).first()
            hosts[key_id] = host
            if host is None:
                return None
            return host.secret if host.key_id == key_id else host.next_secret

        try:
            key_id = signing.verify(
                method=request.method, path=request.path, query=request.META.get("QUERY_STRING", ""),
                body=request.body, headers=request.headers, secret_for=secret_for,
                remember_nonce=lambda key_id, nonce: self.remember(request, key_id, nonce),
            )
        except signing.SignatureError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from None
        return SatellitePrincipal(hosts[key_id]), hosts[key_id]

    def authenticate_header(self, request):
        return "BoatLoad-HMAC"


HEARTBEAT_NONCE = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # kept space-separated in the host row


class HeartbeatSignatureAuthentication(HostSignatureAuthentication):
    """The same signature, its nonce not written here: the heartbeat's one UPDATE of its host row
    checks and records it (services.host_heartbeat with `request.signed_at`), so a heartbeat costs
    one write, not a nonce row and an update. The view must pass `signed_at` on."""

    def remember(self, request, key_id, nonce):
        if not HEARTBEAT_NONCE.fullmatch(nonce):
            return False
        request.signed_at = (int(request.headers[signing.HEADER_TIMESTAMP]), nonce)
        return True


class HostSignatureScheme(OpenApiAuthenticationExtension):
    """Describes the satellite signature in the OpenAPI schema."""

    target_class = "boatload.auth.HostSignatureAuthentication"
    match_subclasses = True  # the heartbeat's HeartbeatSignatureAuthentication too
    name = "hostSignature"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": signing.HEADER_SIGNATURE,
                "description": "HMAC-SHA256 signature of a satellite (see README, Security)."}


class SchemaPermission(permissions.BasePermission):
    """The OpenAPI schema and its viewer need a login like every endpoint, unless BOATLOAD_PUBLIC_SCHEMA opens them."""

    def has_permission(self, request, view):
        return settings.PUBLIC_SCHEMA or bool(request.user and request.user.is_authenticated)
