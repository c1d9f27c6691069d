"""Logs that outlive their container (issue 17, item 3).

When BoatLoad removes a container (a delete), when the reconciler sees one exit (its output is
then final, and the container may vanish later: `lost`), when its host is unregistered, and every
BOATLOAD_LOG_SNAPSHOT_INTERVAL while it runs (so one that vanishes while running, `lost`, leaves its
output up to the last snapshot), the last BOATLOAD_LOG_KEEP bytes of its output (stdout and stderr
as the engine interleaved them) are kept in a Postgres large object, one per container
(observe.models.LogArchive), replaced each time. Everything streams: the satellite's answer passes through
a ring buffer of LOG_KEEP bytes in a temporary file (asked with `tail` = LOG_KEEP lines, so at most
that many lines travel, and never less than LOG_KEEP bytes when there are that many), then into the
large object in 64 KiB pieces (lo_put); reading it back is one lo_get per piece, each its own query,
so a slow reader holds no transaction open. Archives older than BOATLOAD_LOG_RETENTION are pruned by
the reconciler. Large objects are Postgres': with SQLite nothing is archived (logged once).
"""
import logging
import tempfile
from datetime import timedelta

import requests
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models.signals import post_delete
from django.http import StreamingHttpResponse
from django.utils import timezone

from boatload.satellite_client import SatelliteClient
from common.errors import BoatLoadError
from common.ring import keep_last, pieces
from observe.models import LogArchive

log = logging.getLogger("boatload.logs")
PIECE = 64 * 1024
FINAL = (LogArchive.Reason.DELETED, LogArchive.Reason.LOST, LogArchive.Reason.UNREGISTERED)
_warned = []


def supported():
    if connection.vendor == "postgresql":
        return True
    if not _warned:
        _warned.append(True)
        log.warning("log archives need Postgres (large objects); with %s no output is kept", connection.vendor)
    return False


def archive(*, row, reason):
    """Keep the end of `row`'s output; the LogArchive, or None (not on Postgres, or the host failed: logged).
    Replaces an earlier archive of the same container."""
    if not supported() or not row.host or not row.docker_id or not row.host.is_healthy:
        return None  # a host that is down is not waited for: the delete goes on (and says what it finds)
    keep = settings.LOG_KEEP
    try:
        upstream, chunks = SatelliteClient(row.host).logs(row.uuid, stdout=1, stderr=1, tail=keep)
    except BoatLoadError as error:
        log.warning("container %s: output not archived: %s", row.uuid, error.message)
        return None
    with tempfile.TemporaryFile() as ring:
        try:
            total, start = keep_last(chunks, keep, ring)
        except (BoatLoadError, requests.RequestException, OSError) as error:  # the stream broke off
            log.warning("container %s: output not archived: %s", row.uuid, getattr(error, "message", error))
            return None
        finally:
            upstream.close()
        try:
            return _store(row, reason, ring, total, start, keep)
        except IntegrityError:  # another process kept this container's first archive meanwhile: replace it
            return _store(row, reason, ring, total, start, keep)


def _store(row, reason, ring, total, start, keep):
    """The ring's bytes into a new large object that replaces the container's archive, in one transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        old = LogArchive.objects.select_for_update().filter(container=row).first()
        if reason == LogArchive.Reason.SNAPSHOT and old is not None and old.reason in FINAL:
            return old  # a snapshot read before the container went never replaces what was kept as it went
        cursor.execute("SELECT lo_create(0)")
        [oid] = cursor.fetchone()
        offset = 0
        for piece in pieces(ring, total, start, keep, PIECE):
            cursor.execute("SELECT lo_put(%s, %s, %s)", [oid, offset, piece])
            offset += len(piece)
        if old is not None:
            _unlink(cursor, old.oid)
        kept, _ = LogArchive.objects.update_or_create(container=row, defaults={
            "oid": oid, "size": offset, "truncated": total > offset, "reason": reason,
            "created": timezone.now()})
    return kept


def snapshot_due(rows, *, now=None):
    """Of `rows` (running containers), those whose output should be kept again now, oldest first, at most
    BOATLOAD_LOG_SNAPSHOTS_PER_PASS: a container can vanish while it runs (its host's engine lost it, someone
    removed it by hand) and take its output along, so the reconciler keeps it every
    BOATLOAD_LOG_SNAPSHOT_INTERVAL, starting once the container has run that long (0: never). One query."""
    interval = settings.LOG_SNAPSHOT_INTERVAL
    if not interval or not rows or not supported():
        return []
    cutoff = (now or timezone.now()) - timedelta(seconds=interval)
    kept = dict(LogArchive.objects.filter(container__in=rows).values_list("container_id", "created"))
    due = [row for row in rows if kept.get(row.pk, row.created) <= cutoff]
    due.sort(key=lambda row: kept.get(row.pk, row.created))
    return due[:settings.LOG_SNAPSHOTS_PER_PASS]


def mark_gone(rows, reason):
    """Say why the snapshots of `rows` are all that is left of their output (they vanished, or their host
    was unregistered); an archive of an exit or a delete keeps its reason (it is the final output)."""
    return LogArchive.objects.filter(container__in=rows, reason=LogArchive.Reason.SNAPSHOT).update(reason=reason)


def _unlink(cursor, oid):
    cursor.execute("SELECT lo_unlink(%s) FROM pg_largeobject_metadata WHERE oid = %s", [oid, oid])


def _chunks(kept):
    offset = 0
    while offset < kept.size:
        with connection.cursor() as cursor:
            cursor.execute("SELECT lo_get(%s, %s, %s)", [kept.oid, offset, PIECE])
            [piece] = cursor.fetchone()
        if not piece:
            return
        offset += len(piece)
        yield bytes(piece)


def archived_response(row):
    """The kept output of a container that is no longer on its host, marked archived; None without one."""
    kept = LogArchive.objects.filter(container=row).first() if supported() else None
    if kept is None:
        return None
    response = StreamingHttpResponse(_chunks(kept), content_type="text/plain; charset=utf-8")
    response["Content-Length"] = str(kept.size)
    response["X-BoatLoad-Archived"] = kept.reason
    response["X-BoatLoad-Archived-At"] = kept.created.isoformat()
    response["X-BoatLoad-Archive-Truncated"] = "true" if kept.truncated else "false"
    return response


def prune(now=None):
    """Drop archives older than BOATLOAD_LOG_RETENTION with their large objects; how many. Safe with several
    reconcilers: each row is deleted (and its object unlinked) by the one DELETE that took it."""
    if not supported():
        return 0
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.LOG_RETENTION)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"WITH gone AS (DELETE FROM {LogArchive._meta.db_table} WHERE created < %s RETURNING oid) "
                       "SELECT count(lo_unlink(oid)) FROM gone", [cutoff])
        return cursor.fetchone()[0]


def _on_delete(sender, instance, **kwargs):
    """A row that goes (its container's row deleted, its owner deleted) takes its large object along."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            _unlink(cursor, instance.oid)


def connect_signals():
    post_delete.connect(_on_delete, sender=LogArchive, dispatch_uid="observe.logs.unlink")
