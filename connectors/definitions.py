"""Service definitions of the connector protocol: the shape both ends check.

A definition is the Genisys connector's shape: `{"name", "image", "command", "environment",
"ports"}`; name and image are mandatory, the image carries its tag. BoatLoad adds optional keys:
`healthcheck` (Docker's terms, durations such as "2s"), the limits `memory` and `cpus` of each
container, and `version` (the service version BoatLoad's Genisys pushes; a connector labels
containers with it and leaves rolling them to the deployment, see genisys/deploy.py). The satellite keeps them
in satellite/connector/store.py; Genisys checks them with the same serializer when saved.
"""
import ast
import json
import re
import shlex
from pathlib import Path

from rest_framework import serializers

from common.env import parse_duration
from common.spec import ContainerSpecSerializer, name_field, name_pattern

SERVICE_NAME_LENGTH = 63
SERVICE_NAME = name_pattern(SERVICE_NAME_LENGTH)

PORT = re.compile(r"^([0-9]{1,5})(?:/(tcp|udp))?$", re.ASCII | re.IGNORECASE)  # "8080", "53/udp"


class PortField(serializers.CharField):
    """A published port as the connector writes it: ASCII digits (1-65535), optionally `/tcp` or `/udp`.

    `str.isdigit()` is not enough: it accepts "²" and "①", which `int()` refuses.
    """

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        match = PORT.match(value)
        if not match or not 1 <= int(match.group(1)) <= 65535:
            raise serializers.ValidationError('a port number 1-65535 in ASCII digits, optionally "/tcp" or "/udp"')
        return value


def command_split(command):
    """The argv of a shell-style command; an unbalanced quote or a trailing escape is bad input."""
    try:
        return shlex.split(command)
    except ValueError as error:
        raise serializers.ValidationError(f"not a shell-style command: {error}") from None


class DurationField(serializers.Field):
    """A duration as a string such as "2s", "500ms", "5m", or a number of seconds; kept as given."""

    def __init__(self, *, min_seconds=0.0, max_seconds=None, **kwargs):
        self.min_seconds, self.max_seconds = min_seconds, max_seconds
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int, float)):
            raise serializers.ValidationError('a duration such as "2s", "500ms" or "5m"')
        try:
            seconds = parse_duration(data)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None
        if seconds < self.min_seconds or self.max_seconds is not None and seconds > self.max_seconds:
            raise serializers.ValidationError(f"must lie between {self.min_seconds}s and {self.max_seconds}s")
        return data

    def to_representation(self, value):
        return value


HEALTHCHECK_KINDS = ("CMD", "CMD-SHELL", "NONE")


class HealthcheckSerializer(serializers.Serializer):
    """A container healthcheck in Docker's terms: `test` as Docker takes it (["CMD", …], ["CMD-SHELL", "…"],
    ["NONE"], or a string, which Docker runs with the shell), `interval`, `timeout`, `start_period`, `retries`."""

    test = serializers.JSONField()
    interval = DurationField(required=False, min_seconds=0.001, max_seconds=86400)
    timeout = DurationField(required=False, min_seconds=0.001, max_seconds=86400)
    start_period = DurationField(required=False, min_seconds=0, max_seconds=86400)
    retries = serializers.IntegerField(required=False, min_value=0, max_value=1000)

    def validate_test(self, value):
        if isinstance(value, str) and value.strip():
            return ["CMD-SHELL", value]
        if (not isinstance(value, list) or not value or not all(isinstance(item, str) for item in value)
                or value[0] not in HEALTHCHECK_KINDS):
            raise serializers.ValidationError('a non-empty string, or a list of strings starting with "CMD", '
                                              '"CMD-SHELL" or "NONE"')
        if value[0] != "NONE" and len(value) < 2:
            raise serializers.ValidationError(f"{value[0]} needs the command after it")
        return value

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["an object: test, interval, timeout, "
                                                                    "start_period, retries"]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({unknown[0]: ["not a healthcheck key"]})
        return super().to_internal_value(data)


def docker_healthcheck(healthcheck):
    """The Healthcheck of Docker's create call for a validated definition's `healthcheck` (durations in ns)."""
    if not healthcheck:
        return None
    docker = {"test": list(healthcheck["test"])}
    for key in ("interval", "timeout", "start_period"):
        if healthcheck.get(key) is not None:
            docker[key] = int(parse_duration(healthcheck[key]) * 1_000_000_000)
    if healthcheck.get("retries") is not None:
        docker["retries"] = healthcheck["retries"]
    return docker


class DefinitionSerializer(serializers.Serializer):
    name = name_field(SERVICE_NAME_LENGTH)
    image = serializers.CharField(max_length=400, help_text="image:tag")
    command = serializers.CharField(required=False, allow_null=True, allow_blank=True, default=None)
    environment = serializers.DictField(child=serializers.CharField(allow_blank=True), required=False,
                                        allow_null=True, default=None)
    ports = serializers.ListField(child=PortField(), required=False, allow_null=True, default=None)
    healthcheck = HealthcheckSerializer(required=False, allow_null=True, default=None)
    memory = serializers.JSONField(required=False, allow_null=True, default=None,
                                   help_text='Memory limit of each container: bytes, or a string such as "256m".')
    cpus = serializers.FloatField(required=False, allow_null=True, default=None, min_value=0.01, max_value=1024,
                                  help_text="CPU limit of each container.")
    version = serializers.IntegerField(required=False, allow_null=True, default=None, min_value=1,
                                       help_text="The service version (set by BoatLoad's Genisys).")

    def validate_command(self, value):
        if value:
            command_split(value)
        return value

    def validate(self, data):
        for key in ("healthcheck", "memory", "cpus", "version"):  # BoatLoad's own; a plain Genisys one has none
            if data.get(key) is None:
                data.pop(key, None)
        spec = ContainerSpecSerializer(data=spec_fields(data))
        if not spec.is_valid():
            field, errors = next(iter(spec.errors.items()))
            mapped = {"image_name": "image", "image_tag": "image", "env": "environment"}.get(field, field)
            raise serializers.ValidationError({mapped: errors})
        return data


def split_image(image):
    """("repo", "tag") of "repo:tag"; a registry port is not a tag."""
    repository, _, tag = image.rpartition(":")
    if not repository or "/" in tag:
        return image, "latest"
    return repository, tag


def spec_fields(definition):
    """A BoatLoad container spec (unvalidated) for one container of a service.

    A definition stored before ports and commands were validated still raises only
    ValidationError (400), never a ValueError."""
    image_name, image_tag = split_image(definition["image"])
    ports = [PORT.match(str(p)) for p in definition.get("ports") or []]
    fields = {"image_name": image_name, "image_tag": image_tag, "env": definition.get("environment") or {},
              "ports": [{"port": int(m.group(1)), "protocol": (m.group(2) or "tcp").upper(), "scope": "internal"}
                        for m in ports if m]}
    for key in ("memory", "cpus"):
        if definition.get(key) is not None:
            fields[key] = definition[key]
    if definition.get("command"):
        try:
            fields["command"] = command_split(definition["command"])
        except serializers.ValidationError as error:
            raise serializers.ValidationError({"command": error.detail}) from None
    return fields


class DefinitionsFileError(ValueError):
    """A definitions file that does not read, naming the file and the line."""

    def __init__(self, path, line, message):
        self.path, self.line = path, line
        super().__init__(f"{path}, line {line}: {message}" if line else f"{path}: {message}")


def read_definitions_lines(path):
    """[(line, definition)] of a definitions file: a Python file of literal-dict assignments (the
    originals' services.py and computes.py, `local = {"name": ..., ...}`; a dict without "name" is
    named by its variable, as the originals key them) or a JSON file (an object keyed by name, or a
    list; lines are then None). Anything else is a DefinitionsFileError naming the line."""
    text = Path(path).read_text()
    if not str(path).endswith(".py"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DefinitionsFileError(path, error.lineno, f"not JSON: {error.msg}") from None
        if isinstance(data, dict):
            data = [{"name": key, **value} if isinstance(value, dict) else value for key, value in data.items()]
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise DefinitionsFileError(path, None, "not an object of definitions keyed by name, nor a list of them")
        return [(None, item) for item in data]
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as error:
        raise DefinitionsFileError(path, error.lineno, f"not Python: {error.msg}") from None
    found = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise DefinitionsFileError(path, node.lineno, "only assignments `name = {...}` are read")
        try:
            value = ast.literal_eval(node.value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            raise DefinitionsFileError(path, node.lineno, f"{node.targets[0].id}: not a literal") from None
        if isinstance(value, dict):
            found.append((node.lineno, {"name": node.targets[0].id, **value}))
    return found


def read_definitions_file(path):
    """The definitions of a definitions file (read_definitions_lines without the lines)."""
    return [definition for _, definition in read_definitions_lines(path)]
