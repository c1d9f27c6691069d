"""Genisys work: scale orders balanced over computes, status, reconciliation and Consul.

A scale order writes the desired number first (with a new generation), pushes the service
definition to the connector, then posts the scale. A connector that fails leaves the
desired number in place; the reconciler retries until running matches desired.
"""
import logging
from collections import namedtuple
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q

from boatload import loop, outage
from boatload import services as boatload_services
from boatload.satellite_client import SatelliteClient
from common.errors import BadInput, BoatLoadError, NotFound, RemoteError
from connectors.client import ConnectorClient
from connectors.definitions import SERVICE_NAME
from genisys.models import Compute, Desired, ScaleOrder, Service, recorded_image
from observe import audit

log = logging.getLogger("genisys")


def targets_for(*, service, number, compute=None):
    """{compute: number} for one order: the named compute, the first one, or `*` spread evenly.

    Spreading gives every healthy compute its share and the others of this service zero.
    """
    computes = list(Compute.objects.all())
    if not computes:
        raise BadInput("compute", "no compute is defined; POST /compute first")
    if compute == "*":
        healthy = [c for c in computes if c.is_healthy]
        if not healthy:
            raise RemoteError("No healthy compute to spread over.", remote="*", status_code=503,
                              code="no_healthy_compute")
        share, extra = divmod(number, len(healthy))
        spread = {c: share + (1 if index < extra else 0) for index, c in enumerate(healthy)}
        holding = set(Desired.objects.filter(service=service, number__gt=0).values_list("compute_id", flat=True))
        return {c: spread.get(c, 0) for c in computes if c in spread or c.pk in holding}
    if compute:
        chosen = next((c for c in computes if c.name == compute), None)
        if chosen is None:
            raise BadInput("compute", f"no compute named {compute}")
        return {chosen: number}
    return {computes[0]: number}


def desired_write(*, service, targets):
    """Record the wanted numbers before anything is asked; bump their generation.

    Returns {compute pk: (number before or None when there was no row, generation written)},
    what `desired_restore` needs to take the order back."""
    before = {}
    with transaction.atomic():
        for compute, number in targets.items():
            row, created = Desired.objects.select_for_update().get_or_create(
                service=service, compute=compute, defaults={"number": number, "generation": 1})
            if created:
                before[compute.pk] = (None, 1)
            else:
                Desired.objects.filter(pk=row.pk).update(number=number, generation=F("generation") + 1)
                before[compute.pk] = (row.number, row.generation + 1)
    return before


def desired_restore(*, service, before):
    """Take back the numbers `desired_write` wrote, unless a later order has written them since."""
    with transaction.atomic():
        for compute_pk, (number, generation) in before.items():
            rows = Desired.objects.filter(service=service, compute_id=compute_pk, generation=generation)
            if number is None:
                rows.delete()
            else:
                rows.update(number=number, generation=F("generation") + 1)


def order_send(*, service, compute, number, source, user=None, observed=None):
    """Push the definition, then scale; record the order. Returns the ScaleOrder (ok or failed).

    `order.error` keeps the failure; `order.refused` is set when the connector refused the order
    as bad input (400/422): trying again can never help."""
    order = ScaleOrder(service=service, compute=compute, to_number=number, source=source, requested_by=user,
                       from_number=observed)
    order.error, order.refused = None, False
    try:
        client = ConnectorClient(compute)
        if service.defined_by == "boatload":  # a connector-defined service has nothing of ours to push
            client.put_service(definition_for(service, compute))
        order.running = client.scale(service.name, number)
        order.result = "ok"
        if order.running is None:  # the connector's 2xx did not say (the original answers an empty body)
            order.running = running_or_none(client, service.name)
    except BoatLoadError as error:
        order.result, order.message, order.error = "failed", error.message[:2000], error
        order.refused = not isinstance(error, RemoteError) and error.status_code in (400, 422)
    order.save()
    return order


def definition_for(service, compute):
    """The definition a compute's connector is given: the service's, with the image id its version records
    there (genisys.models.recorded_image) in place of the tag, so the slots a scale starts run the image the
    version's other containers run, not whatever the tag names since."""
    definition = service.definition()
    recorded = service.versions.filter(number=service.version).values_list("definition", flat=True).first() \
        if service.version else None
    image = recorded_image(recorded or {}, compute.name)
    if image:
        definition["image"] = image
    return definition


def running_or_none(client, name):
    try:
        return client.status(name)
    except BoatLoadError:
        return None


def service_scale(*, service, number, compute=None, user=None, source="api"):
    """Scale `service` to `number` on the computes chosen by `compute`.

    The desired numbers are written first, so a connector that is down (502, named) leaves them for
    the reconciler. A connector that refuses the order as bad input (e.g. over its maximum) can never
    meet it: every number of this order is taken back (computes that had accepted are sent their
    previous number) and the answer is 400 naming the connector's field (`number` by default)."""
    with audit.change("service.scale", target=service.name) as entry:  # with the desired numbers it writes
        targets = targets_for(service=service, number=number, compute=compute)
        before = desired_write(service=service, targets=targets)
        if service.spread != (compute == "*"):  # a rebalance on join follows a spread service only
            service.spread = compute == "*"
            Service.objects.filter(pk=service.pk).update(spread=service.spread)
        entry.detail = {**entry.detail, "number": number, "computes": [c.name for c in targets]}
    try:
        return _scale_send(service, number, targets, before, source, user)
    except BoatLoadError as error:
        audit.outcome(entry, result="failed", message=error.message)
        raise


def _scale_send(service, number, targets, before, source, user):
    orders = [order_send(service=service, compute=c, number=n, source=source, user=user) for c, n in targets.items()]
    refused = [order for order in orders if order.refused]
    if refused:
        desired_restore(service=service, before=before)
        for order in orders:
            if order.result == "ok":
                previous = before[order.compute.pk][0] or 0
                order_send(service=service, compute=order.compute, number=previous, source=source, user=user)
        first = refused[0]
        field = first.error.extra.get("field") or "number"
        raise BoatLoadError(f"{field}: compute {first.compute.name} refused it: {first.message}", code="invalid",
                            status_code=400, detail={"field": field, "desired_kept": False,
                                                     "computes": {o.compute.name: o.message for o in refused}})
    failed = [order for order in orders if order.result == "failed"]
    if failed:
        names = ", ".join(order.compute.name for order in failed)
        raise RemoteError(f"The connector of compute {names} failed: {failed[0].message}", remote=names,
                          code="connector_failed", detail={"computes": {o.compute.name: o.message for o in failed},
                                                           "desired_kept": True})
    return {"service": service.name, "number": number, "definition": service.defined_by,
            "computes": {order.compute.name: {"desired": order.to_number, "running": order.running}
                         for order in orders}}


def service_adopt(*, name, compute=None):
    """The Service row of a service BoatLoad has no definition of but a compute's connector knows
    (Genisys keeps definitions on the connector and only forwards scale orders): recorded as
    `defined_by="connector"`, ownerless (staff only), with the connector's definition copied for
    show when it gives one. NotFound when no connector asked knows it; nothing is then made."""
    if not SERVICE_NAME.match(name):
        raise NotFound(f"No service named {name}.")
    candidates = list(targets_for(service=None, number=0, compute=compute)) if compute != "*" else [
        c for c in Compute.objects.all() if c.is_healthy]
    for candidate in candidates:
        client = ConnectorClient(candidate)
        try:
            client.status(name)  # 200: the connector knows it (404 or 501: it does not)
        except NotFound:
            continue
        try:
            shown = client.service(name)
        except BoatLoadError:
            shown = None  # GET /service/<name> is not a mandatory endpoint of the protocol
        shown = shown if isinstance(shown, dict) else {}
        fields = {"image": str(shown.get("image") or "")[:400], "command": shown.get("command")
                  if isinstance(shown.get("command"), str) else None,
                  "environment": shown.get("environment") if isinstance(shown.get("environment"), dict) else None,
                  "ports": shown.get("ports") if isinstance(shown.get("ports"), list) else None}
        with audit.change("service.adopt", target=name):
            service, _ = Service.objects.get_or_create(name=name, defaults={**fields, "defined_by": "connector"})
        log.info("scale order for %s forwarded: defined on the connector of %s only", name, candidate.name)
        return service
    names = ", ".join(c.name for c in candidates) or "none"
    raise NotFound(f"No service named {name}, and no connector asked knows it (computes: {names}).")


def service_status(*, service):
    """Running resources per compute (as each connector says) and the total.

    A compute whose connector fails or answers something that is not a status makes it a 502
    naming that compute; the detail still holds every compute's entry."""
    computes = {}
    total = 0
    for desired in service.desired.select_related("compute"):
        entry = {"desired": desired.number}
        try:
            entry["running_resources"] = ConnectorClient(desired.compute).status(service.name)
            total += entry["running_resources"]
        except BoatLoadError as error:
            entry["error"] = error.message
        computes[desired.compute.name] = entry
    answer = {"service": service.name, "computes": computes, "running_resources": total,
              "desired": sum(entry["desired"] for entry in computes.values())}
    failed = {name: entry["error"] for name, entry in computes.items() if "error" in entry}
    if failed:
        names = ", ".join(failed)
        raise RemoteError(f"The connector of compute {names} failed: {next(iter(failed.values()))}",
                          remote=names, code="connector_failed", detail={"status": answer})
    return answer


_Asked = namedtuple("_Asked", "name service number")  # name: the compute's, as cluster_calls names a late one


def services_status(*, services):
    """The running number per compute of many services at once, live: every compute of every
    service asked in parallel within the cluster-read deadline (a console page must not wait
    on one connector). {service name: {"computes": {compute: {"desired", "running_resources"}
    or {"desired", "error"}}, "running_resources", "desired"}}: a failing compute is named in its
    entry, never raised."""
    pairs = [(service, desired) for service in services
             for desired in service.desired.select_related("compute").order_by("compute__name")]
    calls = [(_Asked(desired.compute.name, service.name, desired.number),
              partial(ConnectorClient(desired.compute).status, service.name)) for service, desired in pairs]
    answers = {service.name: {"service": service.name, "computes": {}, "running_resources": 0, "desired": 0}
               for service in services}
    for (compute, name, number), running, error in boatload_services.cluster_calls(calls):
        answer = answers[name]
        answer["desired"] += number
        if error is not None:
            answer["computes"][compute] = {"desired": number, "error": error.message}
        else:
            answer["computes"][compute] = {"desired": number, "running_resources": running}
            answer["running_resources"] += running
    return answers


def service_claim(service):
    """Claim a service for one reconcile step; False when another reconciler holds it."""
    return loop.claim(Service, service.pk)


def service_release(service):
    loop.release(Service, service.pk)


def service_reconcile(*, service):
    """One level-triggered pass over a service: scale every compute whose running differs from desired.

    The service is claimed with a conditional UPDATE (boatload.loop.claim), so several reconcilers
    never act on one service at once, and no lock is held while a connector is asked. One failing
    compute, whatever it answers, is recorded as a failed order and the pass goes on. Returns the
    orders sent, or None when another reconciler holds the service.
    """
    if not service_claim(service):
        return None
    try:
        orders = []
        for desired in service.desired.select_related("compute"):
            try:
                order = compute_reconcile(service=service, desired=desired)
            except outage.DATABASE_ERRORS:
                raise
            except Exception as error:  # a bug must not stop the pass for the other computes either
                log.exception("reconciling %s on %s", service.name, desired.compute.name)
                order = ScaleOrder.objects.create(
                    service=service, compute=desired.compute, to_number=desired.number, source="reconciler",
                    result="failed", message=f"reconcile: {error.__class__.__name__}: {error}"[:2000])
            if order is not None:
                orders.append(order)
        return orders
    finally:
        service_release(service)


def compute_reconcile(*, service, desired):
    """The order (if any) that makes one compute run `desired.number` of `service`."""
    try:
        running = ConnectorClient(desired.compute).status(service.name)
    except BoatLoadError as error:
        if getattr(error, "status_code", 0) != 404:  # 404: the connector does not know it yet
            return ScaleOrder.objects.create(
                service=service, compute=desired.compute, to_number=desired.number, source="reconciler",
                result="failed", message=f"status: {error.message}"[:2000])
        running = None
    if running == desired.number:
        return None
    return order_send(service=service, compute=desired.compute, number=desired.number, source="reconciler",
                      observed=running)


def consul_sync(*, registry, service_prefix, resources_key_prefix):
    """Services in Consul's catalog with the prefix take their desired number from the KV store."""
    changed = []
    for name in registry.service_names():
        if not name.startswith(service_prefix):
            continue
        service = Service.objects.filter(name=name).first()
        number = registry.desired_number(f"{resources_key_prefix}{name}")
        if service is None or number is None:
            continue  # no definition to run, or no number to run it at
        if service.managed_by != "consul":
            Service.objects.filter(pk=service.pk).update(managed_by="consul")
        current = sum(service.desired.values_list("number", flat=True))
        if current != number:
            desired_write(service=service, targets=targets_for(service=service, number=number))
            changed.append(name)
    return changed


def service_computes(service):
    """The satellite computes the service has ever been on (a desired number, even 0, or an order), by
    position: where its containers run or ran, and so where their output is."""
    computes = Compute.objects.filter(Q(desired__service=service) | Q(orders__service=service)).distinct()
    return [compute for compute in computes.order_by("position", "id") if compute.satellite() is not None]


def service_logs(*, service):
    """Every container of the service whose output can be read, per satellite compute, asked in parallel
    within the cluster-read deadline: live ones and removed ones (their output kept by the satellite).
    {"results": [{compute, container, name, slot, version, state: live|archived, …}], "failures": [{compute,
    code, message}]}: a compute that fails is named, never raised."""
    calls = [(compute, partial(SatelliteClient(compute.host, timeout=settings.CLUSTER_READ_TIMEOUT).service_logs,
                               service.name)) for compute in service_computes(service)]
    results, failures = [], []
    for compute, listed, error in boatload_services.cluster_calls(calls):
        if error is not None:
            failures.append({"compute": compute.name, "code": error.code, "message": error.message})
            continue
        results += [{"compute": compute.name, **item} for item in listed if isinstance(item, dict)]
    return {"results": results, "failures": failures}


def service_log(*, service, container, compute=None, as_user="", **query):
    """(compute, upstream response, chunks) of one container's output, from the satellite compute that has
    it live or kept (`compute`: only that one). NotFound when none has it; a compute that failed meanwhile
    is raised (it may be the one holding it)."""
    computes = service_computes(service)
    if compute is not None:
        computes = [c for c in computes if c.name == compute]
        if not computes:
            raise BadInput("compute", f"the service has no satellite compute named {compute}")
    failed = None
    for candidate in computes:
        try:
            return (candidate, *SatelliteClient(candidate.host).service_log(service.name, container,
                                                                           as_user=as_user, **query))
        except NotFound:
            continue
        except RemoteError as error:
            failed = error
    if failed is not None:
        raise failed
    raise NotFound(f"No container {container} of service {service.name} on its computes, nor output kept of one.")
