"""Prometheus metrics of the API server, served at /metrics (issue 17, item 1).

Two kinds of series, both on one page:
- what the API's processes count themselves: requests (by method, view and status) and calls
  to satellites and connectors (by remote and operation). The API runs several gunicorn
  workers, so these use prometheus_client's multiprocess mode as its documentation describes
  (PROMETHEUS_MULTIPROC_DIR, set up by boatload/gunicorn_conf.py, make run and the image);
  without that variable (manage.py shell, the test client) the process' own registry is served.
- what is true of the fleet, read from Postgres on each scrape with a few GROUP BY queries:
  hosts, containers, services, scale orders, the reconcilers' totals (observe.models.LoopStat);
  and the per-container series of the samples the reconciler collects from every satellite's
  GET /stats on an interval (observe.models.ContainerSample), which that collection renders once
  into one row (observe.models.SamplePage) that a scrape serves as is. A scrape never calls a
  satellite, and its work does not grow with the number of containers.
"""
import hmac
import ipaddress
import logging
import os
import time
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, F
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from rest_framework.throttling import BaseThrottle

from boatload.models import Container, Host
from boatload.satellite_client import SatelliteClient
from common.errors import error_body
from common.remote import call_all
from genisys.models import Compute, Deployment, Desired, ScaleOrder
from observe import history
from observe.models import ContainerSample, LoopStat, SamplePage

log = logging.getLogger("boatload.metrics")

REQUESTS = Counter("boatload_http_requests_total", "Requests the API answered, by method, view and status.",
                   ["method", "view", "status"])
REQUEST_SECONDS = Histogram("boatload_http_request_duration_seconds",
                            "Time to the response's headers (a stream's body is not counted), by method, view and "
                            "status.", ["method", "view", "status"])
REMOTE_SECONDS = Histogram("boatload_remote_request_duration_seconds",
                           "Calls of the API to satellites and connectors, by kind, remote and operation.",
                           ["kind", "remote", "operation"])
REMOTE_ERRORS = Counter("boatload_remote_request_errors_total",
                        "Failed calls to satellites and connectors, by kind, remote, operation and error code.",
                        ["kind", "remote", "operation", "code"])

@contextmanager
def remote_call(kind, remote, method, route):
    """Time one call to a remote (common.remote.RemoteClient.request) by its operation, e.g. `GET
    /containers/<container_id>/logs` (a declared route: the number of series stays bounded); count it
    as failed when it raises."""
    operation = f"{method} /{route}"
    started = time.perf_counter()
    try:
        yield
    except Exception as error:
        REMOTE_ERRORS.labels(kind, remote, operation, getattr(error, "code", error.__class__.__name__)).inc()
        raise
    finally:
        REMOTE_SECONDS.labels(kind, remote, operation).observe(time.perf_counter() - started)


class RequestMetricsMiddleware:
    """Counts and times every request by the name of the view that answered it (bounded: no paths)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match._func_path) if match else "unmatched"
        labels = (request.method if request.method in _METHODS else "other", view, response.status_code)
        series = _series.get(labels)
        if series is None:
            series = _series[labels] = (REQUESTS.labels(*labels[:2], str(labels[2])),
                                        REQUEST_SECONDS.labels(*labels[:2], str(labels[2])))
        series[0].inc()
        series[1].observe(time.perf_counter() - started)
        return response


_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
# The request series by (method, view, status): `labels()` takes a lock and checks its values on every call,
# the same child each time (100 heartbeats a second share one). Bounded as the labels are (no paths).
_series = {}


# ---- the reconcilers ---------------------------------------------------------------------------

@contextmanager
def loop_pass(loop):
    """Count one pass of a reconciler loop, its duration and whether it failed (in observe.models.LoopStat)."""
    started = time.monotonic()
    failed = True
    try:
        yield
        failed = False
    finally:
        _add_pass(loop, time.monotonic() - started, failed)


def _add_pass(loop, seconds, failed):
    try:
        fields = {"passes": F("passes") + 1, "failures": F("failures") + int(failed), "seconds": F("seconds") + seconds,
                  "last_seconds": seconds, "last_pass": timezone.now()}
        if not LoopStat.objects.filter(loop=loop).update(**fields):
            LoopStat.objects.get_or_create(loop=loop)
            LoopStat.objects.filter(loop=loop).update(**fields)
    except DatabaseError:  # the database is down: the loop's own outage handling says so
        log.debug("loop %s: pass not counted, the database is unavailable", loop)


# ---- the fleet's samples -----------------------------------------------------------------------

SAMPLE_FIELDS = {  # ContainerSample field: key of the satellite's /stats item
    "cpu_seconds": "cpu_seconds", "cpu_percent": "cpu_percent", "memory_bytes": "memory_usage",
    "memory_limit_bytes": "memory_limit", "network_rx_bytes": "network_rx_bytes",
    "network_tx_bytes": "network_tx_bytes", "block_read_bytes": "block_read_bytes",
    "block_write_bytes": "block_write_bytes", "pids": "pids",
}
def collect_fleet():
    """One GET /stats per healthy host, in parallel (at most BOATLOAD_FLEET_WORKERS threads: the reconciler's
    are real threads); replace the samples with what they answered, and append them to the metrics history
    (observe/history.py). A host not asked or not answered by BOATLOAD_CLUSTER_READ_TIMEOUT is logged.

    A host that fails or is down keeps no samples (no stale figures); returns the number of samples.
    """
    hosts = [host for host in Host.objects.exclude(state=Host.State.DOWN) if host.is_healthy]
    calls = [(host, SatelliteClient(host, timeout=settings.CLUSTER_READ_TIMEOUT).stats_all) for host in hosts]
    answers = []
    for host, answer, error in call_all(calls, timeout=settings.CLUSTER_READ_TIMEOUT, workers=settings.FLEET_WORKERS):
        if error is None:
            answers.append((host, answer))
        else:
            log.warning("fleet metrics: %s: %s", host.name, error.message)
    rows = {(row["host__name"], row["docker_id"]): row for row in Container.objects.filter(
        host__in=[host for host, _ in answers]).exclude(docker_id="").values(
        "host__name", "docker_id", "uuid", "owner__username", "service")}
    now = timezone.now()
    samples = []
    for host, answer in answers:
        for docker_id, item in answer.items():
            if not item.get("running"):
                continue
            row = rows.get((host.name, docker_id), {})
            labels = item.get("labels") or {}
            samples.append(ContainerSample(
                host=host.name, docker_id=docker_id, collected=now,
                container=str(row.get("uuid") or labels.get("container") or item.get("name", docker_id[:12])),
                service=row.get("service") or labels.get("service", ""),
                owner=row.get("owner__username") or labels.get("owner", ""),
                **{field: item.get(key) or 0 for field, key in SAMPLE_FIELDS.items() if field != "cpu_percent"},
                cpu_percent=item.get("cpu_percent")))
    store_samples(samples, now=now)
    history.record(samples, now=now)  # the same samples, appended to the history in one bulk INSERT
    return len(samples)


def store_samples(samples, *, now):
    """Replace the latest samples with `samples` (ContainerSample, unsaved) and the per-container series
    of /metrics with their rendering, in one transaction: the page's text is built here, once per
    collection, not on each scrape (a scrape of 1,000 containers spent most of its time formatting
    8,000 sample lines)."""
    text = render_samples(samples)
    with transaction.atomic():
        ContainerSample.objects.all().delete()
        ContainerSample.objects.bulk_create(samples, batch_size=1000)
        fields = {"text": text, "samples": len(samples), "collected": now}
        if not SamplePage.objects.filter(pk=1).update(**fields):
            SamplePage.objects.update_or_create(pk=1, defaults=fields)


def render_samples(samples):
    """The per-container series of `samples` in Prometheus' text format, by prometheus_client itself."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SampleCollector(sorted(samples, key=lambda sample: (sample.host, sample.container))))
    return generate_latest(registry).decode()


class _SampleCollector:
    def __init__(self, samples):
        self.samples = samples

    def collect(self):
        for name, help, field, family in _SAMPLE_SERIES:
            series = _named(family)(name, help, _SAMPLE_LABELS)
            for sample in self.samples:
                series.add_metric([sample.host, sample.container, sample.service, sample.owner],
                                  getattr(sample, field))
            yield series


# ---- what a scrape reads from Postgres ---------------------------------------------------------

_SAMPLE_SERIES = [  # (name, help, ContainerSample field, family)
    ("boatload_container_cpu_seconds_total", "CPU time the container used, as its satellite last reported.",
     "cpu_seconds", CounterMetricFamily),
    ("boatload_container_memory_usage_bytes", "Memory in use (without inactive page cache).", "memory_bytes",
     GaugeMetricFamily),
    ("boatload_container_memory_limit_bytes", "The container's memory limit (the host's memory when unlimited).",
     "memory_limit_bytes", GaugeMetricFamily),
    ("boatload_container_network_receive_bytes_total", "Bytes received on every network.", "network_rx_bytes",
     CounterMetricFamily),
    ("boatload_container_network_transmit_bytes_total", "Bytes sent on every network.", "network_tx_bytes",
     CounterMetricFamily),
    ("boatload_container_block_read_bytes_total", "Bytes read from block devices.", "block_read_bytes",
     CounterMetricFamily),
    ("boatload_container_block_write_bytes_total", "Bytes written to block devices.", "block_write_bytes",
     CounterMetricFamily),
    ("boatload_container_pids", "Processes and threads in the container.", "pids", GaugeMetricFamily),
]
_SAMPLE_LABELS = ["host", "container", "service", "owner"]


def _named(family):
    """Counter families take their name without `_total` (the library adds it back)."""
    return lambda name, help, labels: family(name.removesuffix("_total"), help, labels=labels)


class DatabaseCollector:
    """Fleet series from Postgres: read on each scrape, a handful of GROUP BY queries whose answers grow
    with hosts, services and states, not with containers. The per-container series are not built
    here: the collection that wrote them rendered them (store_samples), and metrics_view adds that text."""

    def collect(self):
        hosts = GaugeMetricFamily("boatload_hosts", "Hosts by state.", labels=["state"])
        counted = dict(Host.objects.values_list("state").annotate(n=Count("id")))
        for state in Host.State.values:
            hosts.add_metric([state], counted.get(state, 0))
        yield hosts

        containers = GaugeMetricFamily("boatload_containers", "Container rows by host and state.",
                                       labels=["host", "state"])
        for host, state, n in (Container.objects.values_list("host__name", "state").annotate(n=Count("id"))
                               .order_by("host__name", "state")):
            containers.add_metric([host or "", state], n)
        yield containers

        desired = GaugeMetricFamily("boatload_service_desired_resources",
                                    "Desired containers of a service per compute.", labels=["service", "compute"])
        for service, compute, number in Desired.objects.values_list("service__name", "compute__name", "number"):
            desired.add_metric([service, compute], number)
        yield desired
        running = GaugeMetricFamily("boatload_service_running_resources",
                                    "Running containers of a service per compute, from the last fleet collection.",
                                    labels=["service", "compute"])
        compute_of_host = dict(Compute.objects.exclude(host=None).values_list("host__name", "name"))
        for host, service, n in (ContainerSample.objects.exclude(service="").values_list("host", "service")
                                 .annotate(n=Count("id")).order_by("host", "service")):
            running.add_metric([service, compute_of_host.get(host, host)], n)
        yield running

        orders = CounterMetricFamily("boatload_scale_orders", "Scale orders sent to connectors, by source and result.",
                                     labels=["source", "result"])
        for source, result, n in ScaleOrder.objects.values_list("source", "result").annotate(n=Count("id")):
            orders.add_metric([source, result], n)
        yield orders

        deployments = GaugeMetricFamily("boatload_deployments", "Deployments (roll-outs) by kind and state: running "
                                        "and paused ones, and how the others ended.", labels=["kind", "state"])
        counted = {(kind, state): n for kind, state, n in
                   Deployment.objects.values_list("kind", "state").annotate(n=Count("id")).order_by()}
        for kind in ("definition", "scale"):
            for state in Deployment.State.values:
                deployments.add_metric([kind, state], counted.get((kind, state), 0))
        yield deployments

        stats = list(LoopStat.objects.all())
        passes = CounterMetricFamily("boatload_reconcile_passes", "Passes of each reconciler loop.", labels=["loop"])
        failures = CounterMetricFamily("boatload_reconcile_pass_failures", "Passes that failed.", labels=["loop"])
        duration = SummaryMetricFamily("boatload_reconcile_pass_duration_seconds", "Duration of the passes.",
                                       labels=["loop"])
        last = GaugeMetricFamily("boatload_reconcile_last_pass_timestamp_seconds", "When the last pass ended.",
                                 labels=["loop"])
        for stat in stats:
            passes.add_metric([stat.loop], stat.passes)
            failures.add_metric([stat.loop], stat.failures)
            duration.add_metric([stat.loop], count_value=stat.passes, sum_value=stat.seconds)
            if stat.last_pass:
                last.add_metric([stat.loop], stat.last_pass.timestamp())
        yield from (passes, failures, duration, last)


# ---- /metrics ----------------------------------------------------------------------------------

def _refusal(request):
    """The error answer for a scraper that may not read /metrics, or None.

    Refused until configured: with neither BOATLOAD_METRICS_ALLOW nor BOATLOAD_METRICS_TOKEN
    set, nobody reads it. With both, a scraper needs both.
    """
    allow, token = settings.METRICS_ALLOW, settings.METRICS_TOKEN
    if not allow and not token:
        return JsonResponse(error_body("metrics_not_configured", "/metrics is off until BOATLOAD_METRICS_ALLOW or "
                                       "BOATLOAD_METRICS_TOKEN is set."), status=403)
    if allow:
        try:
            address = ipaddress.ip_address(BaseThrottle().get_ident(request))
        except ValueError:
            address = None
        if address is None or not any(address in network for network in allow):
            return JsonResponse(error_body("permission_denied", "This address may not read /metrics."), status=403)
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            response = JsonResponse(error_body("not_authenticated", "/metrics needs its bearer token."), status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return None


@require_GET
def metrics_view(request):
    """The Prometheus text format; not part of the OpenAPI schema (it is not a v1 API operation)."""
    refusal = _refusal(request)
    if refusal is not None:
        return refusal
    database = CollectorRegistry()
    database.register(DatabaseCollector())
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    fleet = SamplePage.objects.filter(pk=1).values_list("text", flat=True).first() or ""
    return HttpResponse(generate_latest(processes) + generate_latest(database) + fleet.encode(),
                        content_type=CONTENT_TYPE_LATEST)
