"""Genisys endpoints at the documented paths; lists answer a JSON object keyed by name."""
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from boatload.api.views import IsStaffOrReadOnly
from genisys import services
from genisys.api import serializers
from genisys.models import Compute, Service


def keyed(rows, serializer):
    return {row.name: serializer(row).data for row in rows}


class ComputeListView(APIView):
    """GET: every compute keyed by name. POST: a new compute `{name, connector}` (staff)."""

    permission_classes = [permissions.IsAuthenticated, IsStaffOrReadOnly]

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="compute_list")
    def get(self, request):
        return Response(keyed(Compute.objects.all(), serializers.ComputeSerializer))

    @extend_schema(request=serializers.ComputeSerializer, responses={201: serializers.ComputeSerializer})
    def post(self, request):
        data = serializers.ComputeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(serializers.ComputeSerializer(data.save()).data, status=status.HTTP_201_CREATED)


class ComputeDetailView(APIView):
    permission_classes = [permissions.IsAuthenticated, IsStaffOrReadOnly]

    @extend_schema(responses=serializers.ComputeSerializer)
    def get(self, request, name):
        return Response(serializers.ComputeSerializer(get_object_or_404(Compute, name=name)).data)

    @extend_schema(request=serializers.ComputeUpdateSerializer, responses=serializers.ComputeSerializer)
    def put(self, request, name):
        data = serializers.ComputeUpdateSerializer(get_object_or_404(Compute, name=name), data=request.data)
        data.is_valid(raise_exception=True)
        return Response(serializers.ComputeSerializer(data.save()).data)


class ServiceListView(APIView):
    """GET: every service definition keyed by name. POST: a new definition."""

    @extend_schema(responses=OpenApiTypes.OBJECT, operation_id="service_list")
    def get(self, request):
        return Response(keyed(Service.objects.all(), serializers.ServiceSerializer))

    @extend_schema(request=serializers.ServiceSerializer, responses={201: serializers.ServiceSerializer})
    def post(self, request):
        data = serializers.ServiceSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(serializers.ServiceSerializer(data.save()).data, status=status.HTTP_201_CREATED)


class ServiceDetailView(APIView):
    @extend_schema(responses=serializers.ServiceSerializer)
    def get(self, request, name):
        return Response(serializers.ServiceSerializer(get_object_or_404(Service, name=name)).data)

    @extend_schema(request=serializers.ServiceUpdateSerializer, responses=serializers.ServiceSerializer)
    def put(self, request, name):
        """Update a definition; running containers follow at the next scale or reconcile pass."""
        data = serializers.ServiceUpdateSerializer(get_object_or_404(Service, name=name), data=request.data)
        data.is_valid(raise_exception=True)
        return Response(serializers.ServiceSerializer(data.save()).data)


class ServiceScaleView(APIView):
    @extend_schema(request=serializers.ScaleSerializer, responses=serializers.ScaleResultSerializer)
    def post(self, request, name):
        """Ensure `number` resources run; on `compute`, the first compute, or spread over all with "*"."""
        service = get_object_or_404(Service, name=name)
        data = serializers.ScaleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(services.service_scale(service=service, user=request.user, **data.validated_data))


class ServiceStatusView(APIView):
    @extend_schema(responses=serializers.StatusSerializer)
    def get(self, request, name):
        return Response(services.service_status(service=get_object_or_404(Service, name=name)))


class ServiceOrdersView(APIView):
    @extend_schema(responses=serializers.ScaleOrderSerializer(many=True))
    def get(self, request, name):
        """The scale-order history of a service, newest first."""
        service = get_object_or_404(Service, name=name)
        orders = service.orders.select_related("compute", "requested_by")[:200]
        return Response(serializers.ScaleOrderSerializer(orders, many=True).data)
