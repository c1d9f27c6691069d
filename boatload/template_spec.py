"""Templates in Docker's create-container format (DockerMod), turned into BoatLoad container specs.

Only the parts BoatLoad can honour are accepted; any other key is refused by name, so a
template never silently loses what its author meant.
"""
from boatload.errors import BadInput
from connectors.definitions import split_image

TOP_LEVEL = {"Image", "Cmd", "Entrypoint", "Env", "ExposedPorts", "Labels", "HostConfig"}
HOST_CONFIG = {"Memory", "NanoCpus", "RestartPolicy", "Privileged", "Binds", "PortBindings"}


def check_template_body(body):
    """Raise BadInput naming the first key BoatLoad can not honour."""
    if not isinstance(body, dict) or not isinstance(body.get("Image"), str) or not body["Image"]:
        raise BadInput("body.Image", "a template needs an Image")
    for key in body:
        if key not in TOP_LEVEL:
            raise BadInput(f"body.{key}", f"not supported in templates (supported: {', '.join(sorted(TOP_LEVEL))})")
    for key in body.get("HostConfig") or {}:
        if key not in HOST_CONFIG:
            raise BadInput(f"body.HostConfig.{key}", "not supported in templates")
    return body


def template_to_spec(body):
    """Spec fields from a Docker create body; request fields override them later."""
    check_template_body(body)
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
    parts = str(bind).split(":")
    if len(parts) < 2:
        raise BadInput("body.HostConfig.Binds", f"{bind!r} is not source:target[:ro]")
    return {"type": "host", "source": parts[0], "target": parts[1], "read_only": parts[2:3] == ["ro"]}
