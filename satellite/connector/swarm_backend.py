"""The Swarm backend of the connector protocol: one Docker Swarm service with N replicas.

With SATELLITE_CONNECTOR=swarm on a Swarm manager, a scale creates or updates the Swarm
service `bl-<service>` and waits until N tasks run; one compute then spans a whole cluster.

A deployment (genisys/deploy.py) is Swarm's own rolling update: `rollout` gives the service the
definition's version with the update policy mapped onto Swarm's UpdateConfig and RollbackConfig
(parallelism; delay and monitor = min_healthy_time; failure_action; order) and the definition's
healthcheck (Swarm starts the next task of a batch only once a task is healthy), and reads its
progress back from the service's UpdateStatus and tasks, in the shape the plain Docker backend's
slots give deploy.py: desired, updated, healthy, failed, versions. Every call is idempotent: a
service already at the version is only observed, so a resumed reconciler never restarts an update.
"""
import re
import time
from datetime import UTC, datetime

from django.conf import settings

import docker
from common.env import parse_duration
from common.spec import spec_hash
from connectors.definitions import docker_healthcheck, spec_fields
from satellite import containers
from satellite.engine import client, docker_errors

NANOSECONDS = 1_000_000_000
LABEL_RESUME = "boatload.resume"  # on the Swarm service: the last resume of a paused update it was given
STOPPED = ("paused", "rollback_paused")  # Swarm stopped the update on a failure


def _swarm_name(name):
    return f"bl-{name}"


def _labels(definition, fields):
    labels = {**settings.CONTAINER_LABELS, containers.LABEL_SERVICE: definition["name"],
              containers.LABEL_SPEC_HASH: spec_hash({**fields, "healthcheck": definition.get("healthcheck")})}
    if definition.get("version") is not None:
        labels[containers.LABEL_VERSION] = str(definition["version"])
    return labels


def update_configs(policy):
    """(UpdateConfig, RollbackConfig) of a BoatLoad update policy. A new task must stay healthy for
    min_healthy_time (monitor: a failure then counts) before the next batch starts (delay); any failed
    task (max_failure_ratio 0) calls the failure action: rollback when the policy rolls back on its own
    (failure_action rollback and auto_revert), else pause. The rollback goes the same careful way and
    pauses if it fails too."""
    wait = int(parse_duration(policy.get("min_healthy_time") or "0s") * NANOSECONDS)
    action = "rollback" if policy.get("failure_action", "rollback") == "rollback" and policy.get(
        "auto_revert", True) else "pause"
    common = {"parallelism": policy.get("parallelism") or 1, "delay": wait, "monitor": wait,
              "max_failure_ratio": 0, "order": policy.get("order") or "stop-first"}
    return (docker.types.UpdateConfig(failure_action=action, **common),
            docker.types.RollbackConfig(failure_action="pause", **common))


def _spec(definition, number, policy=None):
    """The whole service spec (keyword arguments of create_service / update_service) of a definition."""
    fields = spec_fields(definition)
    labels = _labels(definition, fields)
    healthcheck = docker_healthcheck(definition.get("healthcheck"))
    container = docker.types.ContainerSpec(
        image=f"{fields['image_name']}:{fields['image_tag']}", command=fields.get("command") or None,
        env=[f"{key}={value}" for key, value in fields["env"].items()], labels=labels,
        # An explicit NONE: a version without a healthcheck must not keep the image's or the last one's.
        healthcheck=docker.types.Healthcheck(**healthcheck) if healthcheck else docker.types.Healthcheck(
            test=["NONE"]))
    spec = {"task_template": docker.types.TaskTemplate(container_spec=container),
            "name": _swarm_name(definition["name"]), "labels": labels,
            "mode": docker.types.ServiceMode("replicated", replicas=number)}
    if fields["ports"]:
        spec["endpoint_spec"] = docker.types.EndpointSpec(ports={p["port"]: p["port"] for p in fields["ports"]})
    if policy is not None:
        spec["update_config"], spec["rollback_config"] = update_configs(policy)
    return spec


def _service(name):
    try:
        return client().services.get(_swarm_name(name))
    except docker.errors.NotFound:
        return None


def _version_of(spec):
    version = ((spec or {}).get("Labels") or {}).get(containers.LABEL_VERSION, "")
    return int(version) if version.isdigit() else None


def scale(definition, number):
    """Create or update the Swarm service with `number` replicas; wait until they run. A versioned
    service that exists is only scaled: its versions are rolled by `rollout` (the deployment)."""
    spec = _spec(definition, number)
    with docker_errors(mutating=True, step="swarm"):
        service = _service(definition["name"])
        if service is None:
            client().api.create_service(**spec)
        elif definition.get("version") is not None or service.attrs["Spec"].get("Labels", {}).get(
                containers.LABEL_SPEC_HASH) == spec["labels"][containers.LABEL_SPEC_HASH]:
            if service.attrs["Spec"]["Mode"].get("Replicated", {}).get("Replicas") != number:
                service.scale(number)
        else:
            client().api.update_service(service.id, service.version, fetch_current_spec=False, **spec)
    deadline = time.monotonic() + settings.SCALE_TIMEOUT
    while running(definition["name"]) != number and time.monotonic() < deadline:
        time.sleep(0.5)
    return running(definition["name"])


def rollout(definition, number, policy, observe=False, resume=None):
    """Give the service the definition's version (unless it has it, or Swarm rolled back from it) and its
    progress. `observe`: change nothing (a scale's deployment: the reconciler's scale makes the tasks).

    `resume` (a token naming one resume of the deployment): an update of the version that Swarm paused is
    resumed the way Swarm resumes one, by a new update of the service spec (the same spec, the token in the
    label `boatload.resume`); once per token, so a repeated step never restarts it."""
    target = definition["version"]
    with docker_errors(mutating=not observe, step="swarm"):
        service = _service(definition["name"])
        if not observe:
            if service is None:
                client().api.create_service(**_spec(definition, number, policy))
            else:
                spec = service.attrs["Spec"]
                state = (service.attrs.get("UpdateStatus") or {}).get("State", "")
                if _version_of(spec) != target and not _rolled_back_from(service, service.tasks, target):
                    client().api.update_service(service.id, service.version, fetch_current_spec=False,
                                                **_spec(definition, number, policy))
                elif resume and state == "paused" and (spec.get("Labels") or {}).get(LABEL_RESUME) != resume:
                    again = _spec(definition, number, policy)
                    again["labels"] = {**again["labels"], LABEL_RESUME: resume}
                    client().api.update_service(service.id, service.version, fetch_current_spec=False, **again)
                elif spec["Mode"].get("Replicated", {}).get("Replicas") != number:
                    service.scale(number)
            service = _service(definition["name"])
        return progress(service, target, number, policy)


def _rolled_back_from(service, tasks, target):
    """Whether Swarm rolled the service back from `target`: its spec is another version, its UpdateStatus a
    rollback, and tasks of `target` were made (BoatLoad only ever moves a service towards its target). Swarm
    drops PreviousSpec when it rolls back, so the tasks (kept in the task history) tell what it came from.
    `tasks`: the service's tasks, or a callable that lists them (only called when the rest holds)."""
    state = (service.attrs.get("UpdateStatus") or {}).get("State", "")
    if _version_of(service.attrs["Spec"]) == target or not state.startswith("rollback"):
        return False
    return any(_task_version(task) == target for task in (tasks() if callable(tasks) else tasks))


def _since(stamp):
    """Seconds since a Docker timestamp (RFC 3339 with nanoseconds)."""
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?", stamp or "")
    if not match:
        return 0.0
    when = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return time.time() - when.timestamp() - float(match.group(2) or 0)


def _nodes():
    """(ids of the ready nodes, ids of those Swarm may place a task on now: availability `active`, not drained
    or paused), from one listing of the nodes."""
    ready = [node for node in client().nodes.list() if node.attrs.get("Status", {}).get("State") == "ready"]
    return ({node.id for node in ready},
            {node.id for node in ready if node.attrs.get("Spec", {}).get("Availability", "active") == "active"})


def spread(tasks, placeable):
    """{node id: tasks of the service running there} over every node Swarm may place a task on now
    (`placeable`; 0 where it runs none), from the service's tasks: what a rebalance evens out (Swarm never
    moves running tasks)."""
    counts = dict.fromkeys(sorted(placeable), 0)
    for task in tasks:
        if task.get("DesiredState") == "running" and task["Status"]["State"] == "running" and task.get(
                "NodeID") in counts:
            counts[task["NodeID"]] += 1
    return counts


def _task_version(task):
    labels = task.get("Spec", {}).get("ContainerSpec", {}).get("Labels") or {}
    version = labels.get(containers.LABEL_VERSION, "")
    return int(version) if version.isdigit() else None


def progress(service, target, number, policy):
    """The deployment's view of the service: the plain backend's per-compute entry (desired, updated,
    healthy, failed, versions: of every task running that Swarm keeps running) from the service's tasks,
    with Swarm's UpdateStatus (`state`, `message`), `failure` (why Swarm stopped or rolled back an update
    to `target`, else None) and `done`."""
    if service is None:
        return {"desired": number, "updated": 0, "healthy": 0, "failed": 0, "versions": {}, "state": "absent",
                "message": "", "failure": None, "done": number == 0}
    (ready, placeable), monitor = _nodes(), parse_duration(policy.get("min_healthy_time") or "0s")
    tasks = service.tasks()
    wanted = [task for task in tasks if task.get("DesiredState") == "running"]
    # Running now, on a node that is up, and kept running: a task Swarm is stopping is no longer the service's.
    up = [task for task in tasks if task["Status"]["State"] == "running" and task.get("NodeID") in ready
          and task.get("DesiredState") == "running"]
    versions = {}
    for task in up:
        versions[str(_task_version(task))] = versions.get(str(_task_version(task)), 0) + 1
    status = service.attrs.get("UpdateStatus") or {}
    state, message = status.get("State", ""), status.get("Message", "")
    spec_version = _version_of(service.attrs["Spec"])
    failure = None
    late = _not_healthy_in_time(wanted, target, policy)
    if state in STOPPED:
        failure = f"Swarm {state.replace('_', ' ')} the update: {message}"
    elif _rolled_back_from(service, tasks, target):
        failure = f"Swarm rolled the update back: {message or 'rollback started'}"
    elif late:
        failure = late
    mine = [task for task in up if _task_version(task) == target]
    healthy = [task for task in mine if _since(task["Status"].get("Timestamp")) >= monitor]
    failed = [task for task in tasks if _task_version(task) == target and task["Status"]["State"] in (
        "failed", "rejected")]  # a version is rolled out once: every failed task of it is of this deployment
    # Done once every task Swarm keeps running is of `target` and has been healthy for min_healthy_time, as a
    # plain Docker compute is done: none waits on old tasks Swarm is stopping, which may take their whole stop
    # grace (10 s for a PID 1 that ignores SIGTERM), nor on Swarm's updater, which after the last batch still
    # sleeps its delay and then one more monitor window before it says `completed`. It acts on no failure of a
    # task healthy for its monitor window by then, so that wait can only end in `completed`.
    done = (spec_version == target and state not in STOPPED and state != "rollback_started"
            and all(_task_version(task) == target for task in wanted)
            and len(up) == len(mine) == number and len(healthy) == number)
    return {"desired": number, "updated": len([t for t in wanted if _task_version(t) == target]),
            "healthy": len(healthy), "failed": len(failed), "versions": versions, "state": state or "none",
            "message": message, "failure": failure, "done": done, "nodes": spread(tasks, placeable)}


def _not_healthy_in_time(wanted, target, policy):
    """Why a task of `target` that Swarm wants running is not running (with a healthcheck: healthy) within the
    policy's healthy_deadline of its creation, or None: BoatLoad's deadline, which Swarm's updater lacks (a
    task whose check never passes or fails holds Swarm's update as long as it stays `starting`)."""
    if not policy.get("healthy_deadline"):
        return None
    deadline = parse_duration(policy["healthy_deadline"])
    for task in wanted:
        if _task_version(task) == target and task["Status"]["State"] != "running" and task["Status"][
                "State"] not in ("failed", "rejected") and _since(task.get("CreatedAt")) > deadline:
            return (f"task {task['ID'][:12]} not healthy within healthy_deadline ({policy['healthy_deadline']}): "
                    f"{task['Status']['State']}")
    return None


def running(name):
    """Tasks of the Swarm service that run now, on nodes that are up: a task of a node that went down
    is not counted, though the manager still lists it running until it reschedules it."""
    return status(name)["running_resources"]


def status(name):
    """The connector status answer: `running_resources` (see `running`) and `nodes`, the service's running
    tasks per node Swarm may place one on (`spread`): a node that joined (or was made active) shows 0."""
    with docker_errors():
        service = _service(name)
        tasks = service.tasks(filters={"desired-state": "running"}) if service is not None else []
        ready, placeable = _nodes()
        nodes = spread(tasks, placeable)
    return {"running_resources": sum(1 for task in tasks if task.get("Status", {}).get("State") == "running"
                                     and task.get("NodeID") in ready), "nodes": nodes}
