"""Templates in Docker's create-container format (DockerMod), turned into BoatLoad container specs.

A template passes the same key tables as a raw body (common.docker_policy), narrowed to
the parts BoatLoad can honour, so any other key is refused by its path and a template never
silently loses what its author meant. It is checked whole when it is saved: the key types,
and the container spec it makes, so a bad template answers 400 to the staff member saving
it, never 500 to the user creating from it. Privileged and host Binds become the spec's
`privileged` and host `volumes`, which still need a staff caller at use (spec.needs_staff).
"""
import re

from common import docker_policy
from common.docker_policy import CREATE_BODY, HOST_CONFIG, RawPolicy
from common.errors import BadInput, _first_error
from common.spec import ContainerSpecSerializer
from connectors.definitions import split_image

BIND_MODES = {"ro", "rw"}


def template_bind(value, path, policy):
    """host path:container path[:ro|rw]; the satellite checks the host path against SATELLITE_HOST_PATHS."""
    docker_policy.string(value, path, policy)
    parts = value.split(":")
    if len(parts) not in (2, 3) or not parts[0].startswith("/") or not parts[1].startswith("/") \
            or (len(parts) == 3 and parts[2] not in BIND_MODES):
        raise BadInput(path, f"{value!r} is not /host/path:/container/path[:ro|rw]")
    return value


TEMPLATE_BODY = CREATE_BODY.only(
    "Image", "Cmd", "Entrypoint", "Env", "ExposedPorts", "Labels", "HostConfig",
    HostConfig=HOST_CONFIG.only("Memory", "NanoCpus", "RestartPolicy", "Privileged", "Binds", "PortBindings",
                                Privileged=docker_policy.boolean, Binds=docker_policy.list_of(template_bind)))

# Which body key a spec field comes from, to name it when the spec refuses a value.
SPEC_SOURCE = {
    "image_name": "body.Image", "image_tag": "body.Image", "command": "body.Cmd", "env": "body.Env",
    "ports": "body.ExposedPorts", "labels": "body.Labels", "memory": "body.HostConfig.Memory",
    "cpus": "body.HostConfig.NanoCpus", "restart": "body.HostConfig.RestartPolicy",
    "privileged": "body.HostConfig.Privileged", "volumes": "body.HostConfig.Binds",
}


def check_template_body(body):
    """The body with Docker's canonical keys, or BadInput naming the first key BoatLoad can not honour."""
    body = docker_policy.check_create_body(body, RawPolicy(), schema=TEMPLATE_BODY)
    if not body.get("Image"):
        raise BadInput("body.Image", "a template needs an Image")
    spec = ContainerSpecSerializer(data=_spec_fields(body))
    if not spec.is_valid():
        field, message = _first_error(spec.errors)
        source = SPEC_SOURCE.get(field.split(".")[0].split("[")[0], "body")
        raise BadInput(source, f"makes an invalid {field}: {message}")
    return body


def error_tree(exc):
    """A BadInput on body.HostConfig.Binds[0] as DRF's nested errors under `body`, so the API's one
    error shape names the same path."""
    field = exc.extra["field"]
    parts = [name or int(index) for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", field.removeprefix("body"))]
    error = [exc.message[len(field) + 2:]]
    for part in reversed(parts):
        error = {part: error}
    return error


def template_to_spec(body):
    """Spec fields from a stored template; request fields override them later."""
    try:
        body = check_template_body(body)
    except BadInput as exc:  # saved before templates were checked: the user did nothing wrong
        raise BadInput("template", f"this template is invalid ({exc.message}); staff must fix it") from None
    return _spec_fields(body)


def _spec_fields(body):
    image, tag = split_image(body["Image"])
    spec = {"image_name": image, "image_tag": tag}
    command = list(body.get("Entrypoint") or []) + list(body.get("Cmd") or [])
    if command:
        spec["command"] = command
    if body.get("Env"):
        spec["env"] = dict(item.split("=", 1) if "=" in item else (item, "") for item in body["Env"])
    if body.get("ExposedPorts"):
        spec["ports"] = [{"port": int(key.split("/")[0]), "protocol": (key.split("/") + ["tcp"])[1].upper(),
                          "scope": "host"} for key in body["ExposedPorts"]]
    if body.get("Labels"):
        spec["labels"] = dict(body["Labels"])
    host_config = body.get("HostConfig") or {}
    if host_config.get("Memory"):
        spec["memory"] = host_config["Memory"]
    if host_config.get("NanoCpus"):
        spec["cpus"] = host_config["NanoCpus"] / 1e9
    if (host_config.get("RestartPolicy") or {}).get("Name") in ("always", "unless-stopped"):
        spec["restart"] = "permanent"
    if host_config.get("Privileged"):
        spec["privileged"] = True
    if host_config.get("Binds"):
        spec["volumes"] = [_bind_to_volume(bind) for bind in host_config["Binds"]]
    return spec


def _bind_to_volume(bind):
    parts = bind.split(":")
    return {"type": "host", "source": parts[0], "target": parts[1], "read_only": parts[2:3] == ["ro"]}
