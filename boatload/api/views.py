"""Thin viewsets of the v1 API."""
from django.db import connection
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from boatload import services
from boatload.api import serializers
from boatload.auth import HostSignatureAuthentication
from boatload.models import Host, JoinToken


def healthz(request):
    """Liveness of the API server: answers 200 when the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure means unhealthy
        return JsonResponse({"status": "unhealthy", "database": str(exc.__class__.__name__)}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


class IsStaffOrReadOnly(permissions.BasePermission):
    def has_permission(self, request, view):
        return request.method in permissions.SAFE_METHODS or bool(request.user and request.user.is_staff)


class HostViewSet(viewsets.ReadOnlyModelViewSet):
    """Hosts with enrolled satellites; staff drain and unregister them."""

    serializer_class = serializers.HostSerializer
    permission_classes = [permissions.IsAuthenticated, IsStaffOrReadOnly]
    lookup_field = "name"
    filterset_fields = ["state"]

    def get_queryset(self):
        services.hosts_mark_silent_down()
        return Host.objects.all()

    @extend_schema(request=None, responses=serializers.HostSerializer)
    @action(detail=True, methods=["post"])
    def drain(self, request, name=None):
        host = self.get_object()
        host.state = Host.State.DRAINING
        host.save(update_fields=["state"])
        return Response(self.get_serializer(host).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def unregister(self, request, name=None):
        self.get_object().delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class EnrolView(APIView):
    """A satellite trades a one-time join token for its own key id and secret."""

    authentication_classes = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=serializers.EnrolSerializer, responses={201: serializers.EnrolledSerializer})
    def post(self, request):
        data = serializers.EnrolSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        host = services.host_enrol(**data.validated_data)
        return Response({"host": host.name, "key_id": host.key_id, "secret": host.secret},
                        status=status.HTTP_201_CREATED)

    def get_authenticate_header(self, request):
        return "BoatLoad-JoinToken"


class HeartbeatView(APIView):
    """A satellite says it is alive, signed with its host key."""

    authentication_classes = [HostSignatureAuthentication]
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(request=serializers.HostFactsSerializer, responses=serializers.HostSerializer)
    def post(self, request):
        facts = serializers.HostFactsSerializer(data=request.data)
        facts.is_valid(raise_exception=True)
        host = services.host_heartbeat(host=request.auth, **facts.validated_data)
        return Response(serializers.HostSerializer(host).data)


class JoinTokenViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.DestroyModelMixin,
                       viewsets.GenericViewSet):
    """One-time join tokens for new satellites (staff only)."""

    queryset = JoinToken.objects.select_related("host")
    serializer_class = serializers.JoinTokenSerializer
    permission_classes = [permissions.IsAdminUser]

    @extend_schema(responses={201: serializers.IssuedJoinTokenSerializer})
    def create(self, request, *args, **kwargs):
        data = self.get_serializer(data=request.data)
        data.is_valid(raise_exception=True)
        row, token = JoinToken.issue(user=request.user, ttl=data.validated_data.get("ttl"),
                                     note=data.validated_data.get("note", ""))
        row.token = token
        row.join_command = services.satellite_join_command(token)
        return Response(serializers.IssuedJoinTokenSerializer(row).data, status=status.HTTP_201_CREATED)
