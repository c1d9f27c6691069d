"""The connector protocol served by a satellite: /service CRUD, /scale and /status.

Paths and JSON shapes are the Genisys connector's. Callers authenticate with the API's
signature by default; SATELLITE_CONNECTOR_AUTH=token also accepts a static token, as a
bearer token or as the password of HTTP Basic (the original Genisys can only put credentials
in the connector URL, `http://user:<token>@host:port`, which requests sends as Basic), and
`none` accepts anyone (loopback only) — for Genisys clients that can not sign.
"""
import base64
import binascii
import hmac

from django.conf import settings
from django.http import FileResponse, StreamingHttpResponse
from rest_framework import authentication, exceptions, permissions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from common.errors import BadInput, BoatLoadError, NotFound
from common.spec import LogsQuerySerializer
from common.streams import iter_closing
from connectors import definitions
from satellite import containers, limits
from satellite.auth import SignatureAuthentication
from satellite.connector import docker_backend, slot_logs, swarm_backend
from satellite.connector.store import store


def backend():
    return swarm_backend if settings.CONNECTOR == "swarm" else docker_backend


class ConnectorTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <SATELLITE_CONNECTOR_TOKEN>`, or `Basic` with the token as the password
    (any user name), when the satellite is set up for it."""

    def authenticate(self, request):
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            token = credentials.strip()
        elif scheme.lower() == "basic":
            try:
                token = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")[2]
            except (binascii.Error, UnicodeDecodeError):
                raise exceptions.AuthenticationFailed("The Basic credentials do not decode.") from None
        else:
            return None
        if not hmac.compare_digest(token.encode(), (settings.CONNECTOR_TOKEN or "").encode()):
            raise exceptions.AuthenticationFailed("The connector token is wrong.")
        return ConnectorCaller(), None

    def authenticate_header(self, request):
        return "Bearer"


class ConnectorCaller:
    is_authenticated = True


class ConnectorView(APIView):
    def get_authenticators(self):
        if settings.CONNECTOR_AUTH == "token" and settings.CONNECTOR_TOKEN:
            return [ConnectorTokenAuthentication(), SignatureAuthentication()]  # token first: it passes when absent
        if settings.CONNECTOR_AUTH == "none":
            return []
        return [SignatureAuthentication()]

    def get_permissions(self):
        if settings.CONNECTOR_AUTH == "none":
            return [permissions.AllowAny()]
        return [permissions.IsAuthenticated()]

    def definition(self, name):
        found = store().get(name)
        if found is None:
            raise NotFound(f"No service named {name} on this connector.")
        return found


class ServiceListView(ConnectorView):
    def get(self, request):
        return Response(store().all())

    def post(self, request):
        data = definitions.DefinitionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(store().put(dict(data.validated_data)), status=201)


class ServiceDetailView(ConnectorView):
    def get(self, request, name):
        return Response(self.definition(name))

    def put(self, request, name):
        data = definitions.DefinitionSerializer(data={**request.data, "name": name})
        data.is_valid(raise_exception=True)
        return Response(store().put(dict(data.validated_data)))


class ScaleSerializer(serializers.Serializer):
    number = serializers.IntegerField(min_value=0)

    def validate_number(self, value):
        if value > settings.MAX_SCALE:
            raise serializers.ValidationError(f"at most {settings.MAX_SCALE} on this connector")
        return value


class ServiceScaleView(ConnectorView):
    def post(self, request, name):
        if not isinstance(request.data, dict):
            raise BadInput("number", "the body must be a JSON object")
        data = ScaleSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        definition = self.definition(name)
        running = backend().scale(definition, data.validated_data["number"])
        return Response({"running_resources": running})


class ServiceStatusView(ConnectorView):
    def get(self, request, name):
        self.definition(name)
        if settings.CONNECTOR == "swarm":  # with the tasks per node (a rebalance evens them out)
            return Response(swarm_backend.status(name))
        return Response({"running_resources": backend().running(name)})


class SlotsView(ConnectorView):
    """What runs in each slot of a service (plain Docker backend): version, state, Docker's health."""

    def get(self, request, name):
        self.definition(name)
        return Response(slot_backend().slots(name))


class SlotQuerySerializer(serializers.Serializer):
    keep = serializers.IntegerField(required=False, min_value=1, help_text="The version to keep.")


class SlotView(ConnectorView):
    """POST: a container of the body's definition (with `version`) in this slot, unless one is there.
    DELETE: remove the slot's containers of every version but `?keep=`."""

    def post(self, request, name, slot):
        self.definition(name)
        data = definitions.DefinitionSerializer(data={**request.data, "name": name}
                                                if isinstance(request.data, dict) else request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data.get("version") is None:
            raise BadInput("version", "a slot is started for a versioned definition only")
        return Response(slot_backend().slot_start(dict(data.validated_data), int(slot)))

    def delete(self, request, name, slot):
        self.definition(name)
        query = SlotQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response({"removed": slot_backend().slot_clear(name, int(slot), query.validated_data.get("keep"))})


class RolloutPolicySerializer(serializers.Serializer):
    """What of a deployment's update policy the Swarm backend takes: UpdateConfig's, and healthy_deadline
    (checked on the tasks; other keys, progress_deadline, are deploy.py's own and ignored here)."""

    parallelism = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    min_healthy_time = definitions.DurationField(required=False, min_seconds=0, max_seconds=86400)
    healthy_deadline = definitions.DurationField(required=False, min_seconds=0.001, max_seconds=86400)
    order = serializers.ChoiceField(required=False, choices=["stop-first", "start-first"])
    failure_action = serializers.ChoiceField(required=False, choices=["rollback", "pause"])
    auto_revert = serializers.BooleanField(required=False)


class RolloutSerializer(ScaleSerializer):
    definition = serializers.DictField()
    policy = RolloutPolicySerializer()
    observe = serializers.BooleanField(required=False, default=False)
    resume = serializers.RegexField(r"^[0-9a-z.-]{1,64}$", required=False,
                                    help_text="A token naming one resume of the deployment: an update Swarm paused "
                                              "is resumed once per token.")


class RolloutView(ConnectorView):
    """POST (Swarm backend): give the service the body's versioned definition (kept as PUT /service keeps one),
    rolled by Swarm with the update policy, and answer its progress (an observation only with `observe`, of a
    service defined here). Idempotent."""

    def post(self, request, name):
        if settings.CONNECTOR != "swarm":
            raise BoatLoadError("The plain Docker backend rolls by slots (/slots); it has no rollout.",
                                code="not_implemented", status_code=501)
        if not isinstance(request.data, dict):
            raise BadInput("definition", "the body must be a JSON object")
        body = RolloutSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = definitions.DefinitionSerializer(data={**body.validated_data["definition"], "name": name})
        if not data.is_valid():
            field, errors = next(iter(data.errors.items()))
            raise BadInput(f"definition.{field}", "; ".join(str(e) for e in errors))
        if data.validated_data.get("version") is None:
            raise BadInput("definition.version", "a rollout is of a versioned definition only")
        if body.validated_data["observe"]:
            self.definition(name)
        else:
            store().put(dict(data.validated_data))
        return Response(swarm_backend.rollout(dict(data.validated_data), body.validated_data["number"],
                                              dict(body.validated_data["policy"]),
                                              observe=body.validated_data["observe"],
                                              resume=body.validated_data.get("resume")))


class SlotLogListView(APIView):
    """The service's containers here whose output can be read: live ones, and the removed ones whose last output
    was kept (slot_logs). Signed like every satellite route, whatever SATELLITE_CONNECTOR_AUTH says: output is
    not part of the connector protocol."""

    def get(self, request, name):
        if slot_logs.folder(name) is None:
            raise NotFound(f"No service named {name} on this connector.")
        live = [{"container": item["id"], "name": item["name"], "slot": item["slot"], "version": item["version"],
                 "state": "live", "docker_state": item["state"], "created": item["created"], "removed_at": None,
                 "reason": None} for item in docker_backend.slots(name)]
        archived = [{**meta, "state": "archived"} for meta in slot_logs.kept(name)]
        return Response(live + archived)


class SlotLogView(APIView):
    """One container's output: a live one's from the engine (the query as for a container's logs), a removed
    one's kept copy, marked `X-BoatLoad-Archived: <why it went>` (the query does not apply)."""

    def get(self, request, name, container):
        query = LogsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        live = next((item for items in docker_backend.service_containers(name)[0].values() for item in items
                     if item["id"] == container), None) if slot_logs.folder(name) else None
        if live is not None:
            return self.live(request, live["id"], query.validated_data)
        found = slot_logs.kept_one(name, container)
        if found is None:
            raise NotFound(f"No container {container} of service {name} on this host, and no output kept of one.")
        meta, path = found
        try:
            kept = open(path, "rb")  # FileResponse closes it when the answer ends
        except FileNotFoundError:  # pruned since it was found
            raise NotFound(f"The output kept of container {container} is gone (pruned).") from None
        response = FileResponse(kept, content_type="text/plain")
        response.block_size = 64 * 1024
        response["X-BoatLoad-Archived"] = meta["reason"]
        response["X-BoatLoad-Archived-At"] = meta["removed_at"]
        response["X-BoatLoad-Archive-Truncated"] = "true" if meta["truncated"] else "false"
        return response

    def live(self, request, container_id, query):
        user = request.query_params.get("as_user", "")
        if not query["follow"]:
            stream = containers.logs_stream(container_id, **query)
            return StreamingHttpResponse(iter_closing(stream, stream, request.META), content_type="text/plain")
        stream, lease = limits.gate.opening("follow", user, lambda: containers.logs_stream(container_id, **query))
        return StreamingHttpResponse(iter_closing(stream, lease.holding(stream), request.META, follow=True),
                                     content_type="text/plain")


def slot_backend():
    if settings.CONNECTOR == "swarm":
        raise BoatLoadError("The Swarm backend rolls its own updates; it has no slots.", code="not_implemented",
                            status_code=501)
    return docker_backend
