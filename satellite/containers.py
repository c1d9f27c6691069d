"""Container work on the local engine: create with script and data injection, lifecycle, listing.

The API's spec is translated into Docker's create options here; a raw Docker body is
only accepted on the staff-only raw path, and even there it passes common.docker_policy
(an allow-list; what reaches past the container only when this satellite's settings allow it).
"""
import base64
import contextlib
import logging
import posixpath
import time
import uuid

from django.conf import settings

import docker
from common import docker_policy
from common.errors import BadInput, BoatLoadError, Conflict, NotFound, RemoteError, TooLarge
from common.spec import STAFF_ONLY, check_script_size, needs_staff, spec_hash
from satellite import fetch, files, limits
from satellite.engine import client, docker_errors

log = logging.getLogger("satellite.containers")
LABEL_CONTAINER = "boatload.container"
LABEL_SERVICE = "boatload.service"
LABEL_OWNER = "boatload.owner"
LABEL_SPEC_HASH = "boatload.spec-hash"
LABEL_SLOT = "boatload.slot"
LABEL_VERSION = "boatload.version"  # the service version a connector slot runs (genisys/deploy.py)
LABEL_SCRIPT = "boatload.script"
LABEL_SATELLITE = "boatload.satellite"
SCRIPT_DIR = "/boatload"


def boatload_labels(spec, identity):
    """The labels of a new container: the user's, then the operator's (which win), then BoatLoad's own."""
    user_labels = spec.get("labels") or {}
    for key in user_labels:
        if key in settings.CONTAINER_LABELS or key.startswith(tuple(settings.RESERVED_LABEL_PREFIXES)):
            raise BadInput(f"labels.{key}", "this label is set by the operator of this host")
    labels = {**user_labels, **settings.CONTAINER_LABELS}
    labels.update({
        LABEL_CONTAINER: identity.get("container", ""),
        LABEL_SERVICE: identity.get("service", ""),
        LABEL_OWNER: identity.get("owner", ""),
        LABEL_SPEC_HASH: spec_hash(spec),
        LABEL_SATELLITE: satellite_id(),
    })
    if identity.get("slot") is not None:
        labels[LABEL_SLOT] = str(identity["slot"])
    if identity.get("version") is not None:
        labels[LABEL_VERSION] = str(identity["version"])
    return labels


def satellite_id():
    """This satellite's identity on its engine, made once and kept in its state folder.

    Every container it makes carries it (LABEL_SATELLITE), and it lists, finds, reaps and
    reports only containers that do: several satellites can share one engine.
    """
    global _satellite_id
    if _satellite_id is None:
        path = settings.STATE_DIR / "satellite-id"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(uuid.uuid4().hex + "\n")
        _satellite_id = path.read_text().strip()
    return _satellite_id


_satellite_id = None


def own(*labels):
    """Label filters for this satellite's containers carrying every `labels` key or key=value."""
    return [f"{LABEL_SATELLITE}={satellite_id()}", *labels]


def resolve(container_uuid):
    """Full Docker ids of the containers labelled as BoatLoad's container `container_uuid`.

    This is the only way the satellite's container endpoints find what to act on: never by
    name or id prefix, which the engine would resolve to any container on the host.
    """
    with docker_errors():
        rows = client().api.containers(all=True, quiet=True,
                                       filters={"label": own(f"{LABEL_CONTAINER}={container_uuid}")})
    return [row["Id"] for row in rows]


def resolve_one(container_uuid):
    """The full id of BoatLoad's container `container_uuid` on this host; 404 when it has none."""
    ids = resolve(container_uuid)
    if not ids:
        raise NotFound(f"Container {container_uuid} is not on host {settings.NAME}.")
    if len(ids) > 1:  # twins of one row: only a remove may act on them
        raise Conflict(f"Container {container_uuid} has {len(ids)} containers on host {settings.NAME}; "
                       "delete it to remove them all.", detail={"docker_ids": ids})
    return ids[0]


def remove_by_identity(container_uuid):
    """Remove every container labelled as `container_uuid` (idempotent)."""
    for container_id in resolve(container_uuid):
        container_action(container_id, "remove")


def check_privileges(spec, as_staff):
    """Refuse what only staff may ask for (common.spec's staff policy), and host paths outside the
    satellite's allowed folders, before anything touches Docker."""
    field = needs_staff(spec)
    if field and not as_staff:
        raise BadInput(field, f"only staff may {STAFF_ONLY[field]}")
    for volume in spec.get("volumes", []):
        if volume["type"] == "host" and not docker_policy.host_path_allowed(volume["source"], settings.HOST_PATHS):
            raise BadInput("volumes", f"{volume['source']} is not under a host folder this satellite allows "
                                      "(SATELLITE_HOST_PATHS)")


def port_bindings(scope):
    """Host scope ports listen on loopback only; wider ones also on SATELLITE_PUBLISH_ADDRESS."""
    if scope == "host":
        return [("127.0.0.1",)]
    if settings.PUBLISH_ADDRESS in ("0.0.0.0", "::", "127.0.0.1"):
        return [(settings.PUBLISH_ADDRESS,)]
    return [("127.0.0.1",), (settings.PUBLISH_ADDRESS,)]


def create_options(spec, labels, script_name=None):
    """Docker's create-container options for a validated spec."""
    api = client().api
    if script_name:
        command = [f"{SCRIPT_DIR}/{script_name}"] + spec.get("container_args", [])
    else:
        command = (spec.get("command") or []) + spec.get("container_args", []) or None
    ports = [(p["port"], p["protocol"].lower()) for p in spec.get("ports", [])]
    bindings = {f"{p['port']}/{p['protocol'].lower()}": port_bindings(p["scope"]) for p in spec.get("ports", [])}
    binds = {v["source"]: {"bind": v["target"], "mode": "ro" if v["read_only"] else "rw"}
             for v in spec.get("volumes", []) if v["type"] == "host"}
    host_config = api.create_host_config(
        port_bindings=bindings or None,
        binds=binds or None,
        privileged=spec.get("privileged", False),
        restart_policy={"Name": "always"} if spec.get("restart") == "permanent" else None,
        mem_limit=spec.get("memory") or None,
        nano_cpus=int(spec["cpus"] * 1e9) if spec.get("cpus") else None,
    )
    return {
        "image": f"{spec['image_name']}:{spec.get('image_tag') or 'latest'}",
        "command": command,
        "environment": spec.get("env") or None,
        "ports": [(port, proto) if proto == "udp" else port for port, proto in ports] or None,
        "volumes": [v["target"] for v in spec.get("volumes", [])] or None,
        "labels": labels,
        "host_config": host_config,
        "healthcheck": spec.get("healthcheck"),  # Docker's form (connectors.definitions.docker_healthcheck)
        "name": spec.get("name"),
        "detach": True,
    }


def load_script(spec):
    """The script's bytes (decoded or fetched), capped; None when the spec has no script."""
    limit = settings.SCRIPT_MAX_BYTES
    if spec.get("script"):
        data = base64.b64decode(spec["script"])
    elif spec.get("scripturl"):
        with fetch.fetch_to_file(spec["scripturl"], field="scripturl", max_bytes=limit) as handle:
            data = handle.read()
    else:
        return None
    check_script_size(len(data), limit)
    if not data.startswith(b"#!"):
        data = b"#!/bin/sh\n" + data
    return data


def remove_quietly(name_or_id):
    """Remove a container we made, whatever state it is in; a missing one is already gone."""
    with contextlib.suppress(docker.errors.NotFound):
        try:
            client().api.remove_container(name_or_id, force=True, v=True)
        except docker.errors.APIError as exc:
            log.warning("cleanup of %s failed: %s", name_or_id, exc)


class Deadline:
    """The time the API gives a create (`budget` seconds from now): past it, the satellite stops
    and removes what it made, so a create the API gave up on never leaves a container behind."""

    def __init__(self, budget):
        self.at = None if budget is None else time.monotonic() + budget

    def check(self, step):
        if self.at is not None and time.monotonic() > self.at:
            raise RemoteError(f"Host {settings.NAME} ran past the API's deadline at step {step}; "
                              "nothing was left behind.", remote=settings.NAME, status_code=504,
                              code="deadline_exceeded", detail={"step": step, "removed": True})


def container_create(*, spec, identity, as_staff=False, start=True, budget=None):
    """Create (and start) a container; on any failure remove what was made and name the step.

    The row uuid in `identity` is the idempotency key: a retried create meets its own
    deterministic name and adopts the container it finds there (adopt_existing).
    """
    deadline = Deadline(budget)
    check_privileges(spec, as_staff)
    fetches = spec.get("scripturl") or spec.get("dataurl")
    with limits.gate.acquire("fetch", identity.get("owner", "")) if fetches else contextlib.nullcontext():
        script = load_script(spec)
        deadline.check("script")
        data = None
        if spec.get("dataurl"):
            with fetch.fetch_to_file(spec["dataurl"], field="dataurl", max_bytes=settings.DATA_MAX_BYTES) as zipped:
                data = files.zip_to_tar(zipped, spec.get("datapath") or "/data")
    try:
        deadline.check("data")
        return _create_and_start(spec, identity, script, data, start, deadline)
    finally:
        if data:
            data.close()


def _create_and_start(spec, identity, script, data, start, deadline):
    labels = boatload_labels(spec, identity)
    if script:
        labels[LABEL_SCRIPT] = spec.get("scriptname") or "script"
    options = create_options(spec, labels, script_name=labels.get(LABEL_SCRIPT))
    try:
        with docker_errors(mutating=True, step="create"):
            created = client().api.create_container(**options)
    except Conflict:
        return adopt_existing(spec.get("name"), labels)
    except RemoteError as exc:
        if exc.outcome_unknown and identity.get("container"):
            # The engine may have made it: remove what carries this row's label, never a name.
            with contextlib.suppress(BoatLoadError):
                remove_by_identity(identity["container"])
        raise
    container_id = created["Id"]
    try:
        if script:
            deadline.check("script")
            with docker_errors(mutating=True, step="script"):
                client().api.put_archive(container_id, "/", files.script_tar(script, labels[LABEL_SCRIPT]))
        if data:
            deadline.check("data")
            with docker_errors(mutating=True, step="data"):
                client().api.put_archive(container_id, "/", data)
        if start:
            deadline.check("start")
            with docker_errors(mutating=True, step="start"):
                client().api.start(container_id)
    except BaseException as exc:
        remove_quietly(container_id)
        if isinstance(exc, BoatLoadError) and isinstance(exc.extra, dict):
            exc.extra.setdefault("removed", True)
        raise
    return summary(container_id, spec.get("name"), with_ports=bool(spec.get("ports")))


def adopt_existing(name, labels):
    """A name conflict means "already there": adopt it when it is the same container, else 409."""
    with docker_errors():
        existing = client().api.inspect_container(name)
    theirs = existing["Config"].get("Labels") or {}
    same_row = labels[LABEL_CONTAINER] and theirs.get(LABEL_CONTAINER) == labels[LABEL_CONTAINER]
    same_slot = labels[LABEL_SERVICE] and all(theirs.get(k) == labels.get(k)
                                                for k in (LABEL_SERVICE, LABEL_SLOT, LABEL_VERSION))
    if name and (same_row or same_slot):
        return describe(existing)
    raise Conflict(f"A different container named {name} already exists on this host.", detail={"field": "name"})


def summary(container_id, name, with_ports):
    """What create answers: the id and name, and published ports when there are any."""
    if with_ports:
        with docker_errors():
            return describe(client().api.inspect_container(container_id))
    return {"id": container_id, "name": name, "ports": []}


def describe(attrs):
    """The parts of an inspect result that the API records."""
    published = []
    for key, bindings in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
        port, protocol = key.split("/")
        for binding in bindings or []:
            published.append({"port": int(port), "protocol": protocol.upper(), "host_ip": binding["HostIp"],
                              "host_port": int(binding["HostPort"])})
    return {"id": attrs["Id"], "name": attrs["Name"].lstrip("/"), "ports": published,
            "state": attrs["State"], "labels": attrs["Config"].get("Labels") or {}}


def container_create_raw(*, body, identity, name=None):
    """Create and start a container from a Docker create body (staff only, checked by the API)."""
    body = docker_policy.check_create_body(body, docker_policy.RawPolicy.from_settings(settings))
    body["Labels"] = {**(body.get("Labels") or {}),
                      **boatload_labels({"raw": body}, identity)}
    with docker_errors(mutating=True, step="create"):
        created = client().api.create_container_from_config(body, name=name)
    try:
        with docker_errors(mutating=True, step="start"):
            client().api.start(created["Id"])
    except BaseException:
        remove_quietly(created["Id"])
        raise
    with docker_errors():
        return describe(client().api.inspect_container(created["Id"]))


def container_inspect(container_id):
    with docker_errors():
        return client().api.inspect_container(container_id)


def container_action(container_id, action, timeout=None):
    """start, stop, restart or remove; each is idempotent (a stopped container stops fine)."""
    api = client().api
    with docker_errors(mutating=True, step=action):
        if action == "start":
            api.start(container_id)
        elif action == "stop":
            api.stop(container_id, timeout=settings.STOP_TIMEOUT if timeout is None else timeout)
        elif action == "restart":
            api.restart(container_id, timeout=settings.STOP_TIMEOUT if timeout is None else timeout)
        elif action == "remove":
            try:
                api.remove_container(container_id, force=True, v=True)
            except docker.errors.NotFound:
                return None
            except docker.errors.APIError as exc:
                if exc.status_code == 409 and "in progress" in str(exc.explanation):
                    return None  # another call is removing it already
                raise
            return None
        else:
            raise NotFound(f"No action {action}.")
    return api.inspect_container(container_id)["State"]


def containers_list(labels, include_stopped=True, image_id=False):
    """BoatLoad containers matching every `key=value` label, from one sparse list call; with `image_id`, each
    with the id of the image it runs."""
    filters = {"label": own(LABEL_CONTAINER, *labels)}
    with docker_errors():
        rows = client().api.containers(all=include_stopped, filters=filters)
    return [{**({"image_id": row.get("ImageID")} if image_id else {}),
        "id": row["Id"], "name": row["Names"][0].lstrip("/") if row.get("Names") else "",
        "image": row["Image"], "state": row["State"], "status": row["Status"], "created": row["Created"],
        "labels": row["Labels"],
        "ports": [{"port": p["PrivatePort"], "protocol": p["Type"].upper(), "host_ip": p.get("IP", ""),
                   "host_port": p["PublicPort"]} for p in row.get("Ports", []) if p.get("PublicPort")],
    } for row in rows]


def container_script(container_id):
    """The injected script, read back from the container, with its name."""
    attrs = container_inspect(container_id)
    name = (attrs["Config"].get("Labels") or {}).get(LABEL_SCRIPT)
    if not name:
        raise NotFound("This container was created without a script.")
    chunks, size, _, upstream = files.stream_file(container_id, posixpath.join(SCRIPT_DIR, name))
    with contextlib.closing(upstream):  # closing early stops the engine's tar stream
        if size > settings.SCRIPT_MAX_BYTES:  # the container may have grown it since
            raise TooLarge(f"script: {size} bytes in the container, over the limit of {settings.SCRIPT_MAX_BYTES}; "
                           "read it with /file", detail={"field": "script", "size": size})
        data = b"".join(chunks)
    return name, data


def logs_stream(container_id, *, stdout=True, stderr=False, tail=None, since=None, follow=False):
    """A closeable stream of a container's output, never buffered whole."""
    with docker_errors():
        return client().api.logs(container_id, stdout=stdout, stderr=stderr, stream=True, follow=follow,
                                 tail=tail if tail is not None else "all", since=since)


def images():
    with docker_errors():
        rows = client().api.images()
    return [{"id": row["Id"], "tags": row.get("RepoTags") or [], "size": row.get("Size"),
             "created": row.get("Created")} for row in rows]


def engine_info():
    with docker_errors():
        info = client().info()
    keys = ("ID", "Name", "ServerVersion", "NCPU", "MemTotal", "Containers", "ContainersRunning",
            "ContainersStopped", "Images", "OperatingSystem", "KernelVersion", "Architecture", "Driver")
    swarm = info.get("Swarm") or {}
    return {**{key: info.get(key) for key in keys},
            "Swarm": {"LocalNodeState": swarm.get("LocalNodeState"), "ControlAvailable": swarm.get("ControlAvailable")}}
