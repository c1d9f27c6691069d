"""The satellite's own keys, kept in its state folder (mode 0600), and its enrolment."""
import json
import logging
import os
import platform
import tempfile
import threading
from pathlib import Path
from urllib.parse import urlsplit

import requests
from django.conf import settings

from common import sealing, signing, tls
from common.signing import HmacAuth
from satellite import engine, limits

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
    info = engine.client().info()
    return {
        "docker_version": info.get("ServerVersion", ""),
        "cpus": info.get("NCPU", os.cpu_count() or 0),
        "memory_bytes": info.get("MemTotal", 0),
        **{f"address_{scope}": address for scope, address in settings.ADDRESSES.items()},
        "saturated": limits.gate.saturated(),  # placement avoids a host whose shares are used up
    }


def tls_paths():
    folder = Path(settings.STATE_DIR) / "tls"
    return folder / "cert.pem", folder / "key.pem"


def serves_tls():
    return urlsplit(settings.URL).scheme == "https"


def check_transport():
    """HTTPS unless SATELLITE_URL says http, which only a loopback bind may (and it is logged loudly)."""
    scheme = urlsplit(settings.URL).scheme
    if scheme not in ("http", "https"):
        raise SystemExit(f"SATELLITE_URL must be https://… (or http://… on a loopback bind): {settings.URL}")
    if scheme == "http":
        if not (tls.is_loopback(settings.BIND) and tls.url_is_loopback(settings.URL)):
            raise SystemExit("Plain HTTP (SATELLITE_URL=http://…) is only allowed on a loopback SATELLITE_BIND "
                             "and URL; use https.")
        log.warning("!!! plain HTTP on %s: requests and answers cross unencrypted (loopback only) !!!", settings.URL)


def ensure_tls():
    """This satellite's key and self-signed certificate (made at first start); the certificate's PEM."""
    if not serves_tls():
        return ""
    host = urlsplit(settings.URL).hostname
    names = [host, *([settings.BIND] if settings.BIND not in ("0.0.0.0", "::") else []), settings.NAME]
    cert_path, key_path = tls_paths()
    pem = tls.ensure_self_signed(cert_path, key_path, names)
    log.info("serving HTTPS with certificate sha256 %s", tls.fingerprint(pem))
    return pem


def seal_key_path():
    return Path(settings.STATE_DIR) / "seal.key"


def seal_key(create=False):
    """The private half of this satellite's seal key pair (X25519); it never leaves the state folder."""
    target = seal_key_path()
    if not target.exists():
        if not create:
            raise sealing.SealError(f"no seal key in {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(sealing.private_key_to_pem(sealing.new_private_key()))
    return sealing.private_key_from_pem(target.read_bytes())


def api_session(api_url, fingerprint="", ca=""):
    """A session to the API that verifies it: by the pinned fingerprint, a CA file, or the system's CAs.

    Plain HTTP only to a loopback API (logged loudly): a join token never crosses a network unencrypted.
    """
    scheme = urlsplit(api_url).scheme
    if scheme == "http" and not tls.url_is_loopback(api_url):
        raise SystemExit(f"Refusing to talk to {api_url} over plain HTTP: the join token and keys would cross the "
                         "network in clear. Use https (and BOATLOAD_API_FINGERPRINT or BOATLOAD_API_CA).")
    session = requests.Session()
    session.trust_env = False
    if fingerprint:
        session.mount("https://", tls.PinnedAdapter(fingerprint_hex=fingerprint))
    elif ca:
        session.verify = ca
    return session


def enrol():
    """Trade the join token for this host's key id and secret, once; keep them in the state folder."""
    if load():
        return load()
    if not (settings.API_URL and settings.JOIN_TOKEN):
        raise SystemExit("This satellite is not enrolled: set BOATLOAD_API_URL and SATELLITE_JOIN_TOKEN "
                         f"(or provide {path()}).")
    fingerprint = tls.normal_fingerprint(settings.API_FINGERPRINT) if settings.API_FINGERPRINT else ""
    if urlsplit(settings.API_URL).scheme == "http":
        log.warning("!!! enrolling with %s over plain HTTP (loopback only) !!!", settings.API_URL)
    session = api_session(settings.API_URL, fingerprint, settings.API_CA)
    body = {"token": settings.JOIN_TOKEN, "name": settings.NAME, "satellite_url": settings.URL,
            "labels": settings.LABELS, "certificate": ensure_tls(),
            "seal_public_key": sealing.public_text(seal_key(create=True)), **host_facts()}
    try:
        response = session.post(f"{settings.API_URL.rstrip('/')}/v1/host/enrol/", json=body, timeout=30)
    except requests.exceptions.SSLError as exc:
        raise SystemExit(f"Enrolment aborted: {settings.API_URL} is not the API this join command trusts "
                         f"(TLS verification failed: {exc}); the join token was not sent.") from None
    if response.status_code != 201:
        raise SystemExit(f"Enrolment refused by {settings.API_URL}: {response.status_code} {response.text[:300]}")
    answer = response.json()
    data = {"host": answer["host"], "api_url": settings.API_URL, "key_id": answer["key_id"],
            "keys": {answer["key_id"]: answer["secret"]}, "heartbeat_interval": answer.get("heartbeat_interval"),
            "api_fingerprint": fingerprint, "api_ca": settings.API_CA}
    write_json_atomically(path(), data)
    log.info("enrolled as host %s (%s)", answer["host"], platform.node())
    return data


def channel():
    """How the API reaches this satellite, for a host enrolled before satellites served TLS (the API
    records it once, when it has none)."""
    if not serves_tls():
        return {}
    cert_path, _ = tls_paths()
    return {"satellite_url": settings.URL, "certificate": cert_path.read_text(),
            "seal_public_key": sealing.public_text(seal_key(create=True))}


# The heartbeat's session, kept from beat to beat with its connection (the API keeps an idle one open
# past a heartbeat interval): {(api url, fingerprint, CA): session}, one entry at most.
_kept = {}


def kept_session(api_url, fingerprint="", ca=""):
    key = (api_url, fingerprint, ca)
    if key not in _kept:
        drop_kept_session()
        _kept[key] = api_session(api_url, fingerprint, ca)
    return _kept[key]


def drop_kept_session():
    """Close the kept session (its connection with it): the next beat starts from a fresh one."""
    for session in _kept.values():
        session.close()
    _kept.clear()


def heartbeat():
    """One signed heartbeat to the API; returns the HTTP status ("refused" for a forged answer).

    Signs with the current key first, then with the other keys it holds when the API does not
    know it (a rotation superseded by a newer one). The answer must be signed back with the
    same key and bound to this request's nonce; else it is refused, logged, and changes nothing.
    """
    data = load()
    if not data or not data.get("api_url"):
        return None
    url = f"{data['api_url'].rstrip('/')}/v1/host/heartbeat/"
    facts = {**host_facts(), **channel()}
    session = kept_session(data["api_url"], data.get("api_fingerprint", ""), data.get("api_ca", ""))
    try:
        for used in [data["key_id"], *(k for k in data["keys"] if k != data["key_id"])]:
            response = session.post(url, json=facts, auth=HmacAuth(used, data["keys"][used]), timeout=10)
            if response.status_code != 401:
                break
    except requests.RequestException:
        drop_kept_session()
        raise
    if response.status_code != 200:
        return response.status_code
    try:
        signing.verify_response(response, key_id=used, secret=data["keys"][used],
                                request_nonce=response.request.headers[signing.HEADER_NONCE])
        follow_key_rotation(data, response.json(), used)
    except (signing.SignatureError, sealing.SealError, ValueError, KeyError, TypeError) as exc:
        log.warning("refused a heartbeat answer from %s (nothing changed): %s", data["api_url"], exc)
        return "refused"
    return response.status_code


def follow_key_rotation(data, answer, used):
    """Take a key being rotated in (sign with it from now on), and drop keys the API no longer uses.

    The new secret arrives sealed to this satellite's seal key: only this satellite can open it.
    """
    keys = dict(data["keys"])
    key_id = used
    next_key = answer.get("next_key")
    if next_key:
        new_id = next_key["key_id"]
        if new_id not in keys:
            keys[new_id] = sealing.open_box(seal_key(), next_key["sealed_secret"],
                                            sealing.next_key_aad(data["host"], new_id))
        key_id = new_id
    elif answer.get("key_id") == used:
        keys = {used: keys[used]}  # the rotation is done: the old key stops working here too
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
