"""The Swarm backend of the connector protocol: one Docker Swarm service with N replicas.

With SATELLITE_CONNECTOR=swarm on a Swarm manager, a scale creates or updates the Swarm
service `bl-<service>` and waits until N tasks run; one compute then spans a whole cluster.
"""
import time

from django.conf import settings

import docker
from common.spec import spec_hash
from connectors.definitions import spec_fields
from satellite import containers
from satellite.engine import client, docker_errors


def _swarm_name(name):
    return f"bl-{name}"


def _labels(definition, fields):
    return {**settings.CONTAINER_LABELS, containers.LABEL_SERVICE: definition["name"],
            containers.LABEL_SPEC_HASH: spec_hash(fields)}


def scale(definition, number):
    """Create or update the Swarm service with `number` replicas; wait until they run."""
    fields = spec_fields(definition)
    labels = _labels(definition, fields)
    options = {
        "image": f"{fields['image_name']}:{fields['image_tag']}",
        "command": fields.get("command") or None,
        "env": [f"{key}={value}" for key, value in fields["env"].items()],
        "labels": labels, "container_labels": labels,
        "mode": docker.types.ServiceMode("replicated", replicas=number),
    }
    if fields["ports"]:
        options["endpoint_spec"] = docker.types.EndpointSpec(ports={p["port"]: p["port"] for p in fields["ports"]})
    with docker_errors(mutating=True, step="swarm"):
        try:
            service = client().services.get(_swarm_name(definition["name"]))
        except docker.errors.NotFound:
            client().services.create(name=_swarm_name(definition["name"]), **options)
        else:
            if service.attrs["Spec"].get("Labels", {}).get(containers.LABEL_SPEC_HASH) != labels[
                    containers.LABEL_SPEC_HASH]:
                service.update(**options)
            else:
                service.scale(number)
    deadline = time.monotonic() + settings.SCALE_TIMEOUT
    while running(definition["name"]) != number and time.monotonic() < deadline:
        time.sleep(0.5)
    return running(definition["name"])


def running(name):
    """Tasks of the Swarm service that run now."""
    with docker_errors():
        try:
            service = client().services.get(_swarm_name(name))
        except docker.errors.NotFound:
            return 0
        tasks = service.tasks(filters={"desired-state": "running"})
    return sum(1 for task in tasks if task.get("Status", {}).get("State") == "running")
