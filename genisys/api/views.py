"""Genisys endpoints at the documented paths; lists answer a JSON object keyed by name.

Every view reads its rows through one scoped queryset (`GenisysView.get_queryset`):
a user reaches only their own services (and, through them, their orders and the computes
they use); anything else is 404, exactly as a name that does not exist. Staff reach all.
"""
from django.db import IntegrityError, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, status
from rest_framework.response import Response

from boatload.api.views import IsStaffOrReadOnly
from common.errors import BadInput
from genisys import deploy, services
from genisys.api import serializers, waiting
from genisys.models import Compute, Service


def keyed(rows, serializer):
    return {row.name: serializer(row).data for row in rows}


class GenisysView(generics.GenericAPIView):
    """Rows of `model` that the caller may reach, looked up by name."""

    model = Service
    lookup_field = "name"
    pagination_class = None
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return self.model.objects.none()
        return self.model.objects.visible_to(self.request.user)


class ComputeView(GenisysView):
    model = Compute
    serializer_class = serializers.ComputeSerializer
    permission_classes = [permissions.IsAuthenticated, IsStaffOrReadOnly]


class ComputeListView(ComputeView):
    """GET: every compute the caller may see, keyed by name. POST: a new compute `{name, connector}` (staff)."""

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="compute_list")
    def get(self, request):
        return Response(keyed(self.get_queryset(), serializers.ComputeSerializer))

    @extend_schema(request=serializers.ComputeSerializer, responses={201: serializers.ComputeSerializer})
    def post(self, request):
        data = serializers.ComputeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(serializers.ComputeSerializer(data.save()).data, status=status.HTTP_201_CREATED)


class ComputeDetailView(ComputeView):
    @extend_schema(responses=serializers.ComputeSerializer)
    def get(self, request, name):
        return Response(serializers.ComputeSerializer(self.get_object()).data)

    @extend_schema(request=serializers.ComputeUpdateSerializer, responses=serializers.ComputeSerializer)
    def put(self, request, name):
        data = serializers.ComputeUpdateSerializer(self.get_object(), data=request.data)
        data.is_valid(raise_exception=True)
        return Response(serializers.ComputeSerializer(data.save()).data)


class ServiceView(GenisysView):
    serializer_class = serializers.ServiceSerializer


class ServiceListView(ServiceView):
    """GET: the caller's service definitions keyed by name (staff: all). POST: a new definition, theirs."""

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="service_list")
    def get(self, request):
        return Response(keyed(self.get_queryset().select_related("owner"), serializers.ServiceSerializer))

    @extend_schema(request=serializers.ServiceSerializer, responses={201: serializers.ServiceSerializer})
    def post(self, request):
        data = serializers.ServiceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            with transaction.atomic():
                service = data.save(owner=request.user)
                deploy.definition_changed(service=service, user=request.user)  # version 1
        except IntegrityError:  # the same name saved by another request since it was validated
            raise BadInput("name", "service with this name already exists.") from None
        return Response(serializers.ServiceSerializer(service).data, status=status.HTTP_201_CREATED)


class ServiceDetailView(ServiceView):
    @extend_schema(responses=serializers.ServiceSerializer)
    def get(self, request, name):
        return Response(serializers.ServiceSerializer(self.get_object()).data)

    @extend_schema(request=serializers.ServiceUpdateSerializer, parameters=[waiting.WAIT],
                   responses={200: serializers.ServiceSerializer, 202: serializers.ServiceSerializer})
    def put(self, request, name):
        """Update a definition: a change of what runs is a new version, rolled out by a deployment
        (`deployment` in the answer; `?wait=` answers its outcome)."""
        wait = waiting.wait_of(request)
        data = serializers.ServiceUpdateSerializer(self.get_object(), data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            service = data.save()
            deployment = deploy.definition_changed(service=service, user=request.user)
        return waiting.answer(request, serializers.ServiceSerializer(service).data, deployment, wait)


class ServiceScaleView(ServiceView):
    @extend_schema(request=serializers.ScaleSerializer, parameters=[waiting.WAIT],
                   responses={200: serializers.ScaleResultSerializer, 202: serializers.ScaleResultSerializer})
    def post(self, request, name):
        """Ensure `number` resources run; on `compute`, the first compute, or spread over all with "*"."""
        service = self.get_object()
        wait = waiting.wait_of(request)
        data = serializers.ScaleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        result = services.service_scale(service=service, user=request.user, **data.validated_data)
        deployment = deploy.scale_deployment(service=service, user=request.user)
        return waiting.answer(request, result, deployment, wait)


class ServiceStatusView(ServiceView):
    @extend_schema(responses=serializers.StatusSerializer)
    def get(self, request, name):
        return Response(services.service_status(service=self.get_object()))


class ServiceOrdersView(ServiceView):
    @extend_schema(responses=serializers.ScaleOrderSerializer(many=True))
    def get(self, request, name):
        """The scale-order history of a service, newest first."""
        orders = self.get_object().orders.select_related("compute", "requested_by")[:200]
        return Response(serializers.ScaleOrderSerializer(orders, many=True).data)
