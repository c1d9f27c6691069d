"""/v1/apikey/: a user makes, lists and revokes their own API keys (staff see and revoke all).

Managing keys needs a password login (a JWT or a session), never an API key: a stolen key can
not mint the keys that would outlive its revocation. Making and revoking are throttled like
logins: per client address and per user, on the same per-user budget as token refreshes.
"""
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework_simplejwt.authentication import JWTAuthentication

from boatload.logins.models import APIKey
from boatload.logins.throttles import CREDENTIAL_THROTTLES
from common.serializers import ModelSerializer
from observe import audit


class UsedKeySerializer(ModelSerializer):
    """What API keys and scale hooks share: the public prefix as `id`, an optional expiry in the future."""

    id = serializers.CharField(source="prefix", read_only=True, help_text="The public prefix.")
    expires = serializers.DateTimeField(source="expiry_date", required=False, allow_null=True,
                                        help_text="When it stops working; none: never.")

    def validate_expires(self, value):
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must lie in the future.")
        return value


class APIKeySerializer(UsedKeySerializer):
    name = serializers.CharField(max_length=50, help_text="What the key is for, e.g. `ci` (need not be unique).")
    user = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = APIKey
        fields = ["id", "name", "user", "created", "expires", "last_used", "revoked"]
        read_only_fields = ["created", "last_used", "revoked"]


class IssuedAPIKeySerializer(APIKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The key itself: shown in this answer only.")

    class Meta(APIKeySerializer.Meta):
        fields = [*APIKeySerializer.Meta.fields, "key"]


class APIKeyViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                    viewsets.GenericViewSet):
    """API keys: `Authorization: Token <key>` acts as the key's user wherever a JWT is accepted."""

    serializer_class = APIKeySerializer
    authentication_classes = [JWTAuthentication, SessionAuthentication]
    lookup_field = "prefix"
    lookup_url_kwarg = "id"
    lookup_value_regex = "[^/]+"
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return APIKey.objects.none()
        return APIKey.objects.visible_to(self.request.user).select_related("user")

    def get_throttles(self):
        return [throttle() for throttle in CREDENTIAL_THROTTLES] if self.action in {"create", "revoke"} else []

    @extend_schema(responses={201: IssuedAPIKeySerializer})
    def create(self, request, *args, **kwargs):
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        with audit.change("apikey.create") as entry:  # in the key's own transaction: never one without the other
            row, key = APIKey.objects.issue(user=request.user, name=data.validated_data["name"],
                                            expires=data.validated_data.get("expiry_date"))
            entry.target = row.prefix
        row.key = key
        return Response(IssuedAPIKeySerializer(row).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=APIKeySerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, id=None):
        """Revoke the key for good: it is refused from now on, and stays listed as revoked."""
        row = self.get_object()
        with audit.change("apikey.revoke", target=row.prefix):
            row.revoke()
        return Response(self.get_serializer(row).data)
