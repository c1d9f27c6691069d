"""Genisys endpoints at the documented paths; lists answer a JSON object keyed by name.

Every view reads its rows through one scoped queryset (`GenisysView.get_queryset`):
a user reaches only their own services (and, through them, their orders and the computes
they use); anything else is 404, exactly as a name that does not exist. Staff reach all.
"""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, status
from rest_framework.response import Response

from boatload.api.views import IsStaffOrReadOnly
from common.pagination import CursorPageInHeaders
from genisys import services
from genisys.api import serializers
from genisys.models import Compute, Service
from observe import audit


def keyed(rows, serializer):
    return {row.name: serializer(row).data for row in rows}


def saved(action, data, **fields):
    """data.save(), with its audit entry in the same transaction."""
    with audit.change(action, target=data.validated_data.get("name") or getattr(data.instance, "name", "")):
        return data.save(**fields)


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
        return Response(serializers.ComputeSerializer(saved("compute.create", data)).data,
                        status=status.HTTP_201_CREATED)


class ComputeDetailView(ComputeView):
    @extend_schema(responses=serializers.ComputeSerializer)
    def get(self, request, name):
        return Response(serializers.ComputeSerializer(self.get_object()).data)

    @extend_schema(request=serializers.ComputeUpdateSerializer, responses=serializers.ComputeSerializer)
    def put(self, request, name):
        data = serializers.ComputeUpdateSerializer(self.get_object(), data=request.data)
        data.is_valid(raise_exception=True)
        return Response(serializers.ComputeSerializer(saved("compute.update", data)).data)


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
        return Response(serializers.ServiceSerializer(saved("service.create", data, owner=request.user)).data,
                        status=status.HTTP_201_CREATED)


class ServiceDetailView(ServiceView):
    @extend_schema(responses=serializers.ServiceSerializer)
    def get(self, request, name):
        return Response(serializers.ServiceSerializer(self.get_object()).data)

    @extend_schema(request=serializers.ServiceUpdateSerializer, responses=serializers.ServiceSerializer)
    def put(self, request, name):
        """Update a definition; running containers follow at the next scale or reconcile pass."""
        data = serializers.ServiceUpdateSerializer(self.get_object(), data=request.data)
        data.is_valid(raise_exception=True)
        return Response(serializers.ServiceSerializer(saved("service.update", data)).data)


class ServiceScaleView(ServiceView):
    @extend_schema(request=serializers.ScaleSerializer, responses=serializers.ScaleResultSerializer)
    def post(self, request, name):
        """Ensure `number` resources run; on `compute`, the first compute, or spread over all with "*"."""
        service = self.get_object()
        data = serializers.ScaleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(services.service_scale(service=service, user=request.user, **data.validated_data))


class ServiceStatusView(ServiceView):
    @extend_schema(responses=serializers.StatusSerializer)
    def get(self, request, name):
        return Response(services.service_status(service=self.get_object()))


class ServiceOrdersView(ServiceView):
    pagination_class = CursorPageInHeaders  # the answer stays a list; the next page is in Link and X-Next-Cursor

    @extend_schema(responses=serializers.ScaleOrderSerializer(many=True))
    def get(self, request, name):
        """The scale-order history of a service, newest first, paged (`limit`, `cursor` from X-Next-Cursor)."""
        orders = self.paginate_queryset(self.get_object().orders.select_related("compute", "requested_by"))
        return self.get_paginated_response(serializers.ScaleOrderSerializer(orders, many=True).data)
