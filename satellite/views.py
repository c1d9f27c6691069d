"""HTTP surface of a satellite; every view but /healthz needs the API's signature."""
import functools
import threading
from urllib.parse import quote, urlencode

from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from common.errors import BadInput, error_body
from common.spec import (
    ActionQuerySerializer,
    ArchiveQuerySerializer,
    ContainerSpecSerializer,
    ListQuerySerializer,
    LogsQuerySerializer,
    PageQuerySerializer,
    page_cursor,
)
from common.streams import iter_closing, open_streams
from satellite import containers, files, limits, metrics
from satellite.engine import client


def healthz(request):
    """Unsigned liveness: 200 when the local Docker engine answers."""
    try:
        client().ping()
    except Exception as exc:  # whatever the engine did, it is not healthy
        return JsonResponse(error_body("engine_unavailable", f"The Docker engine does not answer: "
                                                             f"{exc.__class__.__name__}"), status=503)
    return JsonResponse({"status": "ok", "docker": "ok"})


def by_identity(view):
    """Give `view` the full Docker id of the container labelled with the row uuid in the path."""
    @functools.wraps(view)
    def wrapper(request, container_id, **kwargs):
        return view(request, containers.resolve_one(container_id), **kwargs)
    return wrapper


class IdentitySerializer(serializers.Serializer):
    container = serializers.UUIDField(help_text="The API's row: the label by which the container is found.")
    owner = serializers.CharField(max_length=150, allow_blank=True, default="")
    service = serializers.CharField(max_length=100, allow_blank=True, default="")
    slot = serializers.IntegerField(required=False, min_value=0)

    def validate_container(self, value):
        return str(value)


class CreateSerializer(ContainerSpecSerializer):
    """A container spec plus who it is for; field names match the API's, so errors name the same field."""

    identity = IdentitySerializer()
    as_staff = serializers.BooleanField(default=False)
    start = serializers.BooleanField(default=True)
    budget = serializers.FloatField(required=False, min_value=0, max_value=24 * 3600,
                                    help_text="Seconds the caller waits; past them the create stops and cleans up.")


class RawCreateSerializer(serializers.Serializer):
    body = serializers.DictField()
    name = serializers.CharField(required=False, max_length=128)
    identity = IdentitySerializer()
    as_staff = serializers.BooleanField(default=False)


def _query(serializer_class, request):
    """Query parameters, validated by the same serializer the API uses."""
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


@api_view(["GET"])
def info(request):
    """The engine's facts, and this satellite's own: streams in flight and threads watching them, and the
    stats streams it has open ({Docker id: {"kept": kept warm, "read": a frame read, "sampled": a CPU % can be
    given}})."""
    watchers = sum(1 for thread in threading.enumerate() if thread.name == "disconnect-watch")
    return Response({**containers.engine_info(),
                     "satellite": {"name": settings.NAME, "id": containers.satellite_id(),
                                   "in_use": limits.gate.usage(), "saturated": limits.gate.saturated(),
                                   "open_streams": open_streams(), "stream_watchers": watchers,
                                   "threads": threading.active_count(), "stats_streams": metrics.hub.state()}})


@api_view(["GET"])
def images(request):
    return Response(containers.images())


@api_view(["GET", "POST"])
def container_list(request):
    if request.method == "GET":
        query = _query(ListQuerySerializer, request)
        return Response(containers.containers_list(query["label"], include_stopped=query["all"]))
    data = CreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    spec = dict(data.validated_data)
    options = {key: spec.pop(key) for key in ("identity", "as_staff", "start", "budget") if key in spec}
    made = containers.container_create(spec=spec, **options)
    return Response({**made, "container": options["identity"]["container"]}, status=201)


@api_view(["POST"])
def container_raw(request):
    data = RawCreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    if not data.validated_data["as_staff"]:
        raise BadInput("as_staff", "raw create is for staff only")
    made = containers.container_create_raw(body=data.validated_data["body"], identity=data.validated_data["identity"],
                                           name=data.validated_data.get("name"))
    return Response({**made, "container": data.validated_data["identity"]["container"]}, status=201)


@api_view(["GET", "DELETE"])
def container_detail(request, container_id):
    if request.method == "DELETE":
        containers.remove_by_identity(container_id)  # every twin, and nothing when there is none
        return Response(status=204)
    return Response(containers.container_inspect(containers.resolve_one(container_id)))


@api_view(["POST"])
@by_identity
def container_action(request, container_id, action):
    timeout = _query(ActionQuerySerializer, request).get("timeout")
    return Response({"state": containers.container_action(container_id, action, timeout=timeout)})


@api_view(["GET"])
@by_identity
def container_state(request, container_id):
    return Response(containers.container_inspect(container_id)["State"])


@api_view(["GET"])
@by_identity
def container_logs(request, container_id):
    query = _query(LogsQuerySerializer, request)
    follow = query["follow"]
    if not follow:
        stream = containers.logs_stream(container_id, **query)
        return StreamingHttpResponse(iter_closing(stream, stream, request.META), content_type="text/plain")
    stream, lease = limits.gate.opening("follow", _user(request), lambda: containers.logs_stream(container_id, **query))
    return StreamingHttpResponse(iter_closing(stream, lease.holding(stream), request.META, follow=True),
                                 content_type="text/plain")


def _user(request):
    """Whom the API streams for (its signed query says): fair shares are per user."""
    return request.query_params.get("as_user", "")


@api_view(["GET"])
@by_identity
def container_script(request, container_id):
    name, data = containers.container_script(container_id)
    return Response({"scriptname": name, "script": data.decode(errors="replace")})


def _paged(request, page_of, container_id):
    """A page of a container's changes as a list (their documented shape); the next page's cursor in
    `X-Next-Cursor` and a `Link: rel="next"` header, as long as there is one."""
    query = _query(PageQuerySerializer, request)
    items, cursor = page_of(container_id, cursor=query.get("cursor"), limit=query["limit"])
    response = Response(items)
    if cursor is not None:
        response["X-Next-Cursor"] = page_cursor(cursor)
        response["Link"] = f'<?{urlencode({"limit": query["limit"], "cursor": page_cursor(cursor)})}>; rel="next"'
    return response


@api_view(["GET"])
@by_identity
def container_changes(request, container_id):
    return _paged(request, files.changes_page, container_id)


@api_view(["GET"])
@by_identity
def container_files(request, container_id):
    return _paged(request, files.changed_files, container_id)


def _file_response(request, container_id, entry):
    (chunks, size, content_type, upstream), lease = limits.gate.opening(
        "download", _user(request), lambda: files.stream_file(container_id, entry["path"]))
    response = StreamingHttpResponse(iter_closing(chunks, lease.holding(upstream), {}), content_type=content_type)
    response["Content-Length"] = str(size)
    # A file name is the container's to choose (newlines, quotes, any Unicode): RFC 6266 quoting
    # for the name, and the path percent-encoded, so no name can break or inject a header.
    response["Content-Disposition"] = content_disposition_header(True, entry["path"].rsplit("/", 1)[-1])
    response["X-BoatLoad-Path"] = quote(entry["path"])
    return response


@api_view(["GET"])
@by_identity
def container_file(request, container_id, path):
    return _file_response(request, container_id, files.find_changed_file(container_id, path=path))


@api_view(["GET"])
@by_identity
def container_file_by_number(request, container_id, number):
    return _file_response(request, container_id, files.find_changed_file(container_id, number=number))


@api_view(["GET"])
@by_identity
def container_archive(request, container_id):
    compress = _query(ArchiveQuerySerializer, request)["compression"] == "gzip"
    archive, lease = limits.gate.opening("download", _user(request), lambda: files.ArchiveStream(
        container_id, files.changed_paths(container_id), compress=compress))
    response = StreamingHttpResponse(iter_closing(archive, lease.holding(archive), request.META),
                                     content_type="application/gzip" if compress else "application/x-tar")
    response["Content-Disposition"] = f'attachment; filename="{container_id[:12]}.{"tar.gz" if compress else "tar"}"'
    return response


@api_view(["GET"])
@by_identity
def container_stats(request, container_id):
    attrs = containers.container_inspect(container_id)
    if not attrs["State"]["Running"]:
        return Response({"running": False})
    return Response(metrics.hub.metrics([attrs["Id"]])[attrs["Id"]])


@api_view(["GET"])
def stats_all(request):
    return Response(metrics.metrics_of_all())
