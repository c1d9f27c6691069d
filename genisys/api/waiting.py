"""The answer every mutating Genisys call gives (`answer`): its deployment's URL, and with
`?wait=<duration>` the deployment's terminal state, so a CI step is one call.

A waited-for answer says by its status whether the change worked: 200 succeeded; 409 failed,
rolled back or paused (the error shape, with the deployment in `detail.deployment`); 202 with
the URL (and `Location`) when the wait ran out first, as without `wait`... except that without
`wait` a change answers as it always did (200 or 201) with the URL in the body.
"""
from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response

from common.env import parse_duration
from common.errors import error_body
from connectors.definitions import DurationField
from genisys import deploy
from genisys.models import Deployment, ServiceVersion

WAIT = OpenApiParameter("wait", str, description='Block until the deployment ends, at most this long ("5m"); '
                        "200 succeeded, 409 failed, rolled back or paused, 202 still running.")
FAILED_CODES = {"failed": "deployment_failed", "rolled_back": "deployment_rolled_back",
                "paused": "deployment_paused"}


class WaitQuerySerializer(serializers.Serializer):
    wait = DurationField(required=False, min_seconds=0)

    def validate_wait(self, value):
        seconds = parse_duration(value)
        if seconds > settings.GENISYS_MAX_WAIT:
            raise serializers.ValidationError(f"at most {settings.GENISYS_MAX_WAIT:g}s (GENISYS_MAX_WAIT)")
        return seconds


def wait_of(request):
    """Seconds of `?wait=`, or None; checked before anything changes (400 naming `wait`)."""
    query = WaitQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data.get("wait")


def deployment_url(request, deployment):
    return request.build_absolute_uri(f"/service/{deployment.service.name}/deployments/{deployment.pk}")


class VersionSerializer(serializers.ModelSerializer):
    version = serializers.IntegerField(source="number")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    current = serializers.SerializerMethodField()

    class Meta:
        model = ServiceVersion
        fields = ["version", "current", "definition", "created_by", "created"]

    def get_current(self, row) -> bool:
        return row.number == row.service.version


class ComputeProgressSerializer(serializers.Serializer):
    desired = serializers.IntegerField()
    updated = serializers.IntegerField(help_text="Slots that run the target version.")
    healthy = serializers.IntegerField(help_text="Of those, healthy for min_healthy_time.")
    failed = serializers.IntegerField()
    versions = serializers.DictField(child=serializers.IntegerField(), required=False,
                                     help_text="Containers per version on the compute now.")
    error = serializers.CharField(required=False, help_text="Its connector's failure at the last step.")
    slots = serializers.BooleanField(required=False, help_text="False: a connector without slot routes.")
    target = serializers.IntegerField(required=False, help_text="A rebalance: the number the even spread gives it.")
    swarm = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False,
                                  help_text="A Swarm compute: its service's UpdateStatus (state, message) at the "
                                            "last step.")
    nodes = serializers.DictField(child=serializers.IntegerField(), required=False,
                                  help_text="A Swarm compute, in a scale or rebalance: the service's running tasks per "
                                            "node Swarm may place one on (node id: number).")
    surges = serializers.IntegerField(required=False, help_text="A rebalance of a Swarm compute: how many times its "
                                      "number was raised to even its nodes out.")


class DeploymentSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(read_only=True)
    url = serializers.SerializerMethodField()
    service = serializers.CharField(source="service.name")
    started_by = serializers.CharField(source="started_by.username", allow_null=True, default=None)
    computes = serializers.SerializerMethodField()

    class Meta:
        model = Deployment
        fields = ["id", "url", "service", "kind", "from_version", "to_version", "target_version", "state",
                  "rolling_back", "reason", "started_by", "policy", "computes", "created", "updated", "finished"]

    def get_url(self, row) -> str:
        return deployment_url(self.context["request"], row)

    @extend_schema_field(serializers.DictField(child=ComputeProgressSerializer()))
    def get_computes(self, row):
        return {name: {k: v for k, v in entry.items() if k != "healthy_since"} for name, entry in row.progress.items()}


def answer(request, body, deployment, wait, created=False, success=Deployment.State.SUCCEEDED):
    """The answer of a change: `body` with its deployment (or None) in `deployment` (body None: the
    deployment itself), waited for when `wait` is given; `success` is the end that means it worked (a
    rollback's: rolled_back)."""
    if deployment is None:
        return Response({**body, "deployment": None}, status=201 if created else 200)
    if wait is not None:
        deployment = deploy.wait_settled(deployment=deployment, seconds=wait)
    shown = DeploymentSerializer(deployment, context={"request": request}).data
    headers = {"Location": shown["url"]}
    whole = shown if body is None else {**body, "deployment": shown}  # body None: the deployment is the answer
    if wait is None:
        return Response(whole, status=201 if created else 200, headers=headers)
    if deployment.state == success:
        return Response(whole, status=200, headers=headers)
    if deployment.state in FAILED_CODES:
        message = f"Deployment {deployment.pk} of {deployment.service.name} {deployment.state}: {deployment.reason}"
        return Response(error_body(FAILED_CODES[deployment.state], message,
                                   {"field": None, "deployment": shown, "url": shown["url"]}),
                        status=status.HTTP_409_CONFLICT, headers=headers)
    return Response(whole, status=status.HTTP_202_ACCEPTED, headers=headers)
