"""Metrics history (issue 17, item 2): the fleet's samples kept in Postgres as a rolling series.

Written by the reconciler only, never on a request: each fleet collection (observe.metrics.
collect_fleet) appends its samples in one bulk INSERT (`record`), and every pass of the fleet loop
rolls complete buckets of raw samples up into one row per container and bucket and prunes what is
older than the retentions (`maintain`), each one statement in the database. So the table holds at
most, per container, HISTORY_RAW_RETENTION / FLEET_INTERVAL raw rows and HISTORY_RETENTION /
HISTORY_ROLLUP_STEP roll-ups.

Several reconcilers may run. Only one writes the samples of an interval (a conditional UPDATE of
HistoryState.next_sample), the roll-up is claimed like any row of a loop (boatload.loop.claim), and
its INSERT commits only together with the conditional UPDATE that moves `rolled_until` from the
value it started at: a second reconciler that got there too can never roll a bucket up twice.

The API reads it (`series`): a container's points, or a host's or a service's totals (the sum over
their containers at each instant, averaged over the step), at the raw resolution while it covers
the range, else from the roll-ups (and the raw samples not yet rolled up, the latest minutes).
"""
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Avg, Count, F, FloatField, Max, Q, Sum, Value
from django.db.models.functions import Cast
from django.utils import timezone

from boatload import loop
from observe.models import HistoryState, MetricPoint

log = logging.getLogger("boatload.history")

COUNTERS = ("cpu_seconds", "network_rx_bytes", "network_tx_bytes", "block_read_bytes", "block_write_bytes")
GAUGES = ("cpu_percent", "memory_bytes", "pids")
LIMITS = ("memory_limit_bytes",)
FIELDS = COUNTERS + GAUGES + LIMITS
INTEGRAL = {"memory_bytes", "memory_limit_bytes", "network_rx_bytes", "network_tx_bytes", "block_read_bytes",
            "block_write_bytes", "pids"}


def _state():
    state, _ = HistoryState.objects.get_or_create(pk=1)
    return state


def record(samples, *, now):
    """Append one collection's samples (observe.models.ContainerSample, unsaved) as raw points, unless
    another reconciler already wrote this interval's; the number written."""
    if not settings.HISTORY or not samples:
        return 0
    _state()
    due = Q(next_sample__isnull=True) | Q(next_sample__lte=now)
    # Slightly less than the interval, so a collection that runs a little early still writes.
    following = now + timedelta(seconds=settings.FLEET_INTERVAL * 0.8)
    if not HistoryState.objects.filter(pk=1).filter(due).update(next_sample=following):
        return 0
    owners = _owner_ids({sample.owner for sample in samples if sample.owner})
    t = int(now.timestamp())
    MetricPoint.objects.bulk_create([
        MetricPoint(rolled=0, t=t, host=sample.host, container=sample.container, service=sample.service,
                    owner_id=owners.get(sample.owner), **{name: getattr(sample, name) for name in FIELDS})
        for sample in samples], batch_size=1000)
    return len(samples)


def _owner_ids(usernames):
    users = get_user_model().objects.filter(username__in=usernames)
    return dict(users.values_list("username", "id"))


_ROLL_UP = """
INSERT INTO {table} (rolled, t, container, host, service, owner_id, {fields})
SELECT %(step)s, (t / %(step)s) * %(step)s, container, MAX(host), MAX(service), MAX(owner_id), {aggregates}
FROM {table}
WHERE rolled = 0 AND t >= %(start)s AND t < %(end)s
GROUP BY container, t / %(step)s
"""


def roll_up(now=None):
    """Roll the complete buckets of raw samples not yet rolled up into one row per container and
    bucket; the number of rows made (0 when another reconciler holds the roll-up)."""
    step = settings.HISTORY_ROLLUP_STEP
    end = (int((now or timezone.now()).timestamp()) // step) * step
    state = _state()
    if state.rolled_until >= end or not loop.claim(HistoryState, state.pk):
        return 0
    try:
        start = state.rolled_until
        aggregates = ", ".join(f"MAX({name})" if name in COUNTERS + LIMITS else f"AVG({name})" for name in FIELDS)
        sql = _ROLL_UP.format(table=MetricPoint._meta.db_table, fields=", ".join(FIELDS), aggregates=aggregates)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(sql, {"step": step, "start": start, "end": end})
                made = cursor.rowcount
            if not HistoryState.objects.filter(pk=state.pk, rolled_until=start).update(rolled_until=end):
                raise _Superseded
        return made
    except _Superseded:  # another reconciler moved the cursor meanwhile: ours is rolled back
        return 0
    finally:
        loop.release(HistoryState, state.pk)


class _Superseded(Exception):
    pass


def prune(now=None):
    """Delete raw samples older than HISTORY_RAW_RETENTION and roll-ups older than HISTORY_RETENTION
    (raw samples are kept until rolled up, whatever their age); the number deleted."""
    now = int((now or timezone.now()).timestamp())
    rolled_until = _state().rolled_until
    raw = MetricPoint.objects.filter(rolled=0, t__lt=min(now - settings.HISTORY_RAW_RETENTION, rolled_until))
    old = MetricPoint.objects.filter(rolled__gt=0, t__lt=now - settings.HISTORY_RETENTION)
    return raw.delete()[0] + old.delete()[0]


def maintain(now=None):
    """The reconciler's step: roll up, then prune; (rows rolled up, rows deleted)."""
    return roll_up(now), prune(now)


# ---- reads ---------------------------------------------------------------------------------------

def resolution(*, since, step, now=None):
    """(source, step) for a range from `since` (Unix seconds) with points `step` seconds apart: raw
    samples while they cover the range and the step is finer than a roll-up, else roll-ups (the step
    then a whole number of buckets)."""
    now = int(now or time.time())
    bucket = settings.HISTORY_ROLLUP_STEP
    if step < bucket and since >= now - settings.HISTORY_RAW_RETENTION:
        return "raw", step
    return "rollup", -(-step // bucket) * bucket


def series(points, *, since, step, totals=False):
    """The points of `points` (a MetricPoint queryset already scoped to one container, host or service)
    from `since`, one every `step` seconds: {"resolution", "step", "points": [{"t", …}]}.

    `totals`: sum over the containers at each instant (a host or a service), averaged over the step,
    with the number of containers seen in the step.
    """
    source, step = resolution(since=since, step=step)
    if source == "raw":
        rows = points.filter(rolled=0, t__gte=since)
    else:
        bucket = settings.HISTORY_ROLLUP_STEP
        pending = max(_state().rolled_until, since)
        rows = points.filter(Q(rolled=bucket, t__gte=since - since % bucket) | Q(rolled=0, t__gte=pending))
    rows = rows.annotate(at=F("t") / Value(step) * Value(step)).values("at").order_by("at")
    if totals:
        instants = Cast(Count("t", distinct=True), FloatField())
        aggregates = {name: Cast(Sum(name), FloatField()) / instants for name in FIELDS}
        aggregates["containers"] = Count("container", distinct=True)
    else:
        aggregates = {name: Max(name) if name in COUNTERS + LIMITS else Avg(name) for name in FIELDS}
    answer = []
    for row in rows.annotate(**aggregates):
        point = {"t": row.pop("at")}
        for name in FIELDS:
            value = row[name]
            point[name] = None if value is None else (round(value) if name in INTEGRAL else round(value, 3))
        if totals:
            point["containers"] = row["containers"]
        answer.append(point)
    return {"resolution": source, "step": step, "points": answer}
