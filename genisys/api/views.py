"""Genisys endpoints at the documented paths: two viewsets on a router (genisys/api/urls.py).

Lists answer a JSON object keyed by name. Every action reads its rows through one scoped
queryset (`GenisysViewSet.get_queryset`): a user reaches only their own services (and,
through them, their orders and the computes they use); anything else is 404, exactly as a
name that does not exist. Staff reach all.
"""
from django.db import IntegrityError, transaction
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, mixins, permissions, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.serializers import Serializer

from boatload.api.views import IsStaffOrReadOnly
from common.errors import BadInput
from common.pagination import CursorPageInHeaders
from genisys import deploy, services
from genisys.api import serializers, waiting
from genisys.models import Compute, Service
from observe import audit

NAME = r"[a-zA-Z0-9][a-zA-Z0-9_.-]*"


class ScopedByName:
    """Rows of `model` the caller may reach (`visible_to`), looked up by name; not paged, not filtered."""

    model = Service
    lookup_field = "name"
    lookup_value_regex = NAME
    pagination_class = None
    filter_backends = []

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return self.model.objects.none()
        return self.model.objects.visible_to(self.request.user)


class ServiceView(ScopedByName, generics.GenericAPIView):
    """A service's own sub-resources (versions, deployments, its redeploy hook) as plain views."""

    # Their bodies are none or their own; the browsable API still asks every view for a serializer to build
    # its HTML form from (without one, any HTML page of these paths was a 500).
    serializer_class = Serializer


class GenisysViewSet(ScopedByName, mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                     viewsets.GenericViewSet):
    """A keyed list, create (201), retrieve, PUT."""

    http_method_names = ["get", "post", "put", "head", "options"]  # Genisys has no PATCH and no DELETE
    update_serializer_class = None  # PUT: the name is read-only

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
)
class ServiceViewSet(GenisysViewSet):
    serializer_class = serializers.ServiceSerializer
    update_serializer_class = serializers.ServiceUpdateSerializer

    def get_queryset(self):
        return super().get_queryset().select_related("owner")

    def perform_create(self, data):
        try:
            with transaction.atomic():
                service = self.saved("create", data, owner=self.request.user)
                deploy.definition_changed(service=service, user=self.request.user)  # version 1
        except IntegrityError:  # the same name saved by another request since it was validated
            raise BadInput("name", "service with this name already exists.") from None

    @extend_schema(request=serializers.ServiceUpdateSerializer, parameters=[waiting.WAIT],
                   responses={200: serializers.ServiceSerializer, 202: serializers.ServiceSerializer})
    def update(self, request, *args, **kwargs):
        """Update a definition: a change of what runs is a new version, rolled out by a deployment
        (`deployment` in the answer; `?wait=` answers its outcome). A service defined on its
        connector becomes BoatLoad's."""
        wait = waiting.wait_of(request)
        data = self.get_serializer(self.get_object(), data=request.data)
        data.is_valid(raise_exception=True)
        with transaction.atomic():
            service = self.saved("update", data, defined_by="boatload")
            deployment = deploy.definition_changed(service=service, user=request.user)
        return waiting.answer(request, serializers.ServiceSerializer(service).data, deployment, wait)

    @extend_schema(request=serializers.ScaleSerializer, parameters=[waiting.WAIT],
                   responses={200: serializers.ScaleResultSerializer, 202: serializers.ScaleResultSerializer})
    @action(detail=True, methods=["post"])
    def scale(self, request, name):
        """Ensure `number` resources run; on `compute`, the first compute, or spread over all with "*".

        Staff may scale a service BoatLoad has no definition of when the compute's connector knows
        it (Genisys forwards such orders): the order is forwarded and recorded, and `definition`
        in the answer says whose definition ran (`boatload` or `connector`). `?wait=` answers the
        outcome of the deployment the order makes."""
        wait = waiting.wait_of(request)
        data = serializers.ScaleSerializer(data=request.data)
        try:
            service = self.get_object()
        except Http404:
            if not request.user.is_staff or Service.objects.filter(name=name).exists():
                raise
            data.is_valid(raise_exception=True)
            service = services.service_adopt(name=name, compute=data.validated_data.get("compute"))
        data.is_valid(raise_exception=True)
        result, deployment = deploy.scale_deployed(service=service, user=request.user, **data.validated_data)
        return waiting.answer(request, result, deployment, wait)

    @extend_schema(request=None, parameters=[waiting.WAIT],
                   responses={200: waiting.DeploymentSerializer, 202: waiting.DeploymentSerializer})
    @action(detail=True, methods=["post"])
    def rebalance(self, request, name):
        """Move the service's slots to an even spread of its desired total over the healthy computes, as a
        deployment (kind `rebalance`): a gaining compute's new slots healthy before a losing one's go, never
        below the total. 409 while another deployment of it is active, 503 with no healthy compute;
        `?wait=` answers its outcome."""
        wait = waiting.wait_of(request)
        deployment = deploy.rebalance_start(service=self.get_object(), user=request.user)
        return waiting.answer(request, None, deployment, wait)

    @extend_schema(responses=serializers.StatusSerializer)
    @action(detail=True, methods=["get"])
    def status(self, request, name):
        return Response(services.service_status(service=self.get_object()))

    @extend_schema(responses=serializers.ScaleOrderSerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=CursorPageInHeaders)  # a list; next page in headers
    def orders(self, request, name):
        """The scale-order history of a service, newest first, paged (`limit`, `cursor` from X-Next-Cursor)."""
        orders = self.paginate_queryset(self.get_object().orders.select_related("compute", "requested_by"))
        return self.get_paginated_response(serializers.ScaleOrderSerializer(orders, many=True).data)
