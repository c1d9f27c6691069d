"""Genisys endpoints at the documented paths: two viewsets on a router (genisys/api/urls.py).

Lists answer a JSON object keyed by name. Every action reads its rows through one scoped
queryset (`GenisysViewSet.get_queryset`): a user reaches only their own services (and,
through them, their orders and the computes they use); anything else is 404, exactly as a
name that does not exist. Staff reach all.
"""
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from boatload.api.views import IsStaffOrReadOnly
from genisys import services
from genisys.api import serializers
from genisys.models import Compute, Service
from observe import audit

NAME = r"[a-zA-Z0-9][a-zA-Z0-9_.-]*"


class GenisysViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                     viewsets.GenericViewSet):
    """Rows of `model` the caller may reach, by name: a keyed list, create (201), retrieve, PUT."""

    model = Service
    lookup_field = "name"
    lookup_value_regex = NAME
    pagination_class = None
    filter_backends = []
    http_method_names = ["get", "post", "put", "head", "options"]  # Genisys has no PATCH and no DELETE
    update_serializer_class = None  # PUT: the name is read-only

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return self.model.objects.none()
        return self.model.objects.visible_to(self.request.user)

    def get_serializer_class(self):
        if self.action == "update" and self.update_serializer_class:
            return self.update_serializer_class
        return self.serializer_class

    def list(self, request):
        return Response({row.name: self.serializer_class(row).data for row in self.get_queryset()})

    def update(self, request, *args, **kwargs):
        data = self.get_serializer(self.get_object(), data=request.data)
        data.is_valid(raise_exception=True)
        self.perform_update(data)
        return Response(self.serializer_class(data.instance).data)

    def perform_create(self, data):
        self.saved("create", data)

    def perform_update(self, data):
        self.saved("update", data)

    def saved(self, verb, data, **fields):
        """data.save(**fields), with its audit entry (`compute.create`, …) in the same transaction."""
        name = data.validated_data.get("name") or getattr(data.instance, "name", "")
        with audit.change(f"{self.model._meta.model_name}.{verb}", target=name):
            return data.save(**fields)


@extend_schema_view(
    list=extend_schema(responses=OpenApiTypes.OBJECT, operation_id="compute_list",
                       description="Every compute the caller may see, keyed by name."),
    create=extend_schema(description="A new compute `{name, connector}` (staff)."),
)
class ComputeViewSet(GenisysViewSet):
    model = Compute
    serializer_class = serializers.ComputeSerializer
    update_serializer_class = serializers.ComputeUpdateSerializer
    permission_classes = [permissions.IsAuthenticated, IsStaffOrReadOnly]


@extend_schema_view(
    list=extend_schema(responses=OpenApiTypes.OBJECT, operation_id="service_list",
                       description="The caller's service definitions keyed by name (staff: all)."),
    create=extend_schema(description="A new definition, the caller's."),
    update=extend_schema(description="Update a definition; running containers follow at the next scale or "
                                     "reconcile pass. A service defined on its connector becomes BoatLoad's."),
)
class ServiceViewSet(GenisysViewSet):
    serializer_class = serializers.ServiceSerializer
    update_serializer_class = serializers.ServiceUpdateSerializer

    def get_queryset(self):
        return super().get_queryset().select_related("owner")

    def perform_create(self, data):
        self.saved("create", data, owner=self.request.user)

    def perform_update(self, data):
        self.saved("update", data, defined_by="boatload")

    @extend_schema(request=serializers.ScaleSerializer, responses=serializers.ScaleResultSerializer)
    @action(detail=True, methods=["post"])
    def scale(self, request, name):
        """Ensure `number` resources run; on `compute`, the first compute, or spread over all with "*".

        Staff may scale a service BoatLoad has no definition of when the compute's connector knows
        it (Genisys forwards such orders): the order is forwarded and recorded, and `definition`
        in the answer says whose definition ran (`boatload` or `connector`)."""
        data = serializers.ScaleSerializer(data=request.data)
        try:
            service = self.get_object()
        except Http404:
            if not request.user.is_staff or Service.objects.filter(name=name).exists():
                raise
            data.is_valid(raise_exception=True)
            service = services.service_adopt(name=name, compute=data.validated_data.get("compute"))
        data.is_valid(raise_exception=True)
        return Response(services.service_scale(service=service, user=request.user, **data.validated_data))

    @extend_schema(responses=serializers.StatusSerializer)
    @action(detail=True, methods=["get"])
    def status(self, request, name):
        return Response(services.service_status(service=self.get_object()))

    @extend_schema(responses=serializers.ScaleOrderSerializer(many=True))
    @action(detail=True, methods=["get"])
    def orders(self, request, name):
        """The scale-order history of a service, newest first."""
        orders = self.get_object().orders.select_related("compute", "requested_by")[:200]
        return Response(serializers.ScaleOrderSerializer(orders, many=True).data)

