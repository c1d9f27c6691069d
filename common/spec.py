"""The container spec: the one shape in which the API and satellites describe a container.

It merges the BoatLoad create fields (script, data, args) with the Murano spec (ports
with protocol and scope, volumes, privileged) and DockerMod's resources. The API
validates user input with it; the satellite validates again before touching Docker.
"""
import base64
import binascii
import hashlib
import json
import posixpath
import re
import shlex

from rest_framework import serializers

from common.errors import BadInput, TooLarge

SCOPES = ["host", "internal", "cloud", "public"]  # narrowest first


def name_pattern(max_length):
    """A name of letters, digits, '_', '.' and '-' (a letter or digit first), up to `max_length`."""
    return re.compile(rf"^[a-zA-Z0-9][a-zA-Z0-9_.-]{{0,{max_length - 1}}}$")


def name_field(max_length, what="", **options):
    """A serializer field taking a name_pattern(max_length)."""
    return serializers.RegexField(name_pattern(max_length), max_length=max_length,
                                  error_messages={"invalid": f"{what}letters, digits, '_', '.' and '-' only"},
                                  **options)


# Names BoatLoad gives: bl-<service>-<slot> for service slots, boatload-<uuid> for containers.
RESERVED_NAME_PREFIXES = ("bl-", "boatload-")
ASCII_DIGITS = re.compile(r"[0-9]+")  # str.isdigit() also takes "²" and "①", which int() refuses
SIZE_RE = re.compile(r"^([0-9]+)\s*([kmg]?)b?$", re.IGNORECASE)
MAX_MEMORY = 2**50  # 1 PiB: far above any host, far below Docker's int64
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
RESERVED_LABEL_PREFIX = "boatload."


def parse_size(value):
    """Bytes in `value`: an integer, or a string such as 256m or 1g."""
    if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{value!r} is not a size such as 268435456, 256m or 1g")
    if isinstance(value, (int, float)):
        return int(value)
    match = SIZE_RE.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a size such as 268435456, 256m or 1g")
    return int(match.group(1)) * SIZE_UNITS[match.group(2).lower()]


def _confined(path):
    """`path` as an absolute, normalised path inside a container, or None when it holds `..` or NUL:
    the one rule by which every path a caller gives is kept inside the container."""
    path = "/" + path.lstrip("/")
    if ".." in path.split("/") or "\x00" in path:
        return None
    return posixpath.normpath(path)


def container_path(value):
    """A spec's absolute, normalised path inside a container; `..` is refused rather than resolved."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise serializers.ValidationError("must be an absolute path")
    confined = _confined(value)
    if confined is None:
        raise serializers.ValidationError("must not contain '..' or NUL")
    return confined


def confined_path(path, field="path"):
    """A path of a request (a file to read) inside the container; 400 naming `field` for `..` or NUL."""
    confined = _confined(path)
    if confined is None:
        raise BadInput(field, "must not contain '..'")
    return confined


def check_script_size(size, limit):
    """A script is at most `limit` bytes (the API's and each satellite's SCRIPT_MAX_BYTES): 413 naming it."""
    if size > limit:
        raise TooLarge(f"script: {size} bytes is over the limit of {limit}", detail={"field": "script"})


class PortSerializer(serializers.Serializer):
    port = serializers.IntegerField(min_value=1, max_value=65535)
    protocol = serializers.ChoiceField(choices=["TCP", "UDP"], default="TCP")
    scope = serializers.ChoiceField(choices=SCOPES, default="host")

    def to_internal_value(self, data):
        plain_number = isinstance(data, int) and not isinstance(data, bool)
        if plain_number or isinstance(data, str) and ASCII_DIGITS.fullmatch(data):
            data = {"port": int(data)}  # Genisys form: "8080"
        elif not isinstance(data, dict):
            raise serializers.ValidationError("a port number, or an object with port, protocol and scope")
        if isinstance(data, dict) and isinstance(data.get("protocol"), str):
            data = {**data, "protocol": data["protocol"].upper()}
        return super().to_internal_value(data)


class VolumeSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["temp", "host"], default="temp")
    target = serializers.CharField(max_length=1024, validators=[container_path])
    source = serializers.CharField(max_length=1024, required=False, help_text="Host path, for type host.")
    read_only = serializers.BooleanField(default=False)

    def validate(self, data):
        data["target"] = container_path(data["target"])
        if data["type"] == "host":
            if not data.get("source", "").startswith("/"):
                raise serializers.ValidationError({"source": "a host volume needs an absolute source path"})
            data["source"] = posixpath.normpath(data["source"])
        elif data.get("source"):
            raise serializers.ValidationError({"source": "only host volumes have a source"})
        return data


class ContainerSpecSerializer(serializers.Serializer):
    """Validated and normalised fields of a container to create."""

    image_name = serializers.CharField(max_length=255)
    image_tag = serializers.CharField(max_length=128, default="latest")
    name = name_field(128, required=False)
    command = serializers.JSONField(required=False, help_text="A list of strings, or one string split like a shell.")
    script = serializers.CharField(required=False, allow_blank=True, help_text="Base64 of the script to run.")
    scripturl = serializers.URLField(required=False, max_length=2000)
    scriptname = name_field(100, "a file name: ", required=False, default="script")
    container_args = serializers.JSONField(required=False, help_text="Arguments after the script or command.")
    dataurl = serializers.URLField(required=False, max_length=2000, help_text="A zip unpacked under datapath.")
    datapath = serializers.CharField(max_length=1024, required=False, default="/data")
    env = serializers.DictField(child=serializers.CharField(allow_blank=True, max_length=32768), required=False,
                                default=dict)
    ports = PortSerializer(many=True, required=False, default=list)
    volumes = VolumeSerializer(many=True, required=False, default=list)
    privileged = serializers.BooleanField(default=False)
    restart = serializers.ChoiceField(choices=["ephemeral", "permanent"], default="ephemeral")
    memory = serializers.JSONField(required=False, help_text="Memory limit: bytes, or a string such as 256m.")
    cpus = serializers.FloatField(required=False, min_value=0.01, max_value=1024)
    labels = serializers.DictField(child=serializers.CharField(allow_blank=True, max_length=1024), required=False,
                                   default=dict)

    def validate_image_name(self, value):
        if not re.match(r"^[a-z0-9][a-z0-9._/:-]*$", value) or ".." in value:
            raise serializers.ValidationError("not a valid image name")
        return value

    def validate_command(self, value):
        return _argv(value)

    def validate_container_args(self, value):
        return _argv(value)

    def validate_script(self, value):
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("must be base64") from None
        return value

    def validate_datapath(self, value):
        return container_path(value)

    def validate_env(self, value):
        for key in value:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_.-]*$", key):
                raise serializers.ValidationError(f"{key!r} is not a variable name")
        return value

    def validate_memory(self, value):
        if value in (None, ""):
            return None
        try:
            size = parse_size(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        if size < 6 * 1024 * 1024:
            raise serializers.ValidationError("must be at least 6m (Docker's minimum)")
        if size > MAX_MEMORY:
            raise serializers.ValidationError(f"must be at most {MAX_MEMORY} bytes (1 PiB)")
        return size

    def validate_labels(self, value):
        for key in value:
            if key.startswith(RESERVED_LABEL_PREFIX):
                raise serializers.ValidationError(f"{key!r}: labels starting with boatload. are reserved")
        return value

    def validate(self, data):
        if data.get("script") and data.get("scripturl"):
            raise serializers.ValidationError({"script": "give script or scripturl, not both"})
        if data.get("command") and (data.get("script") or data.get("scripturl")):
            raise serializers.ValidationError({"command": "a script is the command; give one or the other"})
        seen = set()
        for port in data.get("ports", []):
            key = (port["port"], port["protocol"])
            if key in seen:
                raise serializers.ValidationError({"ports": f"port {key[0]}/{key[1]} is given twice"})
            seen.add(key)
        return data


class ActionQuerySerializer(serializers.Serializer):
    """?timeout= of stop and restart: seconds the container gets before it is killed."""

    timeout = serializers.IntegerField(required=False, min_value=0, max_value=600)


class LogsQuerySerializer(serializers.Serializer):
    tail = serializers.IntegerField(required=False, min_value=0, max_value=10**9, help_text="Last lines only.")
    since = serializers.IntegerField(required=False, min_value=0, max_value=253402300799,  # the year 9999
                                     help_text="Unix time; 0 means from the start.")
    follow = serializers.BooleanField(default=False)
    stderr = serializers.BooleanField(default=False)
    stdout = serializers.BooleanField(default=True)

    def validate_since(self, value):
        return value or None  # Docker takes no 0; from the start is what it means


def page_cursor(path):
    """The opaque cursor that continues after `path`: base64url, so any file name fits a header and a URL."""
    return base64.urlsafe_b64encode(path.encode()).decode()


class PageQuerySerializer(serializers.Serializer):
    """?limit= and ?cursor= of a container's changes and changed files."""

    limit = serializers.IntegerField(required=False, min_value=1, max_value=10_000, default=1000)
    cursor = serializers.CharField(required=False, max_length=4096, help_text="X-Next-Cursor of the last page.")

    def validate_cursor(self, value):
        try:
            return base64.b64decode(value.encode(), altchars=b"-_", validate=True).decode()
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("not a cursor this API gave") from None


def _argv(value):
    if value in (None, "", []):
        return []
    if isinstance(value, str):
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise serializers.ValidationError(f"can not split: {exc}") from None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise serializers.ValidationError("must be a string or a list of strings")


def check_user_name(value):
    """A name a user gives: never one of the names BoatLoad gives its own containers."""
    if value.lower().startswith(RESERVED_NAME_PREFIXES):
        raise serializers.ValidationError(f"names starting with {' or '.join(RESERVED_NAME_PREFIXES)} "
                                          "are BoatLoad's own")
    return value


# What only staff may ask for, by the spec field that asks: the one staff policy of the API and satellites.
STAFF_ONLY = {"privileged": "run privileged containers", "volumes": "mount host paths"}


def needs_staff(spec):
    """The field of a spec that needs a staff caller (a key of STAFF_ONLY), or None."""
    if spec.get("privileged"):
        return "privileged"
    if any(volume["type"] == "host" for volume in spec.get("volumes", [])):
        return "volumes"
    return None


# Docker's status of a container → the row state it means: the one rule of every reader (the
# reconciler, actions, the connector backends). running, restarting and paused containers are up;
# exited and dead ones are down with their code; created (never started) and removing mean a create
# or delete is under way, which says nothing yet.
DOCKER_UP = ("running", "restarting", "paused")
DOCKER_DOWN = ("exited", "dead")


def observed_state(status, exit_code=None):
    """("running" | "exited" | None, exit code or None) for Docker's `status` of a container."""
    if status in DOCKER_UP:
        return "running", None
    if status in DOCKER_DOWN:
        return "exited", exit_code
    return None, None


class ListQuerySerializer(serializers.Serializer):
    """?label=key=value (repeated) and ?all= of a satellite's container list."""

    label = serializers.ListField(child=serializers.CharField(max_length=1024), required=False, default=list)
    all = serializers.BooleanField(default=True, help_text="Stopped containers too.")

    def to_internal_value(self, data):
        if hasattr(data, "getlist"):
            data = {**{k: data.get(k) for k in data}, "label": data.getlist("label")}
        return super().to_internal_value(data)


class ArchiveQuerySerializer(serializers.Serializer):
    compression = serializers.CharField(required=False, allow_blank=True, default="",
                                        help_text="gzip for .tar.gz; none for .tar.")

    def validate_compression(self, value):
        if value not in ("", "gzip"):
            raise serializers.ValidationError("only gzip is offered")
        return value


def spec_hash(spec):
    """A stable hash of what makes a container what it is (not who owns it)."""
    relevant = {k: v for k, v in spec.items() if k not in ("name", "labels", "as_staff")}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]
