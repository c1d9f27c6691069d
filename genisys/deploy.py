"""Versions and deployments: health-gated rolling updates, advanced by the reconciler.

Every change of what a service's containers run (image, command, environment, ports,
healthcheck, limits: memory and cpus) makes a new ServiceVersion and a Deployment row from the old version to the new.
The deployment is state in Postgres; the Genisys reconciler advances it one level-triggered
step at a time (`deployment_step`): it observes every compute's slots (the connector's
`/service/<name>/slots`: version, Docker's state and health of each container), derives what
is updated, healthy, settled (healthy for `min_healthy_time`) and failed, and only then acts.
Nothing about a batch is remembered but when each new container was first seen healthy, so
a reconciler killed at any point is resumed by the next one, and a connector's `slot_start`
is idempotent (a slot never gets two containers of one version): no twins.

A rebalance (`rebalance_start`) is a deployment too, of the current version onto an even spread of the
service's desired total over the healthy computes: the reconciler raises a gaining compute's desired
number a batch at a time and lowers a losing one's only by as many slots as are healthy beyond the
total, so the healthy count never drops below it.

The rolling update policy (`update` of a definition) follows Nomad's and Swarm's defaults.
"""
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import serializers

from boatload import loop
from common.env import parse_duration
from common.errors import BoatLoadError, Conflict, RemoteError
from connectors.client import ConnectorClient
from connectors.definitions import DurationField
from genisys import services
from genisys.models import Compute, Deployment, Service, ServiceVersion, recorded_image

log = logging.getLogger("genisys.deploy")
# A change of one is a new version. Versions recorded before limits existed have no memory or cpus: read as None.
RUNTIME_KEYS = ("image", "command", "environment", "ports", "healthcheck", "memory", "cpus")
POLICY_DEFAULTS = {"parallelism": 1, "min_healthy_time": "10s", "healthy_deadline": "5m",
                   "progress_deadline": "10m", "order": "stop-first", "failure_action": "rollback",
                   "auto_revert": True}
SLOT_TIMEOUT = 60  # read timeout of one slot call: a create and start on the connector's host
State = Deployment.State


class UpdatePolicySerializer(serializers.Serializer):
    """`update` of a service definition: how a new version rolls out. Every key is optional."""

    parallelism = serializers.IntegerField(required=False, min_value=1, max_value=1000)
    min_healthy_time = DurationField(required=False, min_seconds=0, max_seconds=86400)
    healthy_deadline = DurationField(required=False, min_seconds=0.001, max_seconds=86400)
    progress_deadline = DurationField(required=False, min_seconds=0.001, max_seconds=7 * 86400)
    order = serializers.ChoiceField(required=False, choices=["stop-first", "start-first"])
    failure_action = serializers.ChoiceField(required=False, choices=["rollback", "pause"])
    auto_revert = serializers.BooleanField(required=False)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["an object: " + ", ".join(POLICY_DEFAULTS)]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({unknown[0]: ["not an update policy key"]})
        return super().to_internal_value(data)


def policy_of(service):
    """The service's update policy with every default filled in."""
    return {**POLICY_DEFAULTS, **(service.update or {})}


def runtime_definition(service):
    return {key: getattr(service, key) for key in RUNTIME_KEYS}


# Versions ------------------------------------------------------------------------------------------


def service_lock(service):
    """Lock the service's row for this transaction and read its version again: every change of a service's
    versions or deployments takes it first, so concurrent orders (several API processes, a hook, the
    admin) take their turns instead of numbering the same version twice or starting twin deployments."""
    service.version = Service.objects.select_for_update().values_list("version", flat=True).get(pk=service.pk)


def deployment_lock(deployment):
    """The deployment's row, locked after its service's (the one lock order, so no two changes deadlock)."""
    Service.objects.select_for_update().filter(pk=deployment.service_id).values_list("pk").get()
    return Deployment.objects.select_for_update().get(pk=deployment.pk)


def version_record(*, service, user=None, image_ids=None):
    """Record the service's definition as a new version when what its containers run changed.
    Returns (version before, version now); equal when nothing changed. Old versions beyond
    GENISYS_VERSION_HISTORY are dropped (never one a running deployment may return to).

    `image_ids` ({compute: image id} the tag names there now, from a redeploy hook) is part of the
    version: a new image under the same tag is a new version. Without it, the last version's ids
    are kept while the image (tag) is the same."""
    service_lock(service)
    before = service.version or None
    latest = service.versions.first()
    definition = runtime_definition(service)
    if image_ids is not None:
        definition["image_ids"] = image_ids
    elif latest is not None and latest.definition.get("image") == service.image and "image_ids" in latest.definition:
        definition["image_ids"] = latest.definition["image_ids"]
    if latest is not None and {k: v for k, v in latest.definition.items() if k != "ran_image_ids"} == definition:
        return before, latest.number
    number = (latest.number if latest else 0) + 1
    ServiceVersion.objects.create(service=service, number=number, definition=definition, created_by=user)
    Service.objects.filter(pk=service.pk).update(version=number)
    service.version = number
    versions_prune(service)
    return before, number


def versions_prune(service):
    keep = max(settings.GENISYS_VERSION_HISTORY, 2)
    needed = set(service.deployments.filter(state__in=Deployment.ACTIVE).values_list("from_version", flat=True))
    old = service.versions.order_by("-number").values_list("pk", "number")[keep:]
    ServiceVersion.objects.filter(pk__in=[pk for pk, number in old if number not in needed]).delete()


def version_definition(service, number):
    """The connector definition of one version of a service (None when that version is gone); `image_ids`
    ({compute: image id}, a redeploy hook's) stays in it for `pinned`."""
    row = service.versions.filter(number=number).first()
    if row is None:
        return None
    return {"name": service.name, **row.definition, "version": number}


def pinned(definition, compute):
    """The definition one compute runs: a version that recorded an image id there (the one its tag named at a
    redeploy hook, else the one its first container there ran) runs that image, so rolling back to it returns
    to the image it had, and a slot started later (a scale, a replacement) runs it too, whatever the tag names
    now (`recorded_image`)."""
    shown = {key: value for key, value in definition.items() if key not in ("image_ids", "ran_image_ids")}
    image = recorded_image(definition, compute.name)
    if image:
        shown["image"] = image
    return shown


def image_record(*, service_name, number, compute, containers):
    """Record, once, the image id the version's containers on `compute` run (the lowest slot's), unless the
    version records one there already: from then on its new containers there start from that id."""
    ran = next((item.get("image_id") for item in sorted(containers, key=lambda item: item["slot"])
                if item.get("version") == number and item.get("image_id")), None)
    if not ran:
        return
    with transaction.atomic():
        row = ServiceVersion.objects.select_for_update().filter(service__name=service_name, number=number).first()
        if row is None or recorded_image(row.definition, compute.name):
            return
        row.definition = {**row.definition, "ran_image_ids": {**(row.definition.get("ran_image_ids") or {}),
                                                              compute.name: ran}}
        row.save(update_fields=["definition"])


# Starting deployments -------------------------------------------------------------------------------


def deployment_active(service):
    return service.deployments.filter(state__in=Deployment.ACTIVE).first()


def deployment_create(*, service, kind, from_version, to_version, user=None):
    """A new deployment of `to_version`, superseding an active one. With nothing desired anywhere there is
    nothing to roll: it is done at once."""
    service_lock(service)
    now = timezone.now()
    for older in service.deployments.select_for_update().filter(state__in=Deployment.ACTIVE):
        older.state, older.finished = State.FAILED, now
        older.reason = f"superseded by a deployment of version {to_version}"
        older.save(update_fields=["state", "finished", "reason", "updated"])
    wanted = sum(service.desired.values_list("number", flat=True))
    deployment = Deployment.objects.create(
        service=service, kind=kind, from_version=from_version, to_version=to_version, target_version=to_version,
        policy=policy_of(service), started_by=user, progressed=now,
        state=State.RUNNING if wanted else State.SUCCEEDED, finished=None if wanted else now,
        reason="" if wanted else "nothing is desired on any compute")
    return deployment


def definition_changed(*, service, user=None):
    """After a definition was saved: a new version and its deployment, or None when nothing that runs changed."""
    with transaction.atomic():
        before, now = version_record(service=service, user=user)
        if before == now:
            return None
        if before is None:  # the first definition: nothing runs yet
            return None
        return deployment_create(service=service, kind="definition", from_version=before, to_version=now, user=user)


def scale_deployment(*, service, user=None):
    """After a scale order: the active deployment (the new number joins it), else a deployment of the current
    version that ends when every desired slot is healthy."""
    with transaction.atomic():
        service_lock(service)
        active = deployment_active(service)
        if active is not None and active.kind != "rebalance":  # a scale's numbers supersede a rebalance's
            return active
        if not service.version:
            version_record(service=service, user=user)
        return deployment_create(service=service, kind="scale", from_version=service.version,
                                 to_version=service.version, user=user)


def scale_deployed(*, service, user=None, **order):
    """A scale order (genisys.services.service_scale) and the deployment it joins or makes: (answer,
    deployment). Every way to scale (the API, the console, a scale hook) comes through here."""
    answer = services.service_scale(service=service, user=user, **order)
    return answer, scale_deployment(service=service, user=user)


# Controls ------------------------------------------------------------------------------------------


def _transition(deployment, *, only, verb, check=None, **changes):
    """Move the deployment from state `only` to `changes` (under a row lock), or Conflict naming its state (or
    the one `check(row)` raises)."""
    with transaction.atomic():
        row = deployment_lock(deployment)
        if row.state != only:
            raise Conflict(f"Deployment {row.pk} is {row.state}; only a {only} one can be {verb}.",
                           detail={"field": "state", "state": row.state})
        if check is not None:
            check(row)
        for field, value in changes.items():
            setattr(row, field, value)
        row.save(update_fields=[*changes, "updated"])
    row.refresh_from_db()  # an F() change read back
    return row


def deployment_pause(*, deployment):
    """No new batch starts; slots of the batch under way go on becoming healthy. Swarm's updater can not be
    paused, so a deployment that a Swarm compute rolls (one with its `swarm` entry: a step gave it the version)
    is not paused (Conflict naming the computes) rather than said paused while Swarm goes on. One paused before
    its first step holds on Swarm too: a paused step only observes."""
    return _transition(deployment, only=State.RUNNING, verb="paused", check=_not_rolled_by_swarm,
                       state=State.PAUSED, pause_requested=True)


def swarm_rolled(deployment):
    """The computes on which Swarm rolls the deployment (their progress has a `swarm` entry), sorted."""
    return sorted(name for name, entry in deployment.progress.items() if "swarm" in entry)


def _not_rolled_by_swarm(row):
    swarms = swarm_rolled(row)
    if swarms:
        raise Conflict(f"Deployment {row.pk} is rolled out by Swarm on {', '.join(swarms)}, and Swarm's update can "
                       "not be paused: let it end, or roll it back.",
                       detail={"field": "state", "state": row.state, "swarm": swarms})
    if not row.progress and Service.objects.filter(pk=row.service_id, claimed_until__gt=timezone.now()).exists():
        # Its first step holds the service (it re-reads the state once it holds it): that step may be giving a
        # Swarm compute the version, which no pause could then stop.
        raise Conflict(f"The first step of deployment {row.pk} is under way; pause it again in a moment.",
                       detail={"field": "state", "state": row.state})


def deployment_resume(*, deployment):
    """Go on; a Swarm compute whose update Swarm paused resumes it (rollout_step passes `resume`)."""
    return _transition(deployment, only=State.PAUSED, verb="resumed", state=State.RUNNING, pause_requested=False,
                       progressed=timezone.now(), resumed=F("resumed") + 1)


def deployment_rollback(*, deployment, reason="rollback requested"):
    """Roll back to the version before, the same careful way: the latest deployment of its service only."""
    with transaction.atomic():
        row = deployment_lock(deployment)
        latest = row.service.deployments.order_by("-id").first()
        if latest.pk != row.pk:
            raise Conflict(f"Deployment {row.pk} is not the service's latest ({latest.pk}).",
                           detail={"field": "id", "latest": latest.pk})
        if row.rolling_back or row.state == State.ROLLED_BACK:
            raise Conflict(f"Deployment {row.pk} is rolled back already.", detail={"field": "state",
                                                                                   "state": row.state})
        if row.state == State.SUCCEEDED or row.from_version in (None, row.to_version):
            raise Conflict(f"Deployment {row.pk} has no earlier version to return to ({row.state}).",
                           detail={"field": "state", "state": row.state})
        if not _rollback_begin(row, reason):
            raise Conflict(f"Version {row.from_version} is no longer kept.", detail={"field": "from_version"})
        row.save()
    return row


def _rollback_begin(row, reason):
    """Turn `row` (locked) into the roll-back to its from_version, and the service's definition back; False
    when that version is gone."""
    service = Service.objects.get(pk=row.service_id)  # locked by deployment_lock
    old = service.versions.filter(number=row.from_version).first()
    if old is None:
        return False
    for key in RUNTIME_KEYS:
        setattr(service, key, old.definition.get(key))
    service.version = old.number
    service.save(update_fields=[*RUNTIME_KEYS, "version", "updated"])
    row.rolling_back, row.target_version, row.state, row.pause_requested = True, old.number, State.RUNNING, False
    row.reason, row.progressed, row.finished = reason, timezone.now(), None
    row.progress = {}
    return True


# Waiting -------------------------------------------------------------------------------------------


def wait_settled(*, deployment, seconds):
    """The deployment once it is terminal (or paused), or as it is when `seconds` ran out (the reconciler
    advances it; this only reads)."""
    deadline = time.monotonic() + seconds
    while True:
        deployment.refresh_from_db()
        if deployment.terminal or deployment.state == State.PAUSED or time.monotonic() >= deadline:
            return deployment
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


# The reconciler's step -----------------------------------------------------------------------------


def service_deploy_step(*, service):
    """Advance the service's active deployment once (claimed like a reconcile step, shortly: a reconciler
    killed mid-step delays the next by GENISYS_DEPLOY_CLAIM at most). None when there is none, or when
    another reconciler holds the service. A scale's deployment only observes (the reconcile scales)."""
    deployment = deployment_active(service)
    if deployment is None:
        return None
    step = rebalance_step if deployment.kind == "rebalance" else deployment_step
    if deployment.kind == "scale":
        return step(deployment=deployment)
    if not loop.claim(Service, service.pk, seconds=settings.GENISYS_DEPLOY_CLAIM):
        return None
    try:
        deployment.refresh_from_db()  # as it is now that the step holds the service: a pause made before counts
        if deployment.state not in Deployment.ACTIVE:
            return deployment
        return step(deployment=deployment)
    finally:
        loop.release(Service, service.pk)


def deployment_step(*, deployment):
    """One observation of every compute and what it calls for: start-first old containers removed once their
    replacement is healthy, the next batch started when the current one is settled, failure or success."""
    service, policy, now = deployment.service, deployment.policy, timezone.now()
    definition = version_definition(service, deployment.target_version)
    if definition is None:
        return _finish(deployment, State.FAILED, f"version {deployment.target_version} is no longer kept")
    may_start = deployment.state == State.RUNNING
    progress, failures, done, settled_before = {}, [], True, _settled_total(deployment.progress)
    for desired in service.desired.select_related("compute"):
        entry = deployment.progress.get(desired.compute.name, {})
        try:
            entry, compute_failures, compute_done = compute_step(
                compute=desired.compute, definition=definition, number=desired.number, policy=policy,
                entry=entry, now=now, may_start=may_start, rolls=deployment.kind == "definition",
                resume=f"{deployment.pk}.{deployment.resumed}" if deployment.resumed and may_start else None)
        except BoatLoadError as error:  # a connector down: no progress there this time, the deadline runs
            entry, compute_failures, compute_done = {**entry, "error": error.message}, [], False
        progress[desired.compute.name] = entry
        failures += compute_failures
        done = done and compute_done
    changes = {"progress": progress}
    if _settled_total(progress) > settled_before:
        changes["progressed"] = now
    if may_start and not failures and not done and now - deployment.progressed > _seconds(policy,
                                                                                          "progress_deadline"):
        failures.append(f"no slot became healthy within progress_deadline ({policy['progress_deadline']})")
    return _save(deployment, changes, failures if may_start else [], done)


def compute_step(*, compute, definition, number, policy, entry, now, may_start, rolls=True, resume=None):
    """(progress entry, failures, done) of one compute; acts on it through its connector.

    `rolls` False (a scale's deployment) only observes: the reconciler's scale made the slots, and the
    deployment ends when each of them holds a container healthy for min_healthy_time. `resume`: the token
    of the deployment's last resume (a Swarm compute resumes an update Swarm paused once per token)."""
    client = ConnectorClient(compute, timeout=SLOT_TIMEOUT)
    recorded = recorded_image(definition, compute.name)
    definition = pinned(definition, compute)
    name, target = definition["name"], definition["version"]
    kind, since = _no_slots.get(compute.connector, (None, 0.0))
    if kind is not None and time.monotonic() - since < NO_SLOTS_KEPT:  # its rollout also keeps the definition
        try:
            return rollout_step(client, definition, number, policy, rolls, resume, fallback=False,
                                hold=not may_start)
        except BoatLoadError as error:
            if error.status_code not in (404, 405, 501):
                raise
            _no_slots.pop(compute.connector, None)  # another kind of connector now: asked as the first time
    if rolls:
        client.put_service(definition)
    try:
        containers = client.slots(name)
    except BoatLoadError as error:
        if error.status_code not in (404, 405, 501):
            raise
        step = rollout_step(client, definition, number, policy, rolls, resume, hold=not may_start,
                            fallback=not client.satellite)
        if step[0].get("slots") is not False:  # its rollout answered: it rolls its own updates
            _no_slots[compute.connector] = ("rollout", time.monotonic())
        return step
    healthy_since = dict(entry.get("healthy_since") or {})
    by_slot = {}
    for item in containers:
        by_slot.setdefault(item["slot"], []).append(item)
    if not recorded:  # the first time this version runs here: its image id, for every slot started later
        image_record(service_name=name, number=target, compute=compute, containers=containers)
    new, failures = {}, []
    for slot in range(number):  # one created and never started (its satellite killed meanwhile): pending
        mine = [item for item in by_slot.get(slot, []) if (item["version"] == target or not rolls)
                and not (rolls and item["state"] == "created")]
        if mine:
            new[slot] = mine[0]
    for slot, item in new.items():
        if _healthy(item):
            healthy_since.setdefault(item["id"], now.timestamp())
        else:
            healthy_since.pop(item["id"], None)
            problem = _failure(item, policy, now, deadline_only=not rolls)
            if problem:
                failures.append(f"{compute.name} slot {slot}: {problem}")
    seen = {item["id"] for item in new.values()}
    healthy_since = {cid: since for cid, since in healthy_since.items() if cid in seen}
    settled = [slot for slot, item in new.items()
               if item["id"] in healthy_since and now.timestamp() - healthy_since[item["id"]]
               >= _seconds(policy, "min_healthy_time")]
    in_flight = [slot for slot in new if slot not in settled]
    pending = [slot for slot in range(number) if slot not in new]
    if rolls:
        for slot, item in new.items():  # start-first: the old container goes once its replacement is healthy
            if item["id"] in healthy_since and len(by_slot.get(slot, [])) > 1:
                client.slot_clear(name, slot, keep=target)
                by_slot[slot] = [item]
        for slot in sorted(s for s in by_slot if s >= number):  # scaled down meanwhile
            client.slot_clear(name, slot)
            del by_slot[slot]
        if may_start and not failures and not in_flight and pending:
            for slot in pending[:policy["parallelism"]]:
                if policy["order"] == "stop-first":
                    client.slot_clear(name, slot, keep=target)
                client.slot_start(name, slot, definition)
    versions = {}
    for item in containers:
        versions[str(item["version"])] = versions.get(str(item["version"]), 0) + 1
    entry = {"desired": number, "updated": len(new), "healthy": len(settled), "failed": len(failures),
             "versions": versions, "healthy_since": healthy_since}
    done = not pending and not in_flight and not failures and not any(s >= number for s in by_slot) and (
        not rolls or all(len(by_slot.get(slot, [])) == 1 for slot in range(number)))
    return entry, failures, done


# Connector URL: ("rollout", when) of connectors that answered a slots call 404, 405 or 501 and a rollout call
# with a progress (the Swarm backend). For NO_SLOTS_KEPT seconds their steps make the rollout call alone, then
# ask again (the compute may have a satellite of another kind).
_no_slots = {}
NO_SLOTS_KEPT = 60.0


def rollout_step(client, definition, number, policy, rolls, resume=None, fallback=True, hold=False):
    """A connector that rolls its own updates (the Swarm backend: Swarm's UpdateConfig and RollbackConfig
    with this policy, satellite/connector/swarm_backend.py): (entry, failures, done) from its progress, in
    the slots' entry shape plus Swarm's UpdateStatus under `swarm`. Without a rollout (an external
    connector): legacy_step, or with `fallback` False its 404, 405 or 501 raised (a satellite has slots or a
    rollout: its 404 is of this service or call, e.g. a network Docker does not have, never a reason to only
    scale). `hold` (a paused deployment): only observe, so a version Swarm has not been given yet is not."""
    try:
        answer = client.rollout(definition["name"], definition, number, policy, observe=not rolls or hold,
                                resume=resume)
    except BoatLoadError as error:
        if error.status_code not in (404, 405, 501) or not fallback:
            raise
        return legacy_step(client, definition, number, rolls)
    entry = {key: answer[key] for key in ("desired", "updated", "healthy", "failed", "versions")}
    entry["swarm"] = {"state": answer["state"], "message": answer["message"]}
    if not rolls and answer.get("nodes") is not None:  # a scale or rebalance: the tasks per node (rebalance_step)
        entry["nodes"] = answer["nodes"]
    failures = [f"{client.remote}: {answer['failure']}"] if rolls and answer["failure"] else []
    return entry, failures, answer["done"] and not failures


def legacy_step(client, definition, number, rolls):
    """A connector without slots or rollout (an external one): the definition and a scale (when
    rolling), done when its status says `number` run."""
    running = client.scale(definition["name"], number) if rolls else None
    if running is None:
        running = client.status(definition["name"])
    return ({"desired": number, "updated": running, "healthy": running, "failed": 0, "slots": False},
            [], running == number)


def _healthy(item):
    return item["state"] == "running" and item["health"] in (None, "healthy")


def _failure(item, policy, now, deadline_only=False):
    """Why a container of the new version has failed, or None while it may still become healthy (or, with
    `deadline_only`, be replaced by the reconciler)."""
    if item["state"] in ("exited", "dead") and not deadline_only:
        return f"container {item['name']} {item['state']}"
    if item["health"] == "unhealthy" and not deadline_only:
        return f"container {item['name']} is unhealthy (its healthcheck fails)"
    if now.timestamp() - item["created"] > _seconds(policy, "healthy_deadline"):
        return f"container {item['name']} not healthy within healthy_deadline ({policy['healthy_deadline']})"
    return None


def _seconds(policy, key):
    value = parse_duration(policy[key])
    return timedelta(seconds=value) if key == "progress_deadline" else value


def _settled_total(progress):
    return sum(entry.get("healthy", 0) for entry in progress.values())


def _save(deployment, changes, failures, done):
    """Write what a step found, under the row's lock: a deployment paused, resumed, superseded or rolled back
    meanwhile keeps that decision and takes only the progress."""
    with transaction.atomic():
        row = deployment_lock(deployment)
        for key, value in changes.items():
            setattr(row, key, value)
        unchanged = (row.state, row.target_version) == (deployment.state, deployment.target_version)
        if unchanged and failures:
            _fail(row, "; ".join(failures))
        elif unchanged and done and row.state == State.RUNNING:
            row.state = State.ROLLED_BACK if row.rolling_back else State.SUCCEEDED
            row.finished = timezone.now()
        if row.terminal and row.state != State.SUCCEEDED:
            log.warning("deployment %s of %s: %s: %s", row.pk, row.service.name, row.state, row.reason)
        row.save()
    return row


def _fail(row, reason):
    """The failure action: roll back (auto_revert), pause, or stop as failed. A rebalance that fails stops
    (failed) with its new slots that never got healthy taken back (`_rebalance_trim`)."""
    policy = row.policy
    if row.kind == "rebalance" and policy["failure_action"] != "pause":
        row.state, row.reason, row.finished = State.FAILED, reason, timezone.now()
        _rebalance_trim(row)
    elif row.rolling_back:
        row.state, row.finished = State.FAILED, timezone.now()
        row.reason = f"{row.reason}; the rollback failed too: {reason}"
    elif policy["failure_action"] == "pause":
        row.state, row.reason = State.PAUSED, reason
    elif (policy["auto_revert"] and row.from_version not in (None, row.to_version)
          and _rollback_begin(row, f"rolled back: {reason}")):
        pass
    else:
        row.state, row.reason, row.finished = State.FAILED, reason, timezone.now()


def _finish(deployment, state, reason):
    Deployment.objects.filter(pk=deployment.pk).update(state=state, reason=reason, finished=timezone.now())
    deployment.refresh_from_db()
    return deployment


# Rebalance -----------------------------------------------------------------------------------------


def even_spread(total, computes, current):
    """{compute name: number}: `total` over `computes` evenly; the remainder goes to those holding most now
    (then the first defined), so a spread that is even already stays as it is."""
    share, extra = divmod(total, len(computes))
    favoured = sorted(computes, key=lambda c: (-current.get(c.name, 0), c.position, c.pk))[:extra]
    return {c.name: share + (1 if c in favoured else 0) for c in computes}


def rebalance_plan(service, across=True):
    """(the desired numbers now {compute name: number}, the even spread of their total over the healthy
    computes, every compute named 0 that would hold none). 503 when no compute is healthy. `across` False
    keeps every compute's number (a rebalance within Swarm computes only)."""
    current = {d.compute.name: d.number for d in service.desired.select_related("compute")}
    if not across:
        return dict(current), dict(current)
    healthy = [c for c in Compute.objects.all() if c.is_healthy]
    if not healthy:
        raise RemoteError("No healthy compute to spread over.", remote="*", status_code=503,
                          code="no_healthy_compute")
    target = even_spread(sum(current.values()), healthy, current)
    target.update({name: 0 for name in current if name not in target})
    return {name: current.get(name, 0) for name in target}, target


def uneven(nodes):
    """Whether a Swarm compute's tasks per node ({node: running tasks}) differ by more than one."""
    return bool(nodes) and max(nodes.values()) - min(nodes.values()) > 1


def swarm_spreads(service):
    """{compute name: {node: running tasks}} of the Swarm computes (their satellite's status gives `nodes`)
    holding some of the service; a compute whose connector fails or is no Swarm is left out."""
    found = {}
    for desired in service.desired.select_related("compute").filter(number__gt=0):
        try:
            _, nodes = ConnectorClient(desired.compute).status_nodes(service.name)
        except BoatLoadError:
            continue
        if nodes is not None:
            found[desired.compute.name] = nodes
    return found


def rebalance_start(*, service, user=None, reason="", across=True, spreads=None):
    """A deployment (kind rebalance) moving the service's slots to an even spread over the healthy computes,
    and the tasks of each Swarm compute to an even spread over its nodes. 409 while another deployment of
    the service is active; one that has nothing to move succeeds at once. `across` False (the reconciler's,
    for a service not spread over computes): within Swarm computes only."""
    spreads = swarm_spreads(service) if spreads is None else spreads  # asked before any lock is taken
    with transaction.atomic():
        service_lock(service)
        active = deployment_active(service)
        if active is not None:
            raise Conflict(f"Deployment {active.pk} of {service.name} is {active.state}; rebalance once it ended.",
                           detail={"field": "deployment", "deployment": active.pk, "state": active.state})
        current, target = rebalance_plan(service, across=across)
        if across:
            Service.objects.filter(pk=service.pk).update(spread=True)
        if not service.version:
            version_record(service=service, user=user)
        deployment = deployment_create(service=service, kind="rebalance", from_version=service.version,
                                       to_version=service.version, user=user)
        deployment.spread = {"from": current, "to": target,
                             "nodes": {name: sorted(nodes) for name, nodes in spreads.items()}}
        deployment.reason = reason or deployment.reason
        if deployment.state == State.RUNNING and current == target and not any(map(uneven, spreads.values())):
            deployment.state, deployment.finished = State.SUCCEEDED, timezone.now()
            deployment.reason = "evenly spread already"
        deployment.save()
    return deployment


def rebalance_if_joined(service):
    """The reconciler's automatic rebalance (GENISYS_REBALANCE_ON_JOIN): started when a healthy compute that
    the even spread of a spread service gives a share holds none of it (a host joined or enrolled, a
    compute was added), or when a node of a Swarm compute holding the service runs none of its tasks while
    another runs two or more (a node joined the Swarm or was made active: Swarm never moves running tasks),
    unless the last try at that same spread failed. None otherwise."""
    if deployment_active(service) is not None:
        return None
    spreads = swarm_spreads(service)
    nodes_joined = sorted(f"{node[:12]} of compute {name}" for name, nodes in spreads.items() if uneven(nodes)
                          for node, count in nodes.items() if count == 0)
    try:
        current, target = rebalance_plan(service, across=service.spread)
    except RemoteError:
        return None
    joined = sorted(name for name, number in target.items() if number and not current.get(name))
    reasons = ([f"compute {', '.join(joined)} joined"] if joined else []) + (
        [f"node {', '.join(nodes_joined)} joined"] if nodes_joined else [])
    latest = service.deployments.first()
    known = {name: sorted(nodes) for name, nodes in spreads.items()}
    if not reasons or (latest is not None and latest.kind == "rebalance" and latest.state == State.FAILED
                       and latest.spread.get("to") == target and latest.spread.get("nodes", {}) == known):
        return None
    try:
        return rebalance_start(service=service, reason="; ".join(reasons), across=service.spread, spreads=spreads)
    except Conflict:  # a deployment started meanwhile
        return None


def rebalance_step(*, deployment):
    """One observation of every compute of a rebalance and the moves it allows: a losing compute's desired
    number lowered by as many slots as are healthy (for min_healthy_time) beyond the total, then, once no
    slot is in flight, a gaining compute's raised by up to `parallelism`. The reconcile makes and removes
    the containers; everything is derived from the desired numbers and what the computes show."""
    service, policy, now = deployment.service, deployment.policy, timezone.now()
    target = deployment.spread["to"]
    total = sum(target.values())
    definition = version_definition(service, deployment.target_version) or service.definition()
    desired = {d.compute.name: d.number for d in service.desired.select_related("compute")}
    computes = {c.name: c for c in Compute.objects.filter(name__in=set(target) | set(desired))}
    progress, failures, done, settled = {}, [], True, {}
    for name, compute in computes.items():
        number = desired.get(name, 0)
        entry = deployment.progress.get(name, {})
        try:
            entry, compute_failures, compute_done = compute_step(
                compute=compute, definition=definition, number=number, policy=policy, entry=entry, now=now,
                may_start=False, rolls=False)
        except BoatLoadError as error:
            if number == 0 and error.status_code == 404:  # a compute the service has not reached yet
                entry, compute_failures, compute_done = dict.fromkeys(("desired", "updated", "healthy", "failed"),
                                                                      0), [], True
            else:  # a connector down: none of its slots counts as healthy
                entry, compute_failures, compute_done = {**entry, "desired": number, "healthy": 0,
                                                         "error": error.message}, [], False
        progress[name] = {**entry, "target": target.get(name, 0)}
        settled[name] = entry["healthy"]
        failures += compute_failures
        done = done and compute_done
    running = deployment.state == State.RUNNING
    spreads = {name: entry["nodes"] for name, entry in progress.items() if entry.get("nodes")}
    plan = _rebalance_moves(desired, target, settled, total, policy["parallelism"], spreads) \
        if running and not failures else dict(desired)
    for name in spreads:  # surges so far: bounded, so a Swarm whose scheduler will not spread churns no longer
        surges = deployment.progress.get(name, {}).get("surges", 0) + (plan.get(name, 0) > desired.get(name, 0)
                                                                        == target.get(name))
        progress[name]["surges"] = surges
        if surges > 2 * max(target.get(name, 0), 1) and running and uneven(spreads[name]):
            failures.append(f"{name}: its tasks are still unevenly spread over its nodes after {surges - 1} "
                            f"surges: {spreads[name]}")
            plan = dict(desired)
    changes = {"progress": progress}
    if sum(settled.values()) > _settled_total(deployment.progress) or plan != desired:
        changes["progressed"] = now
    elif running and not failures and now - deployment.progressed > _seconds(policy, "progress_deadline"):
        failures.append(f"no slot became healthy within progress_deadline ({policy['progress_deadline']})")
    if plan != desired and not _rebalance_write(deployment, service, desired, plan):
        return Deployment.objects.get(pk=deployment.pk)  # changed meanwhile: the next step sees it
    done = done and all(desired.get(name, 0) == number for name, number in target.items()) and plan == desired \
        and not any(map(uneven, spreads.values()))
    return _save(deployment, changes, failures if running else [], done)


def _rebalance_moves(desired, target, settled, total, parallelism, spreads=None):
    """The desired numbers after this step's moves (see rebalance_step). A Swarm compute at its target whose
    tasks are unevenly spread over its nodes (`spreads`) is surged: raised by up to `parallelism` (Swarm
    places the new tasks on the nodes running fewest), and, once they are healthy, lowered back by the
    first rule (Swarm removes the tasks of the nodes running most)."""
    plan = {name: desired.get(name, 0) for name in target}
    surplus = min(sum(plan.values()), sum(settled.values())) - total
    for name in sorted(target, key=lambda n: target[n] - plan[n]):  # the largest excess first
        while surplus > 0 and plan[name] > target[name]:
            plan[name] -= 1
            surplus -= 1
    in_flight = sum(desired.get(name, 0) - settled.get(name, 0) for name in target)
    batch = parallelism if in_flight <= 0 else 0
    for name in target:
        while batch > 0 and plan[name] < target[name]:
            plan[name] += 1
            batch -= 1
    for name, nodes in (spreads or {}).items():
        if batch > 0 and uneven(nodes) and plan.get(name) == target.get(name) == desired.get(name):
            share = -(-sum(nodes.values()) // len(nodes))  # the most a node holds when even
            surge = min(batch, max(1, sum(count - share for count in nodes.values() if count > share)))
            plan[name] += surge
            batch -= surge
    return plan


def _rebalance_write(deployment, service, observed, plan):
    """Write the planned desired numbers, unless the deployment or the numbers changed since the step
    observed them (a scale, a pause, another reconciler): False then."""
    with transaction.atomic():
        row = deployment_lock(deployment)
        now = {d.compute.name: d.number for d in service.desired.select_for_update().select_related("compute")}
        if row.state != State.RUNNING or now != observed:
            return False
        computes = {c.name: c for c in Compute.objects.filter(name__in=plan)}
        services.desired_write(service=service, targets={computes[name]: number for name, number in plan.items()
                                                         if number != observed.get(name, 0)})
    return True


def _rebalance_trim(row):
    """A failed rebalance takes back the slots it added that are not healthy: a gaining compute's desired
    number goes down to what it had, or to its healthy slots when more."""
    before = row.spread.get("from", {})
    computes = {c.name: c for c in Compute.objects.filter(name__in=row.progress)}
    trimmed = {}
    for name, entry in row.progress.items():
        number = entry.get("desired", 0)
        keep = max(before.get(name, 0), entry.get("healthy", 0))
        if number > keep and name in computes:
            trimmed[computes[name]] = keep
    if trimmed:
        services.desired_write(service=row.service, targets=trimmed)
