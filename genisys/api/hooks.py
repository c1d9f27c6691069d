"""Scale hooks: `POST /service/<name>/scale/<secret>` scales one service for a caller that can send
nothing but a body (Skynet's Consul handler, a CI job with no credentials store).

`/service/<name>/hooks` lists and makes a service's hooks, `/service/<name>/hooks/<id>/revoke`
revokes one: whoever reaches the service (its owner, staff), with a password login (JWT or
session), never an API key or a hook, and throttled like logins. A hook acts with the rights of
its maker; a wrong, revoked or expired secret is 404 like an unknown path, and counts against
the client address's key throttle (429 over it, for every secret it sends).
"""
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from boatload.logins.api import UsedKeySerializer
from boatload.logins.authentication import throttled_key_check
from boatload.logins.throttles import CREDENTIAL_THROTTLES
from common.errors import NotFound
from genisys import deploy
from genisys.api.serializers import ScaleResultSerializer, ScaleSerializer
from genisys.models import ScaleHook, Service
from observe import audit


class ScaleHookSerializer(UsedKeySerializer):
    name = serializers.CharField(max_length=50, help_text="Who calls it, e.g. `skynet`.")
    service = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = ScaleHook
        fields = ["id", "name", "service", "created_by", "created", "expires", "last_used", "revoked"]
        read_only_fields = ["created", "last_used", "revoked"]


class IssuedScaleHookSerializer(ScaleHookSerializer):
    url = serializers.CharField(read_only=True, help_text="The hook's URL, secret included: shown in this answer only.")

    class Meta(ScaleHookSerializer.Meta):
        fields = [*ScaleHookSerializer.Meta.fields, "url"]


class HookAdminView(APIView):
    """Hooks of a service the caller reaches (others' services are 404), with a password login."""

    authentication_classes = [JWTAuthentication, SessionAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    throttled_methods = {"POST"}

    def get_throttles(self):
        return [throttle() for throttle in CREDENTIAL_THROTTLES] if self.request.method in self.throttled_methods \
            else []

    def service(self, name):
        service = Service.objects.visible_to(self.request.user).filter(name=name).first()
        if service is None:
            raise NotFound()
        return service


class ServiceHookListView(HookAdminView):
    @extend_schema(responses=ScaleHookSerializer(many=True), operation_id="service_hooks_list")
    def get(self, request, name):
        hooks = self.service(name).hooks.select_related("service", "created_by")
        return Response(ScaleHookSerializer(hooks, many=True).data)

    @extend_schema(request=ScaleHookSerializer, responses={201: IssuedScaleHookSerializer})
    def post(self, request, name):
        """A new hook of this service; its URL (with the secret) is in this answer only."""
        service = self.service(name)
        data = ScaleHookSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row, secret = ScaleHook.objects.issue(service=service, user=request.user, name=data.validated_data["name"],
                                              expires=data.validated_data.get("expiry_date"))
        row.url = request.build_absolute_uri(f"/service/{service.name}/scale/{secret}")
        return Response(IssuedScaleHookSerializer(row).data, status=status.HTTP_201_CREATED)


class ServiceHookRevokeView(HookAdminView):
    @extend_schema(request=None, responses=ScaleHookSerializer)
    def post(self, request, name, hook_id):
        """Revoke the hook for good: its URL is refused from now on."""
        row = self.service(name).hooks.filter(prefix=hook_id).first()
        if row is None:
            raise NotFound()
        row.revoke()
        return Response(ScaleHookSerializer(row).data)


class ServiceHookScaleView(APIView):
    """The hook itself: the secret in the URL is the only credential."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=ScaleSerializer, responses=ScaleResultSerializer, operation_id="service_scale_hook")
    def post(self, request, name, secret):
        """Scale the hook's service as `POST /service/<name>/scale` does, as the user who made the hook."""
        hook = throttled_key_check(request, lambda: ScaleHook.objects.usable_for(secret, service_name=name))
        if hook is None:
            raise NotFound("No such hook (or it is revoked or expired).")
        audit.act_as(hook.created_by, target=hook.service.name, via="scale-hook", hook=hook.prefix)
        data = ScaleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        hook.mark_used()
        result, _ = deploy.scale_deployed(service=hook.service, user=hook.created_by, source="hook",
                                          **data.validated_data)
        return Response(result)
