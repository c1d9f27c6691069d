"""Redeploy hooks (scale hooks are genisys/api/hooks.py): POST/DELETE /service/<name>/hook (its owner or
staff), POST /hooks/<secret> (the secret is the credential: no JWT)."""
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from genisys import hooks
from genisys.api.views import ServiceView
from genisys.api.waiting import DeploymentSerializer
from observe import audit


class HookSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="POST it to redeploy; shown only now.")


class HookTriggerSerializer(serializers.Serializer):
    url = serializers.CharField(help_text="The deployment's URL.")
    deployment = DeploymentSerializer()


class ServiceHookView(ServiceView):
    @extend_schema(request=None, responses={201: HookSerializer})
    def post(self, request, name):
        """Make the service's redeploy hook (a new secret: an older hook URL stops working)."""
        secret = hooks.hook_create(service=self.get_object(), user=request.user)
        return Response({"url": request.build_absolute_uri(f"/hooks/{secret}")}, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def delete(self, request, name):
        """Revoke the service's redeploy hook."""
        hooks.hook_revoke(service=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class HookTriggerView(APIView):
    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=None, responses={202: HookTriggerSerializer}, auth=[])
    def post(self, request, secret):
        """Redeploy the hook's service: its current definition, the image tag resolved again on its hosts."""
        hook = hooks.hook_find(secret)
        audit.act_as(hook.created_by, target=hook.service.name, via="redeploy-hook")  # also when it fails
        deployment = hooks.hook_redeploy(hook=hook)
        shown = DeploymentSerializer(deployment, context={"request": request}).data
        return Response({"url": shown["url"], "deployment": shown}, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": shown["url"]})
