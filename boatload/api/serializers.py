"""Data shapes of the v1 API; no side effects here."""
from rest_framework import serializers

from boatload.models import Host, JoinToken


class HostSerializer(serializers.ModelSerializer):
    healthy = serializers.BooleanField(source="is_healthy", read_only=True)

    class Meta:
        model = Host
        fields = ["name", "satellite_url", "state", "healthy", "last_seen", "address_internal", "address_cloud",
                  "address_public", "labels", "docker_version", "cpus", "memory_bytes", "created"]
        read_only_fields = fields


class HostFactsSerializer(serializers.Serializer):
    """What a satellite reports about its host when it enrols and on every heartbeat."""

    docker_version = serializers.CharField(required=False, allow_blank=True, max_length=64)
    cpus = serializers.IntegerField(required=False, min_value=0)
    memory_bytes = serializers.IntegerField(required=False, min_value=0)
    address_internal = serializers.CharField(required=False, allow_blank=True, max_length=255)
    address_cloud = serializers.CharField(required=False, allow_blank=True, max_length=255)
    address_public = serializers.CharField(required=False, allow_blank=True, max_length=255)


class EnrolSerializer(HostFactsSerializer):
    token = serializers.CharField(max_length=200)
    name = serializers.SlugField(max_length=100)
    satellite_url = serializers.URLField(max_length=300)
    labels = serializers.DictField(child=serializers.CharField(max_length=200), required=False)


class EnrolledSerializer(serializers.Serializer):
    host = serializers.CharField()
    key_id = serializers.CharField()
    secret = serializers.CharField()


class JoinTokenSerializer(serializers.ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="name", read_only=True)
    ttl = serializers.IntegerField(write_only=True, required=False, min_value=60, max_value=30 * 24 * 3600,
                                   help_text="Seconds until the token expires.")

    class Meta:
        model = JoinToken
        fields = ["id", "prefix", "note", "created", "expires", "used", "host", "ttl"]
        read_only_fields = ["id", "prefix", "created", "expires", "used", "host"]


class IssuedJoinTokenSerializer(JoinTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; only its hash is kept.")
    join_command = serializers.CharField(read_only=True, help_text="Starts a satellite that enrols with this token.")

    class Meta(JoinTokenSerializer.Meta):
        fields = JoinTokenSerializer.Meta.fields + ["token", "join_command"]
