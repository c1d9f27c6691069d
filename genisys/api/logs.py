"""Output of a service's containers (issue 17, item 3): /service/<name>/logs lists every container of the
service whose output can be read, on every satellite compute it has been on, live ones and those a rolling
update, a scale-down or a rebalance removed (their satellite kept their last output:
satellite/connector/slot_logs.py); /service/<name>/logs/<container> streams one. Reached as the service's
other routes are: its owner or staff; another user's service is 404."""
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from boatload.api.views import passed_on
from common.spec import LogsQuerySerializer
from genisys import services
from genisys.api.views import ServiceView

PASSED_ON = ("Content-Length", "X-BoatLoad-Archived", "X-BoatLoad-Archived-At", "X-BoatLoad-Archive-Truncated")


class SlotLogSerializer(serializers.Serializer):
    compute = serializers.CharField()
    container = serializers.CharField(help_text="The Docker id: the path of its output (…/logs/<container>).")
    name = serializers.CharField(help_text="bl-<service>-<slot>, with -<n> while two versions shared the slot.")
    slot = serializers.IntegerField(allow_null=True)
    version = serializers.IntegerField(allow_null=True)
    state = serializers.ChoiceField(choices=["live", "archived"],
                                    help_text="live: on its host now; archived: removed, its last output kept.")
    docker_state = serializers.CharField(required=False, help_text="Docker's state of a live one (running, exited, …).")
    created = serializers.IntegerField(allow_null=True, help_text="Unix time Docker made it.")
    removed_at = serializers.DateTimeField(allow_null=True)
    reason = serializers.ChoiceField(choices=["replaced", "removed", "dead"], allow_null=True,
                                     help_text="Why it was removed: another version took its slot (replaced), the "
                                               "slot went (removed: a scale-down, a rebalance), it had died (dead).")
    size = serializers.IntegerField(required=False, help_text="Bytes kept (archived).")
    truncated = serializers.BooleanField(required=False, help_text="Its output was longer than what was kept.")


class SlotLogFailureSerializer(serializers.Serializer):
    compute = serializers.CharField()
    code = serializers.CharField()
    message = serializers.CharField()


class SlotLogListSerializer(serializers.Serializer):
    results = SlotLogSerializer(many=True)
    failures = SlotLogFailureSerializer(many=True, help_text="Computes that did not answer in time, or failed.")


class SlotLogQuerySerializer(LogsQuerySerializer):
    compute = serializers.CharField(required=False, max_length=100, help_text="Ask this compute only.")


class ServiceLogListView(ServiceView):
    @extend_schema(responses=SlotLogListSerializer, operation_id="service_logs_list")
    def get(self, request, name):
        """The service's containers whose output can be read, live and removed (with their kept output), on
        every satellite compute it has been on; computes that fail are named in `failures`."""
        return Response(services.service_logs(service=self.get_object()))


class ServiceLogView(ServiceView):
    @extend_schema(parameters=[SlotLogQuerySerializer,
                               OpenApiParameter("container", str, OpenApiParameter.PATH, pattern="^[0-9a-f]{64}$")],
                   responses={(200, "text/plain"): OpenApiTypes.STR}, operation_id="service_log_read")
    def get(self, request, name, container):
        """One container's output, streamed: a live one's from its satellite (`tail`, `stderr`, `follow` as for a
        container's stdout); a removed one's last output as kept then, marked `X-BoatLoad-Archived` (why it
        went), `X-BoatLoad-Archived-At` and `X-BoatLoad-Archive-Truncated` (the query does not apply)."""
        query = SlotLogQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = {k: int(v) if isinstance(v, bool) else v for k, v in query.validated_data.items() if k != "compute"}
        compute, upstream, chunks = services.service_log(
            service=self.get_object(), container=container, compute=query.validated_data.get("compute"),
            as_user=request.user.username, **params)
        response = passed_on(request, upstream, chunks, follow=query.validated_data["follow"], headers=PASSED_ON,
                             content_type="text/plain")
        response["X-BoatLoad-Compute"] = compute.name
        return response
