"""Shapes of the Genisys API, as its documentation gives them."""
from rest_framework import serializers

from connectors.definitions import DefinitionSerializer
from genisys.deploy import UpdatePolicySerializer
from genisys.models import Compute, ScaleOrder, Service


class ComputeSerializer(serializers.ModelSerializer):
    token = serializers.CharField(write_only=True, required=False, allow_blank=True,
                                  help_text="Bearer token for an external connector (never shown again).")
    signed = serializers.SerializerMethodField(help_text="True when the connector is an enrolled satellite.")

    class Meta:
        model = Compute
        fields = ["name", "connector", "token", "signed"]

    def get_signed(self, compute) -> bool:
        return compute.host is not None


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
        fields = ["name", "image", "command", "environment", "ports", "healthcheck", "update", "version", "owner"]

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
        read_only_fields = ["name"]


class ScaleSerializer(serializers.Serializer):
    number = serializers.IntegerField(min_value=0, max_value=10_000)
    compute = serializers.CharField(required=False, help_text='A compute name, or "*" to spread over all.')


class ScaleResultSerializer(serializers.Serializer):
    service = serializers.CharField()
    number = serializers.IntegerField()
    computes = serializers.DictField()


class StatusSerializer(serializers.Serializer):
    service = serializers.CharField()
    computes = serializers.DictField()
    running_resources = serializers.IntegerField()
    desired = serializers.IntegerField()


class ScaleOrderSerializer(serializers.ModelSerializer):
    compute = serializers.CharField(source="compute.name", allow_null=True, default=None)
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)

    class Meta:
        model = ScaleOrder
        fields = ["compute", "requested_by", "source", "from_number", "to_number", "result", "running", "message",
                  "created"]
