"""Rows of observability: the audit log, the fleet's latest container samples, reconciler loop totals,
the metrics history.

Samples and loop totals live in Postgres, not in prometheus_client's multiprocess files: the
reconcilers run in their own processes (in the image: their own containers), and every API
worker must read what they wrote. Both tables stay small: one row per running container,
one row per loop. The history is bounded by its retentions (observe/history.py).
"""
from django.conf import settings
from django.db import models

from common.claims import ClaimKept


class AuditEntry(models.Model):
    """One change somebody made or tried to make: who, when, from where, on what, the request, the result."""

    class Result(models.TextChoices):
        OK = "ok"
        FAILED = "failed"
        PARTIAL = "partial"  # some of several instances failed

    created = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="audit_entries")
    actor_name = models.CharField(max_length=150, blank=True, help_text="The username, kept when the user goes.")
    address = models.GenericIPAddressField(null=True, blank=True)
    action = models.CharField(max_length=64, db_index=True)
    target_type = models.CharField(max_length=32, blank=True)
    target = models.CharField(max_length=200, blank=True, db_index=True)
    method = models.CharField(max_length=8, blank=True)
    path = models.CharField(max_length=500, blank=True)
    request = models.JSONField(default=dict, blank=True, help_text="Query and body, secrets masked.")
    detail = models.JSONField(default=dict, blank=True, help_text="What the change made, e.g. the containers.")
    result = models.CharField(max_length=8, choices=Result.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    message = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["actor", "-id"], name="audit_actor_recent")]

    def __str__(self):
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.actor_name or '-'} {self.action} {self.result}"


class ContainerMetrics(models.Model):
    """The figures of one container a satellite's /stats reports (observe.metrics.SAMPLE_FIELDS)."""

    cpu_seconds = models.FloatField(default=0)
    cpu_percent = models.FloatField(null=True)
    memory_bytes = models.BigIntegerField(default=0)
    memory_limit_bytes = models.BigIntegerField(default=0)
    network_rx_bytes = models.BigIntegerField(default=0)
    network_tx_bytes = models.BigIntegerField(default=0)
    block_read_bytes = models.BigIntegerField(default=0)
    block_write_bytes = models.BigIntegerField(default=0)
    pids = models.IntegerField(default=0)

    class Meta:
        abstract = True


class ContainerSample(ContainerMetrics):
    """The latest metrics a satellite reported for one of its containers (replaced on each collection)."""

    host = models.CharField(max_length=100)
    docker_id = models.CharField(max_length=64)
    container = models.CharField(max_length=128, help_text="The row's uuid, or the container's name.")
    service = models.CharField(max_length=100, blank=True)
    owner = models.CharField(max_length=150, blank=True)
    collected = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["host", "docker_id"], name="one_sample_per_container")]


class SamplePage(models.Model):
    """The per-container series of /metrics in Prometheus' text format, rendered by the fleet collection
    that wrote the samples (observe.metrics.store_samples), in the same transaction: a scrape serves this
    one row as is, so its cost does not grow with the fleet. One row (pk 1)."""

    text = models.TextField(blank=True)
    samples = models.PositiveIntegerField(default=0)
    collected = models.DateTimeField(null=True)


class LoopStat(models.Model):
    """Totals of one reconciler loop (`reconcile`, `genisys`, `fleet`), summed over every process running it."""

    loop = models.CharField(max_length=32, unique=True)
    passes = models.BigIntegerField(default=0)
    failures = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0, help_text="Total duration of every pass.")
    last_seconds = models.FloatField(default=0)
    last_pass = models.DateTimeField(null=True)


class MetricPoint(ContainerMetrics):
    """One point of a container's metrics history: a raw sample of a fleet collection (`rolled` 0), or
    the roll-up of the raw samples of one bucket of `rolled` seconds starting at `t`.

    Counters (cpu_seconds, network and block bytes) keep their largest value in a roll-up, gauges
    (cpu_percent, memory, pids) their mean. Rows are written and deleted by the reconciler only
    (observe/history.py), in bulk; the API reads them.
    """

    rolled = models.PositiveIntegerField(default=0, help_text="0: a raw sample; else the bucket's seconds.")
    t = models.BigIntegerField(help_text="Unix time in seconds: when sampled, or the bucket's start.")
    host = models.CharField(max_length=100)
    container = models.CharField(max_length=128, help_text="The row's uuid, or the container's name.")
    service = models.CharField(max_length=100, blank=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE, db_index=False,
                              db_constraint=False, related_name="+")

    class Meta:
        indexes = [
            models.Index(fields=["container", "rolled", "t"], name="history_container"),
            models.Index(fields=["host", "rolled", "t"], name="history_host"),
            models.Index(fields=["service", "rolled", "t"], name="history_service",
                         condition=~models.Q(service="")),
            models.Index(fields=["rolled", "t"], name="history_age"),  # pruning
        ]


class HistoryState(ClaimKept, models.Model):
    """The one row that makes writing the history safe with several reconcilers: the next collection
    that may write samples (one writer per interval), how far raw samples are rolled up (moved by a
    conditional UPDATE in the roll-up's own transaction, so no bucket is rolled up twice), and the
    reconciler's claim on the roll-up."""

    next_sample = models.DateTimeField(null=True)
    rolled_until = models.BigIntegerField(default=0, help_text="Raw samples before this Unix time are rolled up.")
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)


class LogArchive(models.Model):
    """The last BOATLOAD_LOG_KEEP bytes of a container's output, kept in a Postgres large object
    (observe/logs.py) when it was deleted, exited or its host unregistered, and now and then while it
    runs, so its output outlives it."""

    class Reason(models.TextChoices):
        DELETED = "deleted"
        EXITED = "exited"
        SNAPSHOT = "snapshot"  # kept while it ran (BOATLOAD_LOG_SNAPSHOT_INTERVAL), in case it vanishes
        LOST = "lost"  # it vanished from its host: the last snapshot (or exit) is what is left
        UNREGISTERED = "unregistered"  # its host was unregistered

    container = models.OneToOneField("boatload.Container", on_delete=models.CASCADE, related_name="log_archive")
    oid = models.BigIntegerField(help_text="The large object holding the bytes.")
    size = models.BigIntegerField()
    truncated = models.BooleanField(help_text="The output was longer: only its end is kept.")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    created = models.DateTimeField(db_index=True)
