"""The Docker backend of the connector protocol: N plain containers of a service on this host.

Containers get deterministic names `bl-<service>-<slot>` and labels (service, slot, spec
hash, and the service version when the definition carries one). A scale is level-triggered:
list by label, then create the missing slots in parallel, remove extras from the highest slot
down, replace dead or never-started ones, and replace containers of an older definition one at
a time. One scale per service at a time.

A definition with a `version` comes from BoatLoad's Genisys, which rolls versions out itself,
health-gated (genisys/deploy.py), through the slot operations here: `slots` (what runs in each
slot, with its version and Docker's health), `slot_start` (a container of one version in one
slot, idempotent: a slot never gets two of one version) and `slot_clear` (remove a slot's
containers of other versions). Its scales then leave running containers of other versions
alone, and a slot may briefly hold two containers (start-first).

Every container a scale or a slot operation removes has its last output kept first (slot_logs).
"""
import re
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from common.errors import Conflict
from common.spec import DOCKER_UP, ContainerSpecSerializer, spec_hash
from connectors.definitions import docker_healthcheck, spec_fields
from satellite import containers
from satellite.connector import slot_logs
from satellite.engine import client, docker_errors

_locks = defaultdict(threading.Lock)
_locks_lock = threading.Lock()
HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def lock_for(name):
    with _locks_lock:
        return _locks[name]


def container_spec(definition, slot, name=None):
    data = ContainerSpecSerializer(data={**spec_fields(definition), "name": name or f"bl-{definition['name']}-{slot}"})
    data.is_valid(raise_exception=True)
    spec = dict(data.validated_data)
    if definition.get("healthcheck"):
        spec["healthcheck"] = docker_healthcheck(definition["healthcheck"])
    return spec


def service_containers(name):
    """{slot: [listed containers]} of a service, and the ones with no usable slot."""
    by_slot, strays = defaultdict(list), []
    for item in containers.containers_list([f"{containers.LABEL_SERVICE}={name}"], image_id=True):
        slot = item["labels"].get(containers.LABEL_SLOT, "")
        if slot.isdigit():
            by_slot[int(slot)].append(item)
        else:
            strays.append(item)
    return by_slot, strays


def _create(definition, slot, name=None):
    return containers.container_create(spec=container_spec(definition, slot, name),
                                       identity={"service": definition["name"], "slot": slot, "owner": "genisys",
                                                 "version": definition.get("version")})


def scale(definition, number):
    """Make exactly `number` containers of the service run here; return the running count."""
    name = definition["name"]
    versioned = definition.get("version") is not None
    with lock_for(name):
        wanted_hash = spec_hash(container_spec(definition, 0))  # the name is not part of the hash
        by_slot, strays = service_containers(name)
        if not versioned:  # one container a slot; more are strays
            for items in by_slot.values():
                strays += items[1:]
                del items[1:]
        for item in strays + [item for slot in sorted(by_slot, reverse=True) if slot >= number
                              for item in by_slot.pop(slot)]:
            slot_logs.remove(item, name, slot_logs.REMOVED)
        for slot, items in list(by_slot.items()):
            # Dead, or created and never started (a scale killed between create and start: its
            # script may be missing): replaced below. A scale in flight holds the lock, so a
            # `created` slot seen here is never one being made right now.
            for item in [item for item in items if item["state"] not in DOCKER_UP]:
                slot_logs.remove(item, name, slot_logs.DEAD)
                items.remove(item)
            if not items:
                del by_slot[slot]
        missing = [slot for slot in range(number) if slot not in by_slot]
        if missing:
            with ThreadPoolExecutor(max_workers=min(len(missing), settings.SCALE_PARALLELISM)) as pool:
                list(pool.map(lambda slot: _create(definition, slot), missing))
        if versioned:
            return running(name)  # other versions are rolled by the deployment (slot_start / slot_clear)
        for slot, [item] in sorted(by_slot.items()):
            if item["labels"].get(containers.LABEL_SPEC_HASH) != wanted_hash:
                slot_logs.remove(item, name, slot_logs.REPLACED)  # one at a time: the rest keep serving
                _create(definition, slot)
    return running(name)


def health_of(status):
    """Docker's health in a listed container's status ("Up 3 seconds (healthy)"); None without a healthcheck."""
    match = HEALTH.search(status or "")
    if not match:
        return None
    return "starting" if match.group(1) == "health: starting" else match.group(1)


def slots(name):
    """Every container of the service: slot, version, Docker's state and health, creation time, image id."""
    by_slot, _ = service_containers(name)
    return [{"slot": slot, "id": item["id"], "name": item["name"], "state": item["state"],
             "health": health_of(item["status"]), "created": item["created"],
             "version": _version(item), "image_id": item["image_id"]}
            for slot in sorted(by_slot) for item in by_slot[slot]]


def _version(item):
    version = item["labels"].get(containers.LABEL_VERSION, "")
    return int(version) if version.isdigit() else None


def free_name(name, slot, items):
    """`bl-<service>-<slot>`, or `bl-<service>-<slot>-<n>` while a container of another version holds that."""
    taken = {item["name"] for item in items}
    candidates = [f"bl-{name}-{slot}"] + [f"bl-{name}-{slot}-{n}" for n in range(1, len(taken) + 2)]
    return next(candidate for candidate in candidates if candidate not in taken)


def slot_start(definition, slot):
    """A container of the definition's version in `slot`: the one there already (in whatever state: the
    deployment judges it), else a new one. Under the service's lock, so a retried or repeated call never
    makes a second. One of that version created and never started (a satellite killed between create and
    start left it; a create in flight holds the lock, so it is never one being made now) is replaced."""
    name, version = definition["name"], definition.get("version")
    if version is None:
        raise Conflict("A slot is started only for a versioned definition.", detail={"field": "version"})
    with lock_for(name):
        by_slot, _ = service_containers(name)
        items = by_slot.get(slot, [])
        for item in list(items):
            if _version(item) == version and item["state"] == "created":
                slot_logs.remove(item, name, slot_logs.DEAD)
                items.remove(item)
            elif _version(item) == version:
                return {"slot": slot, "id": item["id"], "name": item["name"], "created": False}
        made = _create(definition, slot, free_name(name, slot, items))
    return {"slot": slot, "id": made["id"], "name": made["name"], "created": True}


def slot_clear(name, slot, keep=None):
    """Remove the containers of `slot` whose version is not `keep` (None: all of them); how many went."""
    with lock_for(name):
        by_slot, _ = service_containers(name)
        gone = [item for item in by_slot.get(slot, []) if keep is None or _version(item) != keep]
        for item in gone:
            slot_logs.remove(item, name, slot_logs.REMOVED if keep is None else slot_logs.REPLACED)
    return len(gone)


def running(name):
    """How many containers of the service run on this host."""
    with docker_errors():
        rows = client().api.containers(filters={"label": containers.own(f"{containers.LABEL_SERVICE}={name}"),
                                                "status": "running"})
    return len(rows)
