"""Thin viewsets of the v1 API."""
import base64
import json
import os
from urllib.parse import urlencode

import django_filters
from django.conf import settings
from django.db import connection
from django.http import JsonResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from boatload import heartbeat, services
from boatload.api import serializers
from boatload.auth import HeartbeatSignatureAuthentication
from boatload.models import Container, Host, JoinToken, Template
from common import spec
from common.errors import BadInput, Conflict, NotFound
from common.pagination import CursorPage
from common.parsers import FormParser, JSONParser, MultiPartParser
from common.streams import iter_closing
from observe import audit, logs


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
        if getattr(self, "swagger_fake_view", False):  # schema generation: no writes, no user
            return Host.objects.none()
        services.hosts_mark_silent_down()
        return Host.objects.all()

    @extend_schema(request=None, responses=serializers.HostSerializer)
    @action(detail=True, methods=["post"])
    def drain(self, request, name=None):
        host = self.get_object()
        with audit.change("host.drain", target=host.name):
            host.drain()
        return Response(self.get_serializer(host).data)

    @extend_schema(request=None, responses=serializers.HostSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-key")
    def rotate_key(self, request, name=None):
        """Give the host's satellite a new key with its next heartbeat; the old one stays valid until it signs
        with the new one."""
        host = services.host_rotate_key(host=self.get_object())
        return Response(self.get_serializer(host).data)

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def unregister(self, request, name=None):
        services.host_unregister(host=self.get_object())
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
        return Response({"host": host.name, "key_id": host.key_id, "secret": host.secret,
                         "heartbeat_interval": max(1.0, settings.HOST_DOWN_AFTER / 3),
                         "transport": host.transport}, status=status.HTTP_201_CREATED)

    def get_authenticate_header(self, request):
        return "BoatLoad-JoinToken"


class HeartbeatView(APIView):
    """A satellite says it is alive, signed with its host key; the answer is signed back with the same
    key and bound to the request's nonce (common.signing.sign_response_headers).

    boatload.heartbeat.HeartbeatMiddleware answers it before DRF (a heartbeat must cost under 1 ms of
    CPU); this view describes it in the schema and answers through the same `serve` without it."""

    authentication_classes = [HeartbeatSignatureAuthentication]  # for the schema: `serve` checks the signature
    permission_classes = [permissions.AllowAny]

    def perform_authentication(self, request):
        pass  # heartbeat.serve verifies the signature (its nonce in the heartbeat's one UPDATE)

    @extend_schema(request=serializers.HeartbeatSerializer, responses=serializers.HeartbeatAnswerSerializer)
    def post(self, request):
        return heartbeat.serve(request._request)


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
        with audit.change("jointoken.create") as entry:
            row, token = JoinToken.issue(user=request.user, ttl=data.validated_data.get("ttl"),
                                         note=data.validated_data.get("note", ""))
            entry.target = row.prefix
        row.token = token
        row.join_command = services.satellite_join_command(token)
        row.join_command_venv = services.satellite_join_command_venv(token)
        return Response(serializers.IssuedJoinTokenSerializer(row).data, status=status.HTTP_201_CREATED)


def cluster_answer(request, items, failures):
    """A page of what every host answered (by host, then id), with every failure (they are few)."""
    page, following, count = CursorPage().paginate_items(items, request,
                                                          key=lambda item: (item["host"], str(item.get("id", ""))))
    answer = {"results": page, "failures": failures, "next": following}
    if count is not None:
        answer["count"] = count
    return Response(answer)


CLUSTER_PAGE_PARAMETERS = [
    OpenApiParameter("cursor", str, description=CursorPage.cursor_query_description),
    OpenApiParameter("limit", int, description=CursorPage.page_size_query_description),
    OpenApiParameter("count", bool, description="Also answer how many items every host holds in all."),
]


# ---- containers --------------------------------------------------------------------------------

STREAM = {(200, "application/octet-stream"): OpenApiTypes.BINARY}


class ContainerFilter(django_filters.FilterSet):
    host = django_filters.CharFilter(field_name="host__name")
    state = django_filters.ChoiceFilter(choices=Container.State.choices)
    image = django_filters.CharFilter(field_name="image_name")
    service = django_filters.CharFilter()
    owner = django_filters.CharFilter(field_name="owner__username")

    class Meta:
        model = Container
        fields = ["host", "state", "image", "service", "owner"]


def _request_fields(request):
    """The create request as a plain dict: JSON as is; multipart with JSON-valued fields and a script file."""
    if not hasattr(request.data, "getlist"):
        return dict(request.data)
    fields = {}
    for key in request.data:
        if key == "script" and key in request.FILES:
            continue
        value = request.data.get(key)
        if key in JSON_FORM_FIELDS and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                if key not in PLAIN_FORM_FIELDS:
                    raise BadInput(key, "must be JSON in a multipart form") from None
        fields[key] = value
    upload = request.FILES.get("script")
    if upload is not None:
        spec.check_script_size(upload.size, settings.SCRIPT_MAX_BYTES)
        fields["script"] = base64.b64encode(upload.read()).decode()
        fields.setdefault("scriptname", os.path.basename(upload.name or "script") or "script")
    return fields


JSON_FORM_FIELDS = {"env", "ports", "volumes", "labels", "host_labels", "command", "container_args", "memory",
                    "instances", "privileged", "cpus"}
PLAIN_FORM_FIELDS = {"command", "container_args", "memory"}  # a plain string is fine for these



PASSED_ON = ("Content-Length", "Content-Disposition", "X-BoatLoad-Path")


def passed_on(request, upstream, chunks, *, follow=False, headers=PASSED_ON, content_type="application/octet-stream"):
    """A satellite's stream (`upstream`, its `chunks`) passed on as the answer, with its `headers` that it has."""
    if not connection.in_atomic_block:
        # A stream may stay open for hours and needs no database: give its connection back now,
        # or a thousand open streams would hold a thousand Postgres connections.
        connection.close()
    response = StreamingHttpResponse(iter_closing(chunks, upstream, request.META, follow=follow),
                                     content_type=upstream.headers.get("Content-Type", content_type))
    for header in headers:
        if header in upstream.headers:
            response[header] = upstream.headers[header]
    return response


class ContainerViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin,
                       mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Containers over every host. A user sees their own (others' are 404); staff see all."""

    serializer_class = serializers.ContainerSerializer
    filterset_class = ContainerFilter
    lookup_field = "uuid"
    lookup_value_regex = "[0-9a-fA-F-]{36}"
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Container.objects.none()
        rows = Container.objects.select_related("owner", "host").visible_to(self.request.user)
        if self.action == "list" and "state" not in self.request.query_params:
            rows = rows.exclude(state=Container.State.DELETED)
        return rows

    def list(self, request, *args, **kwargs):
        """A page read as values: only the columns its answer shows (not the script, nor the host's key or
        certificate), and the cursor's position (`created`) taken from them."""
        columns = [column for _, column, _ in self.serializer_class.page_plan()]
        rows = self.filter_queryset(self.get_queryset()).values("id", *columns)
        return self.get_paginated_response(self.serializer_class.represent(self.paginate_queryset(rows)))

    def deployed(self):
        row = self.get_object()
        if not row.host or not row.docker_id or row.state not in Container.DEPLOYED:
            raise Conflict(f"Container {row.uuid} is {row.state}, not deployed on a host.",
                           detail={"state": row.state})
        return row

    @extend_schema(request=serializers.ContainerCreateSerializer, responses={
        # one container: the container; with `instances`: every result (201 when all were made)
        201: PolymorphicProxySerializer(component_name="ContainerCreated", resource_type_field_name=None,
                                        serializers=[serializers.ContainerSerializer, serializers.InstancesSerializer]),
        207: serializers.InstancesSerializer})
    def create(self, request, *args, **kwargs):
        placement, outcomes = services.container_create_request(user=request.user, fields=_request_fields(request))
        if "instances" not in placement:
            row, error = outcomes[0]
            if error is not None:
                error.extra["container"] = str(row.uuid)
                raise error
            return Response(serializers.ContainerSerializer(row).data, status=status.HTTP_201_CREATED)
        return Response(*serializers.instances_answer(outcomes))

    def perform_destroy(self, row):
        services.container_delete(row=row)

    @extend_schema(request=serializers.RawCreateSerializer, responses={201: serializers.ContainerSerializer})
    @action(detail=False, methods=["post"], permission_classes=[permissions.IsAdminUser])
    def raw(self, request):
        data = serializers.RawCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.container_create_raw(owner=request.user, **data.validated_data)
        return Response(serializers.ContainerSerializer(row).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=serializers.ClusterListSerializer, parameters=CLUSTER_PAGE_PARAMETERS)
    @action(detail=False, methods=["get"], filter_backends=[], pagination_class=None)  # paged below
    def cluster(self, request):
        """BoatLoad containers as every active host sees them right now, each tagged with its host; paged
        by (host, id)."""
        return cluster_answer(request, *services.containers_cluster(user=request.user))

    def _action(self, request, name):
        query = serializers.ActionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        row = self.deployed()
        services.container_action(row=row, action=name, timeout=query.validated_data.get("timeout"))
        return Response(serializers.ContainerSerializer(row).data)

    @extend_schema(request=None, parameters=[serializers.ActionQuerySerializer],
                   responses=serializers.ContainerSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, uuid=None):
        return self._action(request, "start")

    @extend_schema(request=None, parameters=[serializers.ActionQuerySerializer],
                   responses=serializers.ContainerSerializer)
    @action(detail=True, methods=["post"])
    def stop(self, request, uuid=None):
        return self._action(request, "stop")

    @extend_schema(request=None, parameters=[serializers.ActionQuerySerializer],
                   responses=serializers.ContainerSerializer)
    @action(detail=True, methods=["post"])
    def restart(self, request, uuid=None):
        return self._action(request, "restart")

    def _stream(self, request, upstream_and_chunks, follow=False):
        """A satellite's stream passed on; each was opened `as_user` (the satellite's fair shares are per user)."""
        upstream, chunks = upstream_and_chunks
        return passed_on(request, upstream, chunks, follow=follow)

    @extend_schema(parameters=[serializers.LogsQuerySerializer], responses={(200, "text/plain"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"])
    def stdout(self, request, uuid=None):
        """The container's output, streamed; `follow` keeps it open until the container or client ends. Once
        the container is deleted or gone from its host: the end of its output as kept then (stdout and
        stderr, whatever the query), marked by `X-BoatLoad-Archived`."""
        query = serializers.LogsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = {k: int(v) if isinstance(v, bool) else v for k, v in query.validated_data.items()}
        row = self.get_object()
        if row.state not in Container.DEPLOYED and (kept := logs.archived_response(row)) is not None:
            return kept  # deleted, or gone from its host: the end of its output, kept (observe/logs.py)
        row = self.deployed()
        return self._stream(request, services.container_logs(row=row, as_user=request.user.username, **params),
                            follow=query.validated_data["follow"])

    @extend_schema(responses=serializers.ScriptSerializer)
    @action(detail=True, methods=["get"])
    def script(self, request, uuid=None):
        return Response(services.container_script(row=self.get_object()))

    @extend_schema(responses=serializers.DockerStateSerializer)
    @action(detail=True, methods=["get"])
    def state(self, request, uuid=None):
        row = self.get_object()
        docker_state = services.container_docker_state(row=row)
        return Response({"platform_state": row.state, "docker_state": docker_state})

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def metrics(self, request, uuid=None):
        return Response(services.container_metrics(row=self.deployed()))

    def _paged(self, request, page_of):
        """A page of the satellite's list `what`; the next cursor passes on in X-Next-Cursor and Link."""
        query = spec.PageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = {"limit": query.validated_data["limit"]}
        if query.validated_data.get("cursor") is not None:
            params["cursor"] = spec.page_cursor(query.validated_data["cursor"])
        items, cursor = page_of(row=self.deployed(), **params)
        response = Response(items)
        if cursor:
            response["X-Next-Cursor"] = cursor
            response["Link"] = f'<{request.path}?{urlencode({**params, "cursor": cursor})}>; rel="next"'
        return response

    @extend_schema(responses=serializers.ChangeSerializer(many=True), parameters=[spec.PageQuerySerializer])
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)  # paged by the satellite
    def changes(self, request, uuid=None):
        """The engine's diff, sorted by path, paged (`limit`, `cursor` from X-Next-Cursor)."""
        return self._paged(request, services.container_changes)

    @extend_schema(responses=serializers.ChangedFileSerializer(many=True), parameters=[spec.PageQuerySerializer])
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)  # paged by the satellite
    def file(self, request, uuid=None):
        """Changed regular files, numbered by their position among changed paths (the numbers of /filebynum),
        paged (`limit`, `cursor` from X-Next-Cursor)."""
        return self._paged(request, services.container_files)

    @extend_schema(responses=STREAM, operation_id="container_file_by_path",
                   parameters=[OpenApiParameter("path", str, OpenApiParameter.PATH)])
    @action(detail=True, methods=["get"], url_path=r"file/(?P<path>.+)")
    def file_by_path(self, request, uuid=None, path=None):
        row = self.deployed()
        return self._stream(request, services.container_file(row=row, path=spec.confined_path(path),
                                                                  as_user=request.user.username))

    @extend_schema(responses=STREAM, parameters=[OpenApiParameter("number", int, OpenApiParameter.PATH)])
    @action(detail=True, methods=["get"], url_path=r"filebynum/(?P<number>[0-9]+)")
    def filebynum(self, request, uuid=None, number=None):
        return self._stream(request, services.container_file(row=self.deployed(), number=int(number),
                                                                  as_user=request.user.username))

    @extend_schema(responses={(200, "application/x-tar"): OpenApiTypes.BINARY,
                              (200, "application/gzip"): OpenApiTypes.BINARY},
                   parameters=[OpenApiParameter("compression", str, enum=["gzip"])])
    @action(detail=True, methods=["get"])
    def archive(self, request, uuid=None):
        """Every changed file in one tar, streamed; `?compression=gzip` for .tar.gz."""
        query = spec.ArchiveQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        row = self.deployed()
        return self._stream(request, services.container_archive(row=row, as_user=request.user.username,
                                                                     **query.validated_data))

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def inspect(self, request, uuid=None):
        return Response(services.container_inspect(row=self.deployed()))

    @extend_schema(responses=serializers.EndpointSerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[], pagination_class=None)  # one row's list, whole
    def endpoints(self, request, uuid=None):
        return Response(self.get_object().endpoints)

    @extend_schema(parameters=[serializers.ConnectionQuerySerializer], responses=serializers.EndpointSerializer)
    @action(detail=True, methods=["get"])
    def connection(self, request, uuid=None):
        """The nearest endpoint of another container (`to`) as seen from this one."""
        query = serializers.ConnectionQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        source = self.get_object()
        target = self.get_queryset().filter(uuid=query.validated_data["to"]).first()
        if target is None:
            raise NotFound("No such container to connect to.", detail={"field": "to"})
        return Response(services.container_connection(source=source, target=target,
                                                      port=query.validated_data["port"],
                                                      protocol=query.validated_data["protocol"]))


class ImageView(APIView):
    """Images of every active host, merged; each item tagged with its host; unreachable hosts in `failures`;
    paged by (host, id)."""

    @extend_schema(responses=serializers.ClusterListSerializer, parameters=CLUSTER_PAGE_PARAMETERS)
    def get(self, request):
        return cluster_answer(request, *services.images_cluster())


class TemplateViewSet(viewsets.ModelViewSet):
    """Container templates in Docker's create-container format; staff write, everyone reads."""

    queryset = Template.objects.all()
    serializer_class = serializers.TemplateSerializer
    permission_classes = [permissions.IsAuthenticated, IsStaffOrReadOnly]
    lookup_field = "name"
    http_method_names = ["get", "post", "put", "delete", "head", "options"]

    def perform_create(self, serializer):
        with audit.change("template.create", target=serializer.validated_data.get("name", "")):
            serializer.save()

    def perform_update(self, serializer):
        with audit.change("template.update", target=serializer.instance.name):
            serializer.save()

    def perform_destroy(self, instance):
        with audit.change("template.delete", target=instance.name):
            instance.delete()
