"""Data shapes of the v1 API; no side effects here."""
import base64
import functools
from urllib.parse import urlsplit

from django.conf import settings
from rest_framework import exceptions, serializers

from boatload.models import Container, Host, JoinToken, Template
from boatload.template_spec import check_template_body, error_tree, template_to_spec
from common import docker_policy, sealing, spec, tls
from common.errors import BadInput, error_body
from common.serializers import ModelSerializer
from common.spec import ContainerSpecSerializer


class HostSerializer(ModelSerializer):
    healthy = serializers.BooleanField(source="is_healthy", read_only=True)
    rotating_key = serializers.SerializerMethodField()

    class Meta:
        model = Host
        fields = ["name", "satellite_url", "transport", "state", "healthy", "rotating_key", "last_seen",
                  "address_internal",
                  "address_cloud", "address_public", "labels", "docker_version", "cpus", "memory_bytes", "created"]
        read_only_fields = fields

    transport = serializers.CharField(read_only=True, help_text="https-pinned: HTTPS to the certificate recorded "
                                      "at enrolment; http-loopback: plain HTTP on a loopback address.")

    def get_rotating_key(self, host) -> bool:
        return bool(host.next_key_id)


class HostFactsSerializer(serializers.Serializer):
    """What a satellite reports about its host when it enrols and on every heartbeat."""

    docker_version = serializers.CharField(required=False, allow_blank=True, max_length=64)
    # The columns' ranges (PositiveIntegerField, BigIntegerField): a larger number is a 400, not a database error.
    cpus = serializers.IntegerField(required=False, min_value=0, max_value=2**31 - 1)
    memory_bytes = serializers.IntegerField(required=False, min_value=0, max_value=2**63 - 1)
    address_internal = serializers.CharField(required=False, allow_blank=True, max_length=255)
    address_cloud = serializers.CharField(required=False, allow_blank=True, max_length=255)
    address_public = serializers.CharField(required=False, allow_blank=True, max_length=255)
    saturated = serializers.ListField(child=serializers.ChoiceField(["fetch", "follow", "download"]),
                                      required=False, max_length=3,
                                      help_text="Kinds of work at the satellite's host-wide bound.")


class NextKeySerializer(serializers.Serializer):
    key_id = serializers.CharField()
    sealed_secret = serializers.CharField(help_text="The new secret sealed to the satellite's seal key "
                                                    "(X25519, HKDF-SHA256, ChaCha20-Poly1305; docs/security.md).")


class HeartbeatAnswerSerializer(serializers.Serializer):
    host = serializers.CharField()
    state = serializers.CharField()
    key_id = serializers.CharField(help_text="The key the API signs with now.")
    next_key = NextKeySerializer(required=False, help_text="A key being rotated in: sign heartbeats with it.")


class ChannelSerializer(serializers.Serializer):
    """How the API reaches a satellite and seals keys to it: checked the same at enrolment and heartbeat."""

    satellite_url = serializers.URLField(max_length=300)
    certificate = serializers.CharField(required=False, allow_blank=True, max_length=20_000, trim_whitespace=False,
                                        help_text="The satellite's TLS certificate (PEM); pinned from now on.")
    seal_public_key = serializers.CharField(max_length=64, help_text="X25519 public key (base64url) rotated "
                                                                     "secrets are sealed to.")

    def validate_certificate(self, value):
        host = self.context.get("host")
        if value and not (host is not None and value == host.tls_certificate):  # the pinned one: parsed before
            try:
                tls.load_certificate(value)
            except tls.CertificateError as exc:
                raise serializers.ValidationError(str(exc)) from None
        return value

    def validate_seal_public_key(self, value):
        host = self.context.get("host")
        if host is not None and value == host.seal_public_key:  # the recorded one: checked before
            return value
        try:
            sealing.public_key_from_text(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate(self, data):
        if "satellite_url" not in data:
            return data
        url = urlsplit(data["satellite_url"])
        if url.scheme == "https" and not data.get("certificate"):
            raise BadInput("certificate", "an https satellite_url needs the satellite's certificate to pin")
        if url.scheme == "http" and not tls.is_loopback(url.hostname):
            raise BadInput("satellite_url", "plain HTTP is only allowed on a loopback address; serve HTTPS")
        if url.scheme not in ("http", "https"):
            raise BadInput("satellite_url", "must be https (or http on a loopback address)")
        return data


class EnrolSerializer(ChannelSerializer, HostFactsSerializer):
    token = serializers.CharField(max_length=200)
    name = serializers.SlugField(max_length=100)
    labels = serializers.DictField(child=serializers.CharField(max_length=200), required=False)


class HeartbeatSerializer(ChannelSerializer, HostFactsSerializer):
    """Facts, and (optionally) the channel: recorded only for a host enrolled before satellites served
    TLS, which has no certificate or seal key yet; a pinned certificate is never replaced here."""

    satellite_url = serializers.URLField(max_length=300, required=False)
    seal_public_key = serializers.CharField(max_length=64, required=False)


class EnrolledSerializer(serializers.Serializer):
    host = serializers.CharField()
    transport = serializers.CharField()
    key_id = serializers.CharField()
    secret = serializers.CharField()
    heartbeat_interval = serializers.FloatField(help_text="Seconds between heartbeats, so the host is not "
                                                          "marked down between two of them.")


class JoinTokenSerializer(ModelSerializer):
    host = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True,
                                        help_text="The host it enrolled; null while unused.")
    ttl = serializers.IntegerField(write_only=True, required=False, min_value=60, max_value=30 * 24 * 3600,
                                   help_text="Seconds until the token expires.")

    class Meta:
        model = JoinToken
        fields = ["id", "prefix", "note", "created", "expires", "used", "host", "ttl"]
        read_only_fields = ["id", "prefix", "created", "expires", "used", "host"]


class IssuedJoinTokenSerializer(JoinTokenSerializer):
    token = serializers.CharField(read_only=True, help_text="Shown once; only its hash is kept.")
    join_command = serializers.CharField(read_only=True, help_text="docker run line that starts an enrolling "
                                                                   "satellite; set HOST_ADDRESS first.")
    join_command_venv = serializers.CharField(read_only=True, help_text="The same for a virtualenv install.")

    class Meta(JoinTokenSerializer.Meta):
        fields = JoinTokenSerializer.Meta.fields + ["token", "join_command", "join_command_venv"]


class ContainerCreateSerializer(ContainerSpecSerializer):
    """What POST /v1/container/ takes: a container spec, plus where and how many."""

    host = serializers.SlugField(required=False, help_text="Name of the host; the least loaded one when absent.")
    host_labels = serializers.DictField(child=serializers.CharField(), required=False, default=dict,
                                        help_text="Only hosts carrying all these labels are chosen.")
    template = serializers.SlugField(required=False, help_text="Template whose fields the request overrides.")
    instances = serializers.IntegerField(required=False, min_value=1,
                                         help_text="How many to create, spread evenly over the chosen hosts.")

    PLACEMENT_FIELDS = ("host", "host_labels", "template", "instances")

    def to_internal_value(self, data):
        """A template's fields first, the request's over them."""
        if isinstance(data, dict) and data.get("template"):
            data = dict(data)
            template = Template.objects.filter(name=data.pop("template")).first()
            if template is None:
                raise BadInput("template", "no such template")
            data = {**template_to_spec(template.body), **data}
        return super().to_internal_value(data)

    def validate(self, data):
        """After the spec's own checks: the script's size (413), then the staff policy (403) for the
        context's `user`."""
        data = super().validate(data)
        if data.get("script"):
            spec.check_script_size(len(base64.b64decode(data["script"])), settings.SCRIPT_MAX_BYTES)
        field = spec.needs_staff(data)
        if field and not self.context["user"].is_staff:
            raise exceptions.PermissionDenied(f"{field}: only staff may ask for this.")
        return data

    def placement_and_spec(self):
        """(where and how many, the container spec) of the validated request."""
        fields = dict(self.validated_data)
        return {key: fields.pop(key) for key in self.PLACEMENT_FIELDS if key in fields}, fields

    def validate_name(self, value):
        return spec.check_user_name(value)  # the pattern is the field's (spec.name_field)

    def validate_instances(self, value):
        if value > settings.MAX_INSTANCES:
            raise serializers.ValidationError(f"at most {settings.MAX_INSTANCES}")
        return value


def instances_answer(outcomes):
    """(body, status) of a create with `instances`: every result, 201 when all were made, 207 when some
    were, 502 when none."""
    results = [{"host": row.host.name, "container": ContainerSerializer(row).data} if error is None else
               {"host": row.host.name, "container_id": str(row.uuid),
                "error": error_body(error.code, error.message, error.extra)["error"]}
               for row, error in outcomes]
    failed = sum(1 for _, error in outcomes if error is not None)
    code = 201 if not failed else 207 if failed < len(outcomes) else 502
    return {"results": results, "created": len(outcomes) - failed, "failed": failed}, code


# What every satellite could allow: the API checks a raw body's keys and types with it before any
# row is written; the chosen satellite then applies its own operator's policy.
ANY_SATELLITE = docker_policy.RawPolicy(host_namespaces=True, devices=True, capabilities=True, sharing=True,
                                        security_options=True, sysctls=True, host_paths=("/",))


class RawCreateSerializer(serializers.Serializer):
    body = serializers.DictField(help_text="A Docker create-container body, as is.")
    host = serializers.SlugField(required=False)
    host_labels = serializers.DictField(child=serializers.CharField(), required=False, default=dict)

    def validate_body(self, value):
        docker_policy.check_create_body(value, ANY_SATELLITE)
        return value


class ContainerSerializer(ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    host = serializers.CharField(source="host.name", read_only=True, allow_null=True, default=None)

    class Meta:
        model = Container
        fields = ["id", "owner", "host", "name", "docker_id", "image_name", "image_tag", "state", "health",
                  "exit_code", "last_error", "ports", "endpoints", "service", "script_name", "spec", "created",
                  "updated"]
        read_only_fields = fields

    @classmethod
    @functools.cache
    def page_plan(cls):
        """(field name, column, field's to_representation) of every field, built once a process: the column
        is what a listing reads with `.values()` (`owner__username` for `owner.username`)."""
        return [(name, field.source.replace(".", "__"), field.to_representation)
                for name, field in cls().fields.items()]

    @classmethod
    def represent(cls, rows):
        """What `cls(row).data` is for each of `rows`, dicts of the plan's columns as `.values()` reads them: a
        page builds neither three models nor a serializer per row (a third of the CPU of a page of 100). Each
        field still turns its value into its answer, and None stays None, as DRF does;
        tests/api/test_container_page.py holds the two answers equal."""
        plan = cls.page_plan()
        return [{name: None if row[column] is None else represent(row[column]) for name, column, represent in plan}
                for row in rows]


class InstanceResultSerializer(serializers.Serializer):
    host = serializers.CharField()
    container = ContainerSerializer(required=False)
    error = serializers.DictField(required=False)


class InstancesSerializer(serializers.Serializer):
    results = InstanceResultSerializer(many=True)
    created = serializers.IntegerField()
    failed = serializers.IntegerField()


class DockerStateSerializer(serializers.Serializer):
    platform_state = serializers.CharField()
    docker_state = serializers.DictField()


class ScriptSerializer(serializers.Serializer):
    scriptname = serializers.CharField()
    script = serializers.CharField()


class EndpointSerializer(serializers.Serializer):
    address = serializers.CharField()
    port = serializers.IntegerField()
    scope = serializers.CharField()
    portScope = serializers.CharField()
    containerPort = serializers.IntegerField()
    protocol = serializers.CharField()


class ConnectionQuerySerializer(serializers.Serializer):
    to = serializers.UUIDField()
    port = serializers.IntegerField(min_value=1, max_value=65535)
    protocol = serializers.ChoiceField(choices=["TCP", "UDP"], default="TCP")

    def to_internal_value(self, data):
        data = data.dict() if hasattr(data, "dict") else dict(data)
        if isinstance(data.get("protocol"), str):
            data["protocol"] = data["protocol"].upper()
        return super().to_internal_value(data)


class ChangeSerializer(serializers.Serializer):
    """One entry of the engine's diff, as Docker gives it."""

    Path = serializers.CharField()
    Kind = serializers.IntegerField(help_text="0 changed, 1 added, 2 deleted.")


class ChangedFileSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="Its position among the changed paths: /filebynum/<number>.")
    path = serializers.CharField()
    size = serializers.IntegerField()
    mtime = serializers.CharField(allow_null=True)


# The same query rules on the API and its satellites.
ActionQuerySerializer = spec.ActionQuerySerializer
LogsQuerySerializer = spec.LogsQuerySerializer


class TemplateSerializer(ModelSerializer):
    class Meta:
        model = Template
        fields = ["name", "description", "body", "created", "updated"]
        read_only_fields = ["created", "updated"]

    def validate_body(self, value):
        """Checked whole when saved (boatload.template_spec); stored with Docker's canonical keys."""
        try:
            return check_template_body(value)
        except BadInput as exc:
            raise serializers.ValidationError(error_tree(exc)) from None


class ClusterListSerializer(serializers.Serializer):
    results = serializers.ListField(child=serializers.DictField())
    failures = serializers.ListField(child=serializers.DictField())
    next = serializers.URLField(allow_null=True, help_text="The next page, or null on the last.")
    count = serializers.IntegerField(required=False, help_text="Every item of every host; only with `?count=true`.")
