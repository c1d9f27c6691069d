"""The output of service slots the connector removes (issue 17, item 3): kept in the state folder.

A rolling update, a scale-down or a rebalance removes slot containers (docker_backend); without this their
output went with them. Before a slot container is removed, it is stopped at once (a kill: its remove was
forced anyway), so its output is final, and its last SATELLITE_SLOT_LOG_KEEP bytes (stdout and stderr as
the engine interleaved them) are streamed through a ring buffer (common/ring.py) into
`slot-logs/<service>/<docker id>.log` beside a JSON sidecar (slot, name, version, why and when it was
removed). Nothing is held whole in memory: the engine is asked for at most that many lines (each at least
one byte), and the stream passes 64 KiB at a time. A service keeps its SATELLITE_SLOT_LOG_COUNT newest,
and none older than SATELLITE_SLOT_LOG_RETENTION (pruned whenever one is kept or listed). A container
whose output could not be read is removed all the same (logged): a rollout never waits on its logs.
"""
import json
import logging
import os
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import requests
from django.conf import settings

import docker
from common.ring import keep_last, pieces
from common.spec import DOCKER_UP
from connectors.definitions import SERVICE_NAME
from satellite import containers
from satellite.credentials import write_json_atomically
from satellite.engine import client

log = logging.getLogger("satellite.slot_logs")
DOCKER_ID = re.compile(r"^[0-9a-f]{64}$")
# Why a slot's container went: another version or definition took its slot; the slot itself went (a
# scale-down, a rebalance); it had died (or never started) and a fresh one replaces it.
REPLACED, REMOVED, DEAD = "replaced", "removed", "dead"


def folder(name):
    """The folder of a service's kept output; None for a name no service can have (nothing outside it)."""
    if not SERVICE_NAME.match(name or ""):
        return None
    return Path(settings.STATE_DIR) / "slot-logs" / name


def remove(item, name, reason):
    """Remove a listed container of service `name` (docker_backend's listing), its last output kept first."""
    keep = settings.SLOT_LOG_KEEP
    if keep <= 0:
        containers.container_action(item["id"], "remove")
        return
    if item["state"] in DOCKER_UP:
        _kill(item["id"])  # its output is final from here; the forced remove would have killed it too
    target = folder(name)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=target) as ring:
        try:
            total, start = _read(item["id"], keep, ring)
        except (docker.errors.DockerException, requests.RequestException, OSError) as error:
            log.warning("slot %s of %s: output not kept: %s", item["name"], name, error)
            total = None
        containers.container_action(item["id"], "remove")
        if total is not None:
            _store(target, item, reason, ring, total, start, keep)
    prune(name)


def _kill(container_id):
    try:
        client().api.kill(container_id)
    except docker.errors.APIError:  # not running any more, or gone: nothing to stop
        pass


def _read(container_id, keep, ring):
    stream = client().api.logs(container_id, stdout=True, stderr=True, stream=True, follow=False, tail=keep)
    try:
        return keep_last(stream, keep, ring)
    finally:
        stream.close()


def _store(target, item, reason, ring, total, start, keep):
    """The ring's bytes, in order, into `<id>.log` (written whole, then renamed), then its sidecar."""
    fd, partial = tempfile.mkstemp(dir=target, prefix=f".{item['id']}.")
    try:
        with os.fdopen(fd, "wb") as out:
            for piece in pieces(ring, total, start, keep):
                out.write(piece)
        os.replace(partial, target / f"{item['id']}.log")
    except BaseException:
        os.unlink(partial)
        raise
    labels = item.get("labels") or {}
    version = labels.get(containers.LABEL_VERSION, "")
    slot = labels.get(containers.LABEL_SLOT, "")
    write_json_atomically(target / f"{item['id']}.json", {
        "container": item["id"], "name": item["name"], "slot": int(slot) if slot.isdigit() else None,
        "version": int(version) if version.isdigit() else None, "created": item.get("created"),
        "reason": reason, "removed_at": datetime.now(UTC).isoformat(), "removed": time.time(),
        "size": min(total, keep), "truncated": total > keep}, mode=0o600)


def _sidecars(target):
    kept = []
    for path in target.glob("*.json"):
        try:
            kept.append((json.loads(path.read_text()), path))
        except (OSError, ValueError):  # pruned meanwhile, or half-written by a crash: not kept
            continue
    return sorted(kept, key=lambda pair: pair[0].get("removed", 0), reverse=True)


def _drop(path):
    for each in (path, path.with_suffix(".log")):
        try:
            each.unlink()
        except FileNotFoundError:
            pass


SWEEP_EVERY = 60  # seconds between sweeps of every service's folder for what is past retention
_swept = [0.0]  # when this process last swept


def prune(name):
    """Drop what service `name` keeps beyond its SATELLITE_SLOT_LOG_COUNT newest or past
    SATELLITE_SLOT_LOG_RETENTION: its own folder only, so a rolling update of many slots reads a few
    sidecars a removal. Every service's folder is swept for what is past retention at most once a
    minute (a service no slot of which is removed or listed any more)."""
    root = Path(settings.STATE_DIR) / "slot-logs"
    if not root.is_dir():
        return
    cutoff = time.time() - settings.SLOT_LOG_RETENTION
    everyone = time.monotonic() - _swept[0] >= SWEEP_EVERY
    if everyone:
        _swept[0] = time.monotonic()
    for target in root.iterdir() if everyone else [folder(name)]:
        if target is None or not target.is_dir():
            continue
        for index, (meta, path) in enumerate(_sidecars(target)):
            if meta.get("removed", 0) < cutoff or (target.name == name and index >= settings.SLOT_LOG_COUNT):
                _drop(path)


def kept(name):
    """The kept output of the service's removed containers, newest first (the sidecars)."""
    target = folder(name)
    if target is None or not target.is_dir():
        return []
    prune(name)
    return [{key: value for key, value in meta.items() if key != "removed"} for meta, _ in _sidecars(target)]


def kept_one(name, container_id):
    """(sidecar, path of the kept output) of one removed container of the service, or None."""
    target = folder(name)
    if target is None or not DOCKER_ID.match(container_id or ""):
        return None
    try:
        meta = json.loads((target / f"{container_id}.json").read_text())
    except (OSError, ValueError):
        return None
    path = target / f"{container_id}.log"
    if not path.exists() or meta.get("removed", 0) < time.time() - settings.SLOT_LOG_RETENTION:
        return None
    return meta, path
