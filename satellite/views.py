"""HTTP surface of a satellite; every view but /healthz needs the API's signature."""
import threading

from django.conf import settings
from django.http import JsonResponse, StreamingHttpResponse
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from boatload.errors import BadInput, error_body
from boatload.spec import ContainerSpecSerializer
from boatload.streams import iter_closing, open_streams
from satellite import containers, files, metrics
from satellite.engine import client, docker_errors


def healthz(request):
    """Unsigned liveness: 200 when the local Docker engine answers."""
    try:
        client().ping()
    except Exception as exc:  # whatever the engine did, it is not healthy
        return JsonResponse(error_body("engine_unavailable", f"The Docker engine does not answer: "
                                                             f"{exc.__class__.__name__}"), status=503)
    return JsonResponse({"status": "ok", "docker": "ok"})


class IdentitySerializer(serializers.Serializer):
    container = serializers.CharField(max_length=64, allow_blank=True, default="")
    owner = serializers.CharField(max_length=150, allow_blank=True, default="")
    service = serializers.CharField(max_length=100, allow_blank=True, default="")
    slot = serializers.IntegerField(required=False, min_value=0)


class CreateSerializer(ContainerSpecSerializer):
    """A container spec plus who it is for; field names match the API's, so errors name the same field."""

    identity = IdentitySerializer(default=dict)
    as_staff = serializers.BooleanField(default=False)
    start = serializers.BooleanField(default=True)


class RawCreateSerializer(serializers.Serializer):
    body = serializers.DictField()
    name = serializers.CharField(required=False, max_length=128)
    identity = IdentitySerializer(default=dict)
    as_staff = serializers.BooleanField(default=False)


def _query_int(request, name, default=None, minimum=0):
    value = request.query_params.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadInput(name, "must be an integer") from None
    if number < minimum:
        raise BadInput(name, f"must be at least {minimum}")
    return number


def _query_bool(request, name, default=False):
    value = request.query_params.get(name)
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes", "on")


@api_view(["GET"])
def info(request):
    """The engine's facts, and this satellite's own: streams in flight and threads watching them."""
    watchers = sum(1 for thread in threading.enumerate() if thread.name == "disconnect-watch")
    return Response({**containers.engine_info(),
                     "satellite": {"name": settings.NAME, "open_streams": open_streams(),
                                   "stream_watchers": watchers, "threads": threading.active_count()}})


@api_view(["GET"])
def images(request):
    return Response(containers.images())


@api_view(["GET", "POST"])
def container_list(request):
    if request.method == "GET":
        return Response(containers.containers_list(request.query_params.getlist("label"),
                                                   include_stopped=_query_bool(request, "all", True)))
    data = CreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    spec = dict(data.validated_data)
    options = {key: spec.pop(key) for key in ("identity", "as_staff", "start")}
    return Response(containers.container_create(spec=spec, **options), status=201)


@api_view(["POST"])
def container_raw(request):
    data = RawCreateSerializer(data=request.data)
    data.is_valid(raise_exception=True)
    if not data.validated_data["as_staff"]:
        raise BadInput("as_staff", "raw create is for staff only")
    return Response(containers.container_create_raw(body=data.validated_data["body"],
                                                    identity=data.validated_data["identity"],
                                                    name=data.validated_data.get("name")), status=201)


@api_view(["GET", "DELETE"])
def container_detail(request, container_id):
    if request.method == "DELETE":
        containers.container_action(container_id, "remove")
        return Response(status=204)
    return Response(containers.container_inspect(container_id))


@api_view(["POST"])
def container_action(request, container_id, action):
    timeout = _query_int(request, "timeout")
    return Response({"state": containers.container_action(container_id, action, timeout=timeout)})


@api_view(["GET"])
def container_state(request, container_id):
    return Response(containers.container_inspect(container_id)["State"])


@api_view(["GET"])
def container_logs(request, container_id):
    follow = _query_bool(request, "follow")
    stream = containers.logs_stream(
        container_id, stdout=_query_bool(request, "stdout", True), stderr=_query_bool(request, "stderr", False),
        tail=_query_int(request, "tail"), since=_query_int(request, "since"), follow=follow,
    )
    return StreamingHttpResponse(iter_closing(stream, stream, request.META, follow=follow),
                                 content_type="text/plain")


@api_view(["GET"])
def container_script(request, container_id):
    name, data = containers.container_script(container_id)
    return Response({"scriptname": name, "script": data.decode(errors="replace")})


@api_view(["GET"])
def container_changes(request, container_id):
    with docker_errors():
        return Response(client().api.diff(container_id) or [])


@api_view(["GET"])
def container_files(request, container_id):
    return Response(files.changed_files(container_id))


def _file_response(container_id, entry):
    chunks, size, content_type, upstream = files.stream_file(container_id, entry["path"])
    response = StreamingHttpResponse(iter_closing(chunks, upstream, {}), content_type=content_type)
    response["Content-Length"] = str(size)
    response["Content-Disposition"] = f'attachment; filename="{entry["path"].rsplit("/", 1)[-1]}"'
    response["X-BoatLoad-Path"] = entry["path"]
    return response


@api_view(["GET"])
def container_file(request, container_id, path):
    return _file_response(container_id, files.find_changed_file(container_id, path=path))


@api_view(["GET"])
def container_file_by_number(request, container_id, number):
    return _file_response(container_id, files.find_changed_file(container_id, number=number))


@api_view(["GET"])
def container_archive(request, container_id):
    compress = request.query_params.get("compression", "") == "gzip"
    archive = files.ArchiveStream(container_id, files.changed_files(container_id), compress=compress)
    response = StreamingHttpResponse(iter_closing(archive, archive, request.META),
                                     content_type="application/gzip" if compress else "application/x-tar")
    response["Content-Disposition"] = f'attachment; filename="{container_id[:12]}.{"tar.gz" if compress else "tar"}"'
    return response


@api_view(["GET"])
def container_stats(request, container_id):
    attrs = containers.container_inspect(container_id)
    if not attrs["State"]["Running"]:
        return Response({"running": False})
    return Response(metrics.hub.metrics([attrs["Id"]])[attrs["Id"]])


@api_view(["GET"])
def stats_all(request):
    return Response(metrics.metrics_of_all())
