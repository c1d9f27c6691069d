"""The Docker backend of the connector protocol: N plain containers of a service on this host.

Containers get deterministic names `bl-<service>-<slot>` and labels (service, slot, spec
hash). A scale is level-triggered: list by label, then create the missing slots in
parallel, remove extras from the highest slot down, replace dead or never-started ones, and replace
containers of an older definition one at a time. One scale per service at a time.
"""
import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from common.spec import DOCKER_UP, ContainerSpecSerializer, spec_hash
from connectors.definitions import spec_fields
from satellite import containers
from satellite.engine import client, docker_errors

_locks = defaultdict(threading.Lock)
_locks_lock = threading.Lock()


def lock_for(name):
    with _locks_lock:
        return _locks[name]


def container_spec(definition, slot):
    data = ContainerSpecSerializer(data={**spec_fields(definition), "name": f"bl-{definition['name']}-{slot}"})
    data.is_valid(raise_exception=True)
    return dict(data.validated_data)


def service_containers(name):
    """{slot: listed container} of a service, and the ones with no usable slot."""
    by_slot, strays = {}, []
    for item in containers.containers_list([f"{containers.LABEL_SERVICE}={name}"]):
        slot = item["labels"].get(containers.LABEL_SLOT, "")
        if slot.isdigit() and int(slot) not in by_slot:
            by_slot[int(slot)] = item
        else:
            strays.append(item)
    return by_slot, strays


def _create(definition, slot):
    return containers.container_create(spec=container_spec(definition, slot),
                                       identity={"service": definition["name"], "slot": slot, "owner": "genisys"})


def scale(definition, number):
    """Make exactly `number` containers of the service run here; return the running count."""
    name = definition["name"]
    with lock_for(name):
        wanted_hash = spec_hash(container_spec(definition, 0))  # the name is not part of the hash
        by_slot, strays = service_containers(name)
        for item in strays + [by_slot.pop(slot) for slot in sorted(by_slot, reverse=True) if slot >= number]:
            containers.container_action(item["id"], "remove")
        for slot, item in list(by_slot.items()):
            # Dead, or created and never started (a scale killed between create and start: its
            # script may be missing): replaced below. A scale in flight holds the lock, so a
            # `created` slot seen here is never one being made right now.
            if item["state"] not in DOCKER_UP:
                containers.container_action(item["id"], "remove")
                del by_slot[slot]
        missing = [slot for slot in range(number) if slot not in by_slot]
        if missing:
            with ThreadPoolExecutor(max_workers=min(len(missing), settings.SCALE_PARALLELISM)) as pool:
                list(pool.map(lambda slot: _create(definition, slot), missing))
        for slot, item in sorted(by_slot.items()):
            if item["labels"].get(containers.LABEL_SPEC_HASH) != wanted_hash:
                containers.container_action(item["id"], "remove")  # one at a time: the rest keep serving
                _create(definition, slot)
    return running(name)


def running(name):
    """How many containers of the service run on this host."""
    with docker_errors():
        rows = client().api.containers(filters={"label": containers.own(f"{containers.LABEL_SERVICE}={name}"),
                                                "status": "running"})
    return len(rows)
