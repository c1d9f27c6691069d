"""Shapes of the Genisys API, as its documentation gives them."""
from urllib.parse import urlsplit, urlunsplit

from rest_framework import serializers

from boatload.models import Host
from connectors.definitions import DefinitionSerializer
from genisys.deploy import UpdatePolicySerializer
from genisys.models import DEFINED_BY, Compute, ScaleOrder, Service, endpoints, host_reached_by, port_of


def masked(url):
    """`url` with the password of its credentials (`user:<token>@`) shown as `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"))


class ComputeSerializer(serializers.ModelSerializer):
    token = serializers.CharField(write_only=True, required=False, allow_blank=True,
                                  help_text="Bearer token for an external connector (never shown again).")
    host = serializers.SlugRelatedField(
        slug_field="name", queryset=Host.objects.all(), required=False, allow_null=True,
        help_text="The enrolled host whose satellite the connector is (calls are then signed). Without it, "
                  "the host whose satellite URL has the connector's address and port (resolved: localhost "
                  "and 127.0.0.1 are one), if any; given, the connector must reach that satellite.")
    signed = serializers.SerializerMethodField(help_text="True when the connector is an enrolled satellite "
                                                         "(linked to `host`): its calls are signed.")

    class Meta:
        model = Compute
        fields = ["name", "connector", "token", "host", "signed"]

    def get_signed(self, compute) -> bool:
        return compute.host_id is not None

    def validate(self, data):
        connector = data.get("connector", getattr(self.instance, "connector", None))
        host = data.get("host")
        if host is not None:
            if port_of(connector) != port_of(host.satellite_url) or not (
                    endpoints(connector) & endpoints(host.satellite_url)):
                raise serializers.ValidationError({"host": [
                    f"the connector {masked(connector)} does not reach the satellite of {host.name} "
                    f"({host.satellite_url}): its calls would be signed for another address"]})
        elif "connector" in data or self.instance is None or "host" in data:
            data["host"] = host_reached_by(connector)
        return data

    def to_representation(self, compute):
        compute.satellite()  # links a compute whose satellite enrolled after it was defined
        answer = super().to_representation(compute)
        answer["connector"] = masked(answer["connector"])
        return answer


class ComputeUpdateSerializer(ComputeSerializer):
    class Meta(ComputeSerializer.Meta):
        read_only_fields = ["name"]


class ServiceSerializer(serializers.ModelSerializer):
    """A service definition: name and image (with its tag) mandatory, as the connector's; `owner` is extra."""

    owner = serializers.CharField(source="owner.username", read_only=True, allow_null=True, default=None,
                                  help_text="The user it belongs to (set from the request); none: staff only.")

    version = serializers.IntegerField(read_only=True, help_text="The current version (GET …/versions).")

    class Meta:
        model = Service
        fields = ["name", "image", "command", "environment", "ports", "healthcheck", "memory", "cpus", "update",
                  "version", "owner", "defined_by"]
        read_only_fields = ["defined_by"]

    def validate_update(self, value):
        if value is None:
            return None
        policy = UpdatePolicySerializer(data=value)
        policy.is_valid(raise_exception=True)
        return dict(policy.validated_data)

    def validate(self, data):
        merged = {"name": getattr(self.instance, "name", None), **data}
        merged.pop("version", None)
        check = DefinitionSerializer(data=merged)
        check.is_valid(raise_exception=True)
        if data.get("healthcheck") is not None:
            data["healthcheck"] = dict(check.validated_data["healthcheck"])  # a string test becomes CMD-SHELL
        return data


class ServiceUpdateSerializer(ServiceSerializer):
    class Meta(ServiceSerializer.Meta):
        read_only_fields = ["name", "defined_by"]


class ScaleSerializer(serializers.Serializer):
    number = serializers.IntegerField(min_value=0, max_value=10_000)
    compute = serializers.CharField(required=False, help_text='A compute name, or "*" to spread over all.')


class ScaleResultSerializer(serializers.Serializer):
    service = serializers.CharField(help_text="The service's name.")
    number = serializers.IntegerField(help_text="The number ordered.")
    definition = serializers.ChoiceField(DEFINED_BY, help_text=(
        "Whose definition ran: BoatLoad's (pushed first), or the connector's own (the order was forwarded)."))
    computes = serializers.DictField()


class StatusSerializer(serializers.Serializer):
    service = serializers.CharField(help_text="The service's name.")
    computes = serializers.DictField(help_text="Per compute: its connector's `running_resources`, or its error.")
    running_resources = serializers.IntegerField(help_text="Running over every compute that answered.")
    desired = serializers.IntegerField(help_text="The desired number over every compute.")


class ScaleOrderSerializer(serializers.ModelSerializer):
    compute = serializers.CharField(source="compute.name", allow_null=True, default=None)
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)

    class Meta:
        model = ScaleOrder
        fields = ["compute", "requested_by", "source", "from_number", "to_number", "result", "running", "message",
                  "created"]
