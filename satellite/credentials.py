"""The satellite's own keys, kept in its state folder (mode 0600), and its enrolment."""
import json
import logging
import os
import platform
import tempfile
import threading
from pathlib import Path

import requests
from django.conf import settings

from boatload.signing import HmacAuth

log = logging.getLogger("satellite")
_lock = threading.Lock()
_cache = {}


def path():
    return Path(settings.STATE_DIR) / "credentials.json"


def write_json_atomically(target, data, mode=0o600):
    """Write `data` as JSON to `target` through a temp file and a rename, never half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=2)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def load():
    """{"host", "api_url", "key_id", "keys": {key_id: secret}} or None before enrolment."""
    with _lock:
        try:
            stat = path().stat()
        except FileNotFoundError:
            return None
        if _cache.get("mtime") != stat.st_mtime_ns:
            _cache["data"] = json.loads(path().read_text())
            _cache["mtime"] = stat.st_mtime_ns
        return _cache["data"]


def secret_for(key_id):
    data = load()
    return (data or {}).get("keys", {}).get(key_id)


def host_facts():
    """What this host tells the API on enrolment and heartbeats."""
    from satellite import engine

    info = engine.client().info()
    return {
        "docker_version": info.get("ServerVersion", ""),
        "cpus": info.get("NCPU", os.cpu_count() or 0),
        "memory_bytes": info.get("MemTotal", 0),
        **{f"address_{scope}": address for scope, address in settings.ADDRESSES.items()},
    }


def enrol():
    """Trade the join token for this host's key id and secret, once; keep them in the state folder."""
    if load():
        return load()
    if not (settings.API_URL and settings.JOIN_TOKEN):
        raise SystemExit("This satellite is not enrolled: set BOATLOAD_API_URL and SATELLITE_JOIN_TOKEN "
                         f"(or provide {path()}).")
    body = {"token": settings.JOIN_TOKEN, "name": settings.NAME, "satellite_url": settings.URL,
            "labels": settings.LABELS, **host_facts()}
    response = requests.post(f"{settings.API_URL.rstrip('/')}/v1/host/enrol/", json=body, timeout=30)
    if response.status_code != 201:
        raise SystemExit(f"Enrolment refused by {settings.API_URL}: {response.status_code} {response.text[:300]}")
    answer = response.json()
    data = {"host": answer["host"], "api_url": settings.API_URL, "key_id": answer["key_id"],
            "keys": {answer["key_id"]: answer["secret"]}, "heartbeat_interval": answer.get("heartbeat_interval")}
    write_json_atomically(path(), data)
    log.info("enrolled as host %s (%s)", answer["host"], platform.node())
    return data


def heartbeat():
    """One signed heartbeat to the API; returns the HTTP status."""
    data = load()
    if not data or not data.get("api_url"):
        return None
    auth = HmacAuth(data["key_id"], data["keys"][data["key_id"]])
    response = requests.post(f"{data['api_url'].rstrip('/')}/v1/host/heartbeat/", json=host_facts(),
                             auth=auth, timeout=10)
    if response.status_code == 200:
        follow_key_rotation(data, response.json())
    return response.status_code


def follow_key_rotation(data, answer):
    """Take a key being rotated in (sign with it from now on), and drop keys the API no longer uses."""
    keys = dict(data["keys"])
    key_id = data["key_id"]
    if answer.get("next_key"):
        keys[answer["next_key"]["key_id"]] = answer["next_key"]["secret"]
        key_id = answer["next_key"]["key_id"]
    elif answer.get("key_id") == key_id:
        keys = {key_id: keys[key_id]}  # the rotation is done: the old key stops working here too
    if (keys, key_id) != (data["keys"], data["key_id"]):
        write_json_atomically(path(), {**data, "keys": keys, "key_id": key_id})
        log.info("signing key now %s (%d key(s) accepted)", key_id, len(keys))


def heartbeat_forever(stop_event):
    while not stop_event.is_set():
        try:
            status = heartbeat()
            if status and status != 200:
                log.warning("heartbeat answered %s", status)
        except Exception as exc:  # keep beating whatever one beat met
            log.warning("heartbeat failed: %s", exc)
        stop_event.wait(heartbeat_interval())


def heartbeat_interval():
    """SATELLITE_HEARTBEAT_INTERVAL when set; else what the API asked for at enrolment; else 10 s."""
    if settings.HEARTBEAT_INTERVAL:
        return settings.HEARTBEAT_INTERVAL
    return float((load() or {}).get("heartbeat_interval") or 10)
