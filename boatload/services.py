"""Work of the API server that crosses models or calls satellites."""
import base64
import hashlib
import logging
import re
import weakref
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime, timedelta
from functools import cache, partial

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import Count, Q
from django.utils import timezone
from rest_framework import exceptions

from boatload import loop
from boatload.api.serializers import ContainerCreateSerializer
from boatload.models import Container, Host, JoinToken
from boatload.satellite_client import SatelliteClient
from common import sealing
from common.errors import BadInput, BoatLoadError, Conflict, NoHealthyHost, NotFound, RemoteError
from common.remote import call_all
from common.spec import SCOPES, observed_state
from observe import audit, logs

CREATE_MARGIN = 2  # seconds: the satellite's answer must still reach us within SATELLITE_TIMEOUT
log = logging.getLogger("boatload")
HOST_FACTS = ("docker_version", "cpus", "memory_bytes", "address_internal", "address_cloud", "address_public",
              "saturated")


def host_enrol(*, token, name, satellite_url, labels=None, certificate="", seal_public_key="", **facts):
    """Turn a one-time join token into a Host with its own key id and secret.

    A reused, expired or unknown token is refused with 401 and nothing is created. The
    satellite's TLS certificate is recorded (and pinned from then on) and the public half of
    its seal key pair, to which rotated secrets are encrypted.
    """
    with audit.change("host.enrol", target=name):
        join = JoinToken.usable(token)
        if join is None:
            raise exceptions.AuthenticationFailed("The join token is unknown, expired or already used.")
        if Host.objects.filter(name=name).exists():
            raise Conflict(f"A host named {name} is already enrolled; unregister it first.",
                           detail={"field": "name"})
        key_id, secret = Host.new_credentials()
        host = Host.objects.create(
            name=name, satellite_url=satellite_url, labels=labels or {}, key_id=key_id, secret=secret,
            tls_certificate=certificate or "", seal_public_key=seal_public_key or "",
            last_seen=timezone.now(), state=Host.State.ACTIVE,
            **{k: v for k, v in facts.items() if k in HOST_FACTS and v is not None},
        )
        join.used = timezone.now()
        join.host = host
        join.save(update_fields=["used", "host"])
    if host.transport == "http-loopback":
        log.warning("!!! host %s enrolled over plain HTTP (%s): loopback only, nothing is encrypted !!!",
                    name, satellite_url)
    return host


def host_heartbeat(*, host, key_id=None, secret=None, signed_at=None, satellite_url=None, certificate="",
                   seal_public_key="", **facts):
    """Record that a satellite is alive; a down host comes back active, a draining one stays draining.

    One UPDATE of the host's row, whatever the heartbeat carries (a heartbeat costs one write:
    1,000 hosts every 10 s are 100 a second). Each conditional change is a CASE on the row as it
    is when written, so a drain, a reconciler's claim or a rotation asked meanwhile is never
    undone: the state turns active only from down; a heartbeat signed with the key being rotated
    in makes it the host's key only while it is still the pending one.

    `signed_at` (the signature's timestamp and nonce, as boatload.heartbeat verified them)
    makes the same UPDATE the replay check (_fresh_signature): a nonce counts once, and a
    signature far older than the host's newest one not at all; a replayed heartbeat changes
    nothing and is refused (401).

    A host enrolled before satellites served TLS has no certificate: its first heartbeat
    from an upgraded satellite records its https URL and certificate (and a missing seal
    key), once. A pinned certificate or seal key is never replaced by a heartbeat.

    `secret` (the one the signature was verified with) makes the UPDATE also require that `key_id`
    is still the host's key, or the key being rotated in, with that secret: a caller that verified
    with a remembered secret (boatload.heartbeat) needs no read first, and a key retired or a host
    unregistered meanwhile writes nothing (401).

    Returns `host` as this heartbeat left it: its keys, state and channel as the UPDATE returned
    them, its facts as this heartbeat reported them.
    """
    db = connections[DEFAULT_DB_ALIAS]  # once: each use of the `connection` proxy looks it up again
    update = _HostUpdate(db)
    now = timezone.now()
    update.set("last_seen", "%s", db.ops.adapt_datetimefield_value(now))
    update.set("state", "CASE WHEN state = %s THEN %s ELSE state END", Host.State.DOWN, Host.State.ACTIVE)
    for field in HOST_FACTS:
        if facts.get(field) is not None:
            update.set(field, "%s", _HOST_FACT_FIELDS[field].get_db_prep_save(facts[field], db))
    upgrade = bool(satellite_url and satellite_url.startswith("https://") and certificate)
    if upgrade and not host.tls_certificate:
        update.set("satellite_url", "CASE WHEN tls_certificate = '' THEN %s ELSE satellite_url END", satellite_url)
        update.set("tls_certificate", "CASE WHEN tls_certificate = '' THEN %s ELSE tls_certificate END", certificate)
    if seal_public_key and not host.seal_public_key:
        update.set("seal_public_key", "CASE WHEN seal_public_key = '' THEN %s ELSE seal_public_key END",
                   seal_public_key)
    swapping = bool(key_id and key_id == host.next_key_id)
    if swapping:  # while the key is still the pending one
        for column, then in (("key_id", "next_key_id"), ("secret", "next_secret"), ("next_key_id", "''"),
                             ("next_secret", "''")):
            update.set(column, f"CASE WHEN next_key_id = %s THEN {then} ELSE {column} END", key_id)
    if signed_at is not None:
        _fresh_signature(update, *signed_at, db=db)
    if secret is not None:
        update.also_where("((key_id = %s AND secret = %s) OR (next_key_id = %s AND next_secret = %s))",
                          key_id, secret, key_id, secret)
    written = update.run(host.pk, returning=HEARTBEAT_RETURNS)
    if written is None:
        raise exceptions.AuthenticationFailed("The request was already used (nonce replayed), or its host is gone.")
    if upgrade and not host.tls_certificate:
        log.warning("host %s upgraded: now reached at %s, its certificate pinned", host.name, satellite_url)
        host.satellite_url, host.tls_certificate = satellite_url, certificate
    elif upgrade and certificate != host.tls_certificate:
        log.warning("host %s reports another certificate than the pinned one; ignored (re-enrol to change it)",
                    host.name)
    host.seal_public_key = host.seal_public_key or seal_public_key or ""
    if swapping:
        host.key_id, host.secret, host.next_key_id, host.next_secret = host.next_key_id, host.next_secret, "", ""
    if host.state == Host.State.DOWN:
        host.state = Host.State.ACTIVE
    host.last_seen = now
    for field in HOST_FACTS:
        if facts.get(field) is not None:
            setattr(host, field, facts[field])
    for field, value in zip(HEARTBEAT_RETURNS, written, strict=True):  # the row as written, not as read
        setattr(host, field, value)
    return host


# What the heartbeat's UPDATE returns of the row (RETURNING): what its answer and its caller's next check use.
HEARTBEAT_RETURNS = ("name", "state", "key_id", "secret", "next_key_id", "next_secret", "satellite_url",
                     "tls_certificate", "seal_public_key")
HEARTBEAT_BUCKET = 10  # seconds: heartbeats signed up to 10-20 s before the newest one still count, once each


_HOST_FACT_FIELDS = {field: Host._meta.get_field(field) for field in HOST_FACTS}


@cache
def _quoted(name):
    """A column or table name as the database quotes it, once per name (a process has one database)."""
    return connection.ops.quote_name(name)


class _HostUpdate:
    """One UPDATE of one host row, written as SQL: the ORM spent ~5 ms of CPU building the heartbeat's
    (a CASE per conditional column), more than the whole heartbeat may cost. Every SET sees the row as
    it is when written (SQL evaluates them all on the old row), as the ORM's CASEs did."""

    def __init__(self, db):
        self.db = db
        self.sets, self.set_params, self.where, self.where_params = [], [], [], []

    def set(self, column, sql, *params):
        self.sets.append(f"{_quoted(column)} = {sql}")
        self.set_params.extend(params)

    def also_where(self, sql, *params):
        self.where.append(sql)
        self.where_params.extend(params)

    def run(self, pk, returning):
        """The `returning` columns of the row as written, or None when the conditions refused it."""
        conditions = " AND ".join(["id = %s", *self.where])
        sql = (f"UPDATE {_quoted(Host._meta.db_table)} SET {', '.join(self.sets)} "
               f"WHERE {conditions} RETURNING {', '.join(returning)}")
        params = [*self.set_params, pk, *self.where_params]
        with self.db.cursor() as cursor:
            _execute_prepared(self.db, cursor, sql, params)
            return cursor.fetchone()


# Postgres prepared statements of the heartbeat's UPDATE, by its SQL (a few shapes: which facts a satellite
# sends, a rotation, an upgrade): (name, PREPARE, EXECUTE). Each connection prepares a shape once
# (_prepared_on); from then on a heartbeat sends `EXECUTE name(params)`, so Postgres parses and plans the
# long UPDATE (a CASE per conditional column) once per connection, not 100 times a second.
_statements = {}
_prepared_on = weakref.WeakKeyDictionary()  # psycopg2 connection: names of the statements prepared on it
_STATEMENTS_MAX = 64


def _execute_prepared(db, cursor, sql, params):
    """`cursor.execute(sql, params)`, through a statement prepared on the connection when it can be: Postgres,
    BOATLOAD_DB_PREPARED on, in autocommit (inside a transaction a failed PREPARE would abort it; tests wrap
    theirs in one)."""
    if (db.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS or db.in_atomic_block
            or not db.get_autocommit()):
        cursor.execute(sql, params)
        return
    statement = _statements.get(sql)
    if statement is None:
        if len(_statements) >= _STATEMENTS_MAX:
            cursor.execute(sql, params)
            return
        # Named by its SQL: a name met on the connection (42P05, e.g. one a pooler's server connection keeps
        # from another process) is then this very statement, and two threads making one shape agree.
        name = f"boatload_hb_{hashlib.sha256(sql.encode()).hexdigest()[:24]}"
        numbered = iter(range(1, len(params) + 1))
        statement = (name, f"PREPARE {name} AS " + re.sub("%s", lambda _: f"${next(numbered)}", sql),
                     f"EXECUTE {name} ({', '.join(['%s'] * len(params))})")
        _statements[sql] = statement
    name, prepare, execute = statement
    raw = db.connection
    prepared = _prepared_on.get(raw)
    if prepared is None:
        prepared = _prepared_on[raw] = set()
    if name not in prepared:
        try:
            cursor.execute(prepare)
        except DatabaseError as error:  # Django's, wrapping psycopg2's
            if getattr(error.__cause__, "pgcode", None) != "42P05":  # duplicate_prepared_statement: it is there
                raise
        prepared.add(name)
    try:
        cursor.execute(execute, params)
    except DatabaseError as error:  # psycopg2 makes this one an OperationalError: not an outage here
        if getattr(error.__cause__, "pgcode", None) != "26000":  # invalid_sql_statement_name: it is gone
            raise
        prepared.discard(name)  # e.g. DISCARD ALL on the connection: this once as it is
        cursor.execute(sql, params)


def _fresh_signature(update, timestamp, nonce, *, db):
    """The replay check of a heartbeat, in its own UPDATE: narrows `update` to a fresh signature and records it.

    Signatures fall into HEARTBEAT_BUCKET-second buckets; the row keeps the newest bucket and the
    nonces seen in it and in the one before (space-delimited). A signature of an older bucket is
    refused (the skew window lets the signer's clock be 300 s off, not the same satellite's
    heartbeats 20 s out of order); one of the two kept buckets is accepted once per nonce. The
    condition is re-checked on the row as it is when a concurrent heartbeat committed, so the same
    nonce never counts twice.
    """
    bucket, token = timestamp // HEARTBEAT_BUCKET, f" {nonce} "
    seen = f"%{db.ops.prep_for_like_query(token)}%"  # LIKE as the ORM's __contains writes it
    update.also_where("(heartbeat_at IS NULL OR heartbeat_at < %s"
                      " OR (heartbeat_at = %s AND NOT (heartbeat_nonces LIKE %s ESCAPE '\\'))"
                      " OR (heartbeat_at = %s AND NOT (heartbeat_nonces_before LIKE %s ESCAPE '\\')))",
                      bucket, bucket, seen, bucket + 1, seen)
    appended = f"{nonce} "
    update.set("heartbeat_nonces", "CASE WHEN heartbeat_at = %s THEN heartbeat_nonces || %s"
               " WHEN heartbeat_at = %s THEN heartbeat_nonces ELSE %s END", bucket, appended, bucket + 1, token)
    update.set("heartbeat_nonces_before", "CASE WHEN heartbeat_at = %s THEN heartbeat_nonces_before"
               " WHEN heartbeat_at = %s THEN heartbeat_nonces_before || %s"
               " WHEN heartbeat_at = %s THEN heartbeat_nonces ELSE ' ' END", bucket, bucket + 1, appended, bucket - 1)
    update.set("heartbeat_at", "CASE WHEN heartbeat_at >= %s THEN heartbeat_at ELSE %s END", bucket, bucket)


def host_rotate_key(*, host):
    """Start rotating a host's key: the next heartbeat answer hands the satellite a new one, sealed to
    its seal key. A rotation asked while one is pending supersedes it (the satellite falls back to
    its confirmed key when the API no longer knows the superseded one, and takes the newest)."""
    with audit.change("host.rotate-key", target=host.name):
        if not host.seal_public_key:
            raise Conflict(f"Host {host.name} was enrolled without a seal key, so a new secret can not be "
                           "delivered to it privately; re-enrol it.", detail={"host": host.name})
        next_key_id, next_secret = Host.new_credentials()
        Host.objects.filter(pk=host.pk).update(next_key_id=next_key_id, next_secret=next_secret)
    host.refresh_from_db()
    return host


def heartbeat_answer(host, key_id=None):
    """What a satellite learns from a heartbeat: its key, and a new one while a rotation runs.

    The new secret travels only sealed to the satellite's seal key (see common.sealing),
    so a thief of the old key who signs a heartbeat learns nothing from the answer.
    """
    answer = {"host": host.name, "state": host.state, "key_id": host.key_id}
    if host.next_key_id and host.seal_public_key and key_id != host.next_key_id:
        answer["next_key"] = {"key_id": host.next_key_id,
                              "sealed_secret": sealing.seal(host.seal_public_key, host.next_secret,
                                                            sealing.next_key_aad(host.name, host.next_key_id))}
    return answer


def host_unregister(*, host):
    """Forget a host: its keys stop working at once, and no row of it stays deployed or pending.

    Its containers are marked `lost` (BoatLoad no longer knows or manages them; the host may be
    gone or may still run them), with the reason, before the host row goes. First, while its
    satellite still answers, the end of each deployed container's output is kept (observe/logs.py),
    so it stays readable once the host is gone; a host that is down keeps what was kept before.
    """
    deployed = list(Container.objects.filter(host=host, state__in=Container.DEPLOYED).select_related("host"))
    for row in deployed:  # outside the transaction: reading a host's logs takes time (one archive each)
        logs.archive(row=row, reason="unregistered")
    with audit.change("host.unregister", target=host.name):
        Container.objects.filter(host=host, state__in=(*Container.DEPLOYED, Container.State.PENDING)).update(
            state=Container.State.LOST, last_error=f"Host {host.name} was unregistered.", updated=timezone.now())
        logs.mark_gone(deployed, reason="unregistered")
        host.delete()


def hosts_mark_silent_down():
    """Mark active hosts whose satellite missed its heartbeats as down; return how many."""
    cutoff = timezone.now() - timedelta(seconds=settings.HOST_DOWN_AFTER)
    return (Host.objects.filter(state=Host.State.ACTIVE)
            .filter(Q(last_seen__lt=cutoff) | Q(last_seen__isnull=True))
            .update(state=Host.State.DOWN))


def _api_trust_env():
    """What the join command tells the satellite to verify the API with: its certificate's fingerprint."""
    fingerprint = settings.PUBLIC_FINGERPRINT
    return {"BOATLOAD_API_FINGERPRINT": fingerprint} if fingerprint else {}


def satellite_join_command(token):
    """The one `docker run` line that starts a satellite on a new host and enrols it with `token`.

    HOST_ADDRESS is the new host's address as the API reaches it; the operator sets it. The
    satellite serves HTTPS with its own certificate and verifies the API by the fingerprint
    carried here (BOATLOAD_PUBLIC_FINGERPRINT) before it sends the token.
    """
    trust = "".join(f"-e {k}={v} " for k, v in _api_trust_env().items())
    return ("docker run -d --name boatload-satellite --restart unless-stopped --network host --user root "
            "-v /var/run/docker.sock:/var/run/docker.sock -v boatload-satellite:/var/lib/boatload "
            f"-e BOATLOAD_API_URL={settings.PUBLIC_URL} {trust}-e SATELLITE_JOIN_TOKEN={token} "
            '-e SATELLITE_BIND="$HOST_ADDRESS" -e SATELLITE_URL="https://$HOST_ADDRESS:7051" '
            '-e SATELLITE_ADDRESS_INTERNAL="$HOST_ADDRESS" '
            f"{settings.SATELLITE_IMAGE} satellite")


def satellite_join_command_venv(token):
    """The same for a virtualenv install (systemd: docker/boatload-satellite.service)."""
    trust = "".join(f"{k}={v} " for k, v in _api_trust_env().items())
    return (f"BOATLOAD_API_URL={settings.PUBLIC_URL} {trust}SATELLITE_JOIN_TOKEN={token} "
            'SATELLITE_BIND="$HOST_ADDRESS" SATELLITE_URL="https://$HOST_ADDRESS:7051" '
            'SATELLITE_ADDRESS_INTERNAL="$HOST_ADDRESS" .venv/bin/python -m satellite')


# ---- placement ---------------------------------------------------------------------------------

def hosts_available(*, host_labels=None):
    """Active, heartbeating hosts whose labels include every `host_labels` pair."""
    hosts_mark_silent_down()
    hosts = [host for host in Host.objects.filter(state=Host.State.ACTIVE) if host.is_healthy]
    wanted = host_labels or {}
    return [host for host in hosts if all(host.labels.get(k) == v for k, v in wanted.items())]


def hosts_for_instances(*, count, host=None, host_labels=None):
    """One host per instance: the named host, or the least loaded, spreading evenly as it goes."""
    if host:
        chosen = Host.objects.filter(name=host).first()
        if chosen is None:
            raise BadInput("host", f"no host named {host}")
        if chosen.state != Host.State.ACTIVE:
            raise NoHealthyHost(f"Host {host} is {chosen.state}.", detail={"host": host})
        return [chosen] * count
    candidates = hosts_available(host_labels=host_labels)
    if not candidates:
        raise NoHealthyHost(detail={"host_labels": host_labels or {}})
    # A satellite that said its shares are used up takes new work only when every other one did too.
    candidates = [host for host in candidates if not host.saturated] or candidates
    # What each host runs or is being given (pending: creates of requests running now), so concurrent
    # requests and earlier ones all count toward an even spread.
    load = dict(Container.objects.filter(host__in=candidates, state__in=(*Container.DEPLOYED, Container.State.PENDING))
                .order_by().values_list("host").annotate(n=Count("id")))
    placed = []
    for _ in range(count):
        best = min(candidates, key=lambda h: (load.get(h.pk, 0), h.name))
        load[best.pk] = load.get(best.pk, 0) + 1
        placed.append(best)
    return placed


# ---- containers --------------------------------------------------------------------------------

def endpoints_for(host, ports):
    """Murano endpoints: for each published port, one per scope from host up to the port's scope.

    A port may be bound twice (loopback for the host scope, the host's address for wider
    scopes); each endpoint uses the binding that serves its scope.
    """
    by_port = {}
    for binding in ports:
        by_port.setdefault((binding["port"], binding["protocol"]), []).append(binding)
    endpoints = []
    for (container_port, protocol), bindings in sorted(by_port.items()):
        declared = bindings[0].get("scope", "host")
        loopback = [b for b in bindings if b["host_ip"] in ("127.0.0.1", "0.0.0.0", "::", "")]
        wide = [b for b in bindings if b["host_ip"] != "127.0.0.1"]
        for scope in SCOPES[: SCOPES.index(declared) + 1]:
            address = host.address_for(scope)
            binding = (loopback if scope == "host" else wide or bindings or [None])[0]
            if address and binding:
                endpoints.append({"address": address, "port": binding["host_port"], "scope": scope,
                                  "portScope": declared, "containerPort": container_port, "protocol": protocol})
    return endpoints


def _published_with_scope(spec, published):
    scopes = {(p["port"], p["protocol"]): p["scope"] for p in spec.get("ports", [])}
    return [{**p, "scope": scopes.get((p["port"], p["protocol"]), "host")} for p in published]


def container_intent(*, owner, spec, host, service="", name=None):
    """Write the row first: a pending container on its chosen host, named `name` or bl-<its id>."""
    script = base64.b64decode(spec["script"]).decode(errors="replace") if spec.get("script") else ""
    stored = {k: v for k, v in spec.items() if k != "script"}
    row = Container(owner=owner, host=host, image_name=spec["image_name"], image_tag=spec.get("image_tag", "latest"),
                    spec=stored, script=script, script_name=spec.get("scriptname", "") if script or
                    spec.get("scripturl") else "", service=service)
    row.name = name or f"boatload-{row.uuid}"
    row.save()
    return row


def create_budget():
    """Seconds a satellite may spend on a create: it gives up (and cleans up) before we stop waiting."""
    return max(1.0, settings.SATELLITE_TIMEOUT - CREATE_MARGIN)


def _satellite_create(row, spec, as_staff):
    """Ask the row's satellite to create it; return (answer, error). Runs in worker threads: no ORM."""
    body = {**spec, "name": row.name, "as_staff": as_staff, "start": True, "budget": create_budget(),
            "identity": {"container": str(row.uuid), "owner": row.owner.username, "service": row.service}}
    try:
        return SatelliteClient(row.host).create_container(body), None
    except BoatLoadError as error:
        if isinstance(error, RemoteError) and error.outcome_unknown:
            _remove_quietly(row)  # never leave a twin of a create whose outcome we do not know
        return None, error


def _remove_quietly(row):
    """Remove whatever carries this row's label on its host (the satellite never goes by name)."""
    try:
        SatelliteClient(row.host).remove_container(row.uuid)
    except BoatLoadError:
        pass  # the reconciler reaps it after the grace period


def _record_created(row, spec, answer, error):
    """Record a create's outcome, only while the row is still pending: a row deleted meanwhile stays
    deleted, and what its create made is removed now (the reaper would, after the grace)."""
    pending = Container.objects.filter(pk=row.pk, state=Container.State.PENDING)
    if error is not None:
        row.state, row.last_error = Container.State.FAILED, str(getattr(error, "message", error))[:2000]
        pending.update(state=row.state, last_error=row.last_error, updated=timezone.now())
        return
    row.docker_id = answer["id"]
    row.ports = _published_with_scope(spec, answer.get("ports") or [])
    row.endpoints = endpoints_for(row.host, row.ports)
    row.state = Container.State.RUNNING
    if not pending.update(docker_id=row.docker_id, ports=row.ports, endpoints=row.endpoints, state=row.state,
                          updated=timezone.now()):
        row.refresh_from_db()  # settled meanwhile: deleted by its owner, or adopted by the reconciler
        if row.state == Container.State.DELETED:
            _remove_quietly(row)


def container_create_checked(*, user, fields):
    """Check a create request as the API and the console take it, and write its rows.

    `fields` are the request's fields (a template's merged under them); returns
    (placement, spec, rows). Refused before any row is written: bad input (400 naming the
    field), staff-only parts asked by a user (403), no host to place on (503). The rows and the
    request's audit entry are written in one transaction (also when refused: a failed entry).
    """
    with audit.change("container.create", target_type="container") as entry:
        data = ContainerCreateSerializer(data=dict(fields), context={"user": user})
        data.is_valid(raise_exception=True)  # the template merged, sizes and the staff policy checked
        placement, spec = data.placement_and_spec()
        rows = container_intents(owner=user, spec=spec, host=placement.get("host"),
                                 host_labels=placement.get("host_labels"), instances=placement.get("instances", 1))
        entry.target = str(rows[0].uuid) if len(rows) == 1 else ""
        entry.detail = {"containers": [str(row.uuid) for row in rows]}
    for row in rows:
        row.audit_entry = entry  # container_create_each completes it with the outcome
    return placement, spec, rows


def container_create_request(*, user, fields):
    """container_create_checked, then every create: (placement, [(row, error or None)] in row order)."""
    placement, spec, rows = container_create_checked(user=user, fields=fields)
    done = dict(container_create_each(rows, spec, as_staff=user.is_staff))
    return placement, [(row, done[row]) for row in rows]


def container_intents(*, owner, spec, host=None, host_labels=None, instances=1, service=""):
    """Place `instances` containers and write their pending rows (nothing is asked of a host yet)."""
    placed = hosts_for_instances(count=instances, host=host, host_labels=host_labels)
    names = [spec.get("name")] if instances == 1 else [f"{spec['name']}-{n}" if spec.get("name") else None
                                                        for n in range(instances)]
    return [container_intent(owner=owner, spec=spec, host=target, service=service, name=name)
            for target, name in zip(placed, names)]


def container_create_each(rows, spec, *, as_staff=False):
    """Ask each row's satellite to create it, in parallel; yield (row, error or None) as each ends,
    its outcome recorded first (so a caller can show progress while the others still run); the
    request's audit entry gets the outcome of all."""
    errors = []
    for row, error in _create_each(rows, spec, as_staff):
        errors.append(error)
        yield row, error
    _audit_outcomes(rows, errors)


def _create_each(rows, spec, as_staff):
    if len(rows) == 1:
        answer, error = _satellite_create(rows[0], spec, as_staff)
        _record_created(rows[0], spec, answer, error)
        yield rows[0], error
        return
    # One pool per host, each of up to CREATE_PARALLELISM creates: a slow or frozen host holds only its
    # own rows, never the workers the other hosts' creates need (one shared pool ended up all waiting on it).
    by_host = {}
    for row in rows:
        by_host.setdefault(row.host_id, []).append(row)
    pools = [ThreadPoolExecutor(max_workers=min(len(group), settings.CREATE_PARALLELISM),
                                thread_name_prefix="create") for group in by_host.values()]
    try:
        futures = {pool.submit(_satellite_create, row, spec, as_staff): row
                   for pool, group in zip(pools, by_host.values()) for row in group}
        for future in as_completed(futures):
            row = futures[future]
            answer, error = future.result()
            _record_created(row, spec, answer, error)
            yield row, error
    finally:
        for pool in pools:
            pool.shutdown(wait=True)


def _audit_outcomes(rows, errors):
    """Complete the create's audit entry once every host answered: ok, partial or failed."""
    entry = getattr(rows[0], "audit_entry", None) if rows else None
    if entry is None:
        return
    failed = [error for error in errors if error is not None]
    result = "ok" if not failed else "failed" if len(failed) == len(rows) else "partial"
    audit.outcome(entry, result=result, message=getattr(failed[0], "message", str(failed[0])) if failed else "",
                  failed=len(failed))


def container_create(*, owner, spec, as_staff=False, host=None, host_labels=None, instances=1, service=""):
    """Create `instances` containers; return [(row, error or None)], rows written before any call."""
    rows = container_intents(owner=owner, spec=spec, host=host, host_labels=host_labels, instances=instances,
                             service=service)
    done = dict(container_create_each(rows, spec, as_staff=as_staff))
    return [(row, done[row]) for row in rows]


def container_create_raw(*, owner, body, host=None, host_labels=None):
    """Staff only: create from a Docker create body as is (the satellite still refuses the dangerous parts)."""
    with audit.change("container.raw", target_type="container") as entry:
        [target] = hosts_for_instances(count=1, host=host, host_labels=host_labels)
        image, _, tag = body.get("Image", "").partition(":")
        row = container_intent(owner=owner, spec={"image_name": image, "image_tag": tag or "latest", "raw": body},
                               host=target)
        entry.target = str(row.uuid)
    try:
        answer = SatelliteClient(target).create_container_raw({
            "body": body, "name": row.name, "as_staff": True,
            "identity": {"container": str(row.uuid), "owner": owner.username}})
    except BoatLoadError as error:
        row.record_failure(error.message)
        audit.outcome(entry, result="failed", message=error.message)
        raise
    _record_created(row, {}, answer, None)
    return row


def container_delete(*, row):
    """Keep the end of its output, remove from its host what carries this row's label (idempotent) and
    mark the row deleted.

    A row that never got a container is deleted without any call: should a create whose
    outcome was unknown have made one after all, it is an orphan and the reconciler reaps it.
    """
    on_host = row.host and row.docker_id and row.state != Container.State.DELETED
    if on_host and row.state in Container.DEPLOYED:
        logs.archive(row=row, reason="deleted")  # its output outlives it (observe/logs.py); outside the transaction
    error = None
    if on_host:  # called before the audit transaction opens: a slow host never holds one (nor SQLite's writer)
        _, error = _attempt(partial(SatelliteClient(row.host).remove_container, row.uuid))
    with audit.change("container.delete", target=row.uuid):
        if error is not None:
            raise error
        row.state = Container.State.DELETED
        row.save(update_fields=["state", "updated"])
        logs.mark_gone([row], reason="deleted")  # its host did not answer for the archive: the last snapshot


def container_action(*, row, action, timeout=None):
    """start, stop or restart on its host, then record the observed state."""
    answer, error = _attempt(_action_call(row, action, timeout))
    return _record_action(row, action, answer, error)


def container_bulk(*, rows, action):
    """start, stop, restart or delete each row, each recorded and audited as the single operation does it;
    [(row, error or None)] in their order. The stops run on their hosts in parallel: one of a container that
    ignores SIGTERM takes its whole grace, and fifty of them one after the other would be minutes."""
    if action == "delete":  # a removal is quick, and keeping each one's output reads the database
        return [(row, _attempt(partial(container_delete, row=row))[1]) for row in rows]
    calls = [(row, _action_call(row, action, None)) for row in rows]
    outcomes = call_all(calls, timeout=settings.SATELLITE_TIMEOUT + settings.SATELLITE_STOP_GRACE)
    return [(row, _attempt(partial(_record_action, row, action, answer, error))[1])
            for row, answer, error in outcomes]


def _action_call(row, action, timeout):
    """The host's part of an action, as a call that touches no database (common.remote.call_all)."""
    if not row.host or row.state not in Container.DEPLOYED:
        return partial(_raise, Conflict(f"Container {row.uuid} is {row.state}; it can not {action}."))
    # A stop may take its whole grace period before the engine kills: give the call that time too.
    grace = settings.SATELLITE_STOP_GRACE if timeout is None else timeout
    client = SatelliteClient(row.host, timeout=settings.SATELLITE_TIMEOUT + grace)
    return partial(client.container_action, row.uuid, action, timeout=timeout)


def _record_action(row, action, answer, error):
    """Audit the action and record the state its host observed. The host was called before this
    transaction: a stop's grace never holds it (nor SQLite's one writer)."""
    with audit.change(f"container.{action}", target=row.uuid):
        if error is not None:
            raise error
        row.observe(answer["state"])
    return answer["state"]


def _attempt(call):
    """(its answer, None) or (None, the BoatLoadError it raised)."""
    try:
        return call(), None
    except BoatLoadError as error:
        return None, error


def _raise(error):
    raise error


def container_docker_state(*, row):
    """Docker's State of the container, or {} before it exists on its host (404 once it is gone)."""
    if not row.host or not row.docker_id:
        return {}
    docker_state = SatelliteClient(row.host).container_state(row.uuid)
    if row.state in Container.DEPLOYED:
        row.observe(docker_state)
    return docker_state


def container_connection(*, source, target, port, protocol):
    """The nearest endpoint of `target` for `port`/`protocol`, as seen from `source` (Murano)."""
    if target.state not in Container.DEPLOYED or not target.host or not source.host:
        raise Conflict(f"Container {target.uuid} is not deployed.",
                       detail={"state": target.state})
    candidates = [e for e in target.endpoints if e["containerPort"] == port and e["protocol"] == protocol]
    if not candidates:
        raise NotFound(f"Container {target.uuid} exposes no {protocol} port {port}.")
    if source.host_id == target.host_id:
        wanted = ["host"]
    elif source.host.labels.get("group") and source.host.labels.get("group") == target.host.labels.get("group"):
        wanted = ["internal", "cloud", "public"]
    else:
        wanted = ["cloud", "public"]
    for scope in wanted:
        for endpoint in candidates:
            if endpoint["scope"] == scope:
                return endpoint
    raise NotFound(f"Port {port}/{protocol} of {target.uuid} is not reachable from the host of {source.uuid} "
                   f"(published for scope {candidates[0]['portScope']}).")


# ---- reads of one container on its host --------------------------------------------------------

def container_inspect(*, row):
    return SatelliteClient(row.host).inspect_container(row.uuid)


def container_metrics(*, row):
    return SatelliteClient(row.host).stats(row.uuid)


def container_script(*, row):
    """The script: as the row keeps it, or read back from the container when the satellite fetched it."""
    if not row.script_name:
        raise NotFound("This container was created without a script.")
    if not row.script and row.docker_id:
        return SatelliteClient(row.host).script(row.uuid)
    return {"scriptname": row.script_name, "script": row.script}


def container_changes(*, row, limit, cursor=None):
    """(a page of the engine's diff, the next cursor or None)."""
    return SatelliteClient(row.host).changes(row.uuid, limit=limit, cursor=cursor)


def container_files(*, row, limit, cursor=None):
    """(a page of the changed regular files, the next cursor or None)."""
    return SatelliteClient(row.host).files(row.uuid, limit=limit, cursor=cursor)


def container_logs(*, row, **query):
    """(response, chunks) of the container's output (`as_user` among the query); the caller closes it."""
    return SatelliteClient(row.host).logs(row.uuid, **query)


def container_file(*, row, path=None, number=None, as_user=None):
    """(response, chunks) of one changed file, by path or by number, streamed for `as_user`."""
    client = SatelliteClient(row.host)
    if number is None:
        return client.file(row.uuid, path, as_user=as_user)
    return client.file_by_number(row.uuid, number, as_user=as_user)


def container_archive(*, row, compression="", as_user=None):
    """(response, chunks) of every changed file in one tar, streamed for `as_user`."""
    return SatelliteClient(row.host).archive(row.uuid, compression=compression, as_user=as_user)


# ---- cluster-wide reads ------------------------------------------------------------------------

def cluster_calls(calls, *, timeout=None):
    """common.remote.call_all within BOATLOAD_CLUSTER_READ_TIMEOUT (or `timeout`)."""
    return call_all(calls, timeout=settings.CLUSTER_READ_TIMEOUT if timeout is None else timeout)


def cluster_read(read):
    """`read(client)` of every active host's satellite in parallel, within the cluster-read deadline;
    (items tagged with their host, failures)."""
    hosts = hosts_available()
    clients = [(host, SatelliteClient(host, timeout=settings.CLUSTER_READ_TIMEOUT)) for host in hosts]
    items, failures = [], []
    for host, answer, error in cluster_calls([(host, partial(read, client)) for host, client in clients]):
        if error is not None:
            failures.append({"host": host.name, "code": error.code, "message": error.message})
        else:
            items.extend({**item, "host": host.name} for item in answer)
    return items, failures


def containers_cluster(*, user):
    """BoatLoad containers as every active host sees them now (a user's own only; staff: all)."""
    labels = [] if user.is_staff else [f"boatload.owner={user.username}"]
    return cluster_read(lambda client: client.list_containers(labels=labels))


def images_cluster():
    return cluster_read(lambda client: client.images())


def hosts_usage(*, hosts):
    """What each host's BoatLoad containers use now, from its satellite's `/stats` (the metrics
    `/v1/container/<id>/metrics` gives one at a time), every host asked in parallel within the
    cluster-read deadline. Hosts marked down are not asked.

    Returns ({host name: {"cpu_percent", "memory_usage", "containers"}}, failures), each failure
    {"host", "code", "message"}; cpu_percent is in % of one CPU, summed over the running containers.
    """
    asked = [host for host in hosts if host.state != Host.State.DOWN]
    clients = [(host, SatelliteClient(host, timeout=settings.CLUSTER_READ_TIMEOUT)) for host in asked]
    usage, failures = {}, []
    for host, answer, error in cluster_calls([(host, client.stats_all) for host, client in clients]):
        if error is not None:
            failures.append({"host": host.name, "code": error.code, "message": error.message})
            continue
        if not isinstance(answer, dict):
            failures.append({"host": host.name, "code": "satellite_bad_answer",
                             "message": f"Satellite {host.name} answered /stats with no metrics."})
            continue
        running = [m for m in answer.values() if isinstance(m, dict) and m.get("running")]
        usage[host.name] = {"cpu_percent": round(sum(m.get("cpu_percent") or 0 for m in running), 2),
                            "memory_usage": sum(m.get("memory_usage") or 0 for m in running),
                            "containers": len(running)}
    return usage, failures


# ---- reconciliation ----------------------------------------------------------------------------

EXIT_CODE = re.compile(r"Exited \((-?\d+)\)")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
def host_claim(host):
    """Claim a host for one reconcile pass; False when another reconciler holds it."""
    return loop.claim(Host, host.pk)


def host_release(host):
    loop.release(Host, host.pk)


def _listed_state(item):
    """Docker's State of an item of the satellite's list, whose exit code is in its status text."""
    match = EXIT_CODE.search(item.get("status", ""))
    return {"Status": item["state"], "ExitCode": int(match.group(1)) if match else None}


def _in_flight(row, now):
    """True while the create of a pending row may still be running (the satellite stops by then)."""
    return now - row.updated < timedelta(seconds=settings.SATELLITE_TIMEOUT + CREATE_MARGIN)


def _settle_pending(client, row, item):
    """A pending row whose create died with its caller, and the container that create left.

    One that never started may lack its script or data (the caller died between the steps):
    it is removed and the row fails. One that started is adopted: the row records it.
    """
    if item["state"] == "created":
        client.remove_container(row.uuid)
        _settle(row, state=Container.State.FAILED,
                last_error="The create was interrupted before the container started; it was removed.")
        return
    state, exit_code = observed_state(item["state"], _listed_state(item)["ExitCode"])
    row.ports = _published_with_scope(row.spec, item.get("ports") or [])
    _settle(row, state=state or Container.State.RUNNING, exit_code=exit_code, docker_id=item["id"],
            ports=row.ports, endpoints=endpoints_for(row.host, row.ports))


def _settle(row, **fields):
    """Write `fields` only while the row is still in the state we read (a conditional update)."""
    Container.objects.filter(pk=row.pk, state=row.state).update(**fields, updated=timezone.now())


def containers_reconcile_host(*, host):
    """Make the rows of one host say what its engine holds; reap our orphans after the grace."""
    counts = {"updated": 0, "lost": 0, "settled": 0, "reaped": 0, "unknown": 0, "archived": 0, "snapshots": 0}
    tracked = Container.objects.filter(host=host, state__in=(*Container.DEPLOYED, Container.State.LOST,
                                                             Container.State.PENDING))
    if not host.is_healthy:
        counts["unknown"] = tracked.exclude(health=Container.Health.UNKNOWN).update(health=Container.Health.UNKNOWN)
        return counts
    client = SatelliteClient(host)
    items = client.list_containers()
    listed = {item["labels"].get("boatload.container"): item for item in items}
    now = timezone.now()
    running, lost = [], []
    for row in tracked:
        item = listed.get(str(row.uuid))
        if row.state == Container.State.PENDING:
            if not _in_flight(row, now):  # its create died with its caller
                if item is None:
                    _settle(row, state=Container.State.FAILED,
                            last_error="The create was never recorded and no container appeared on the host.")
                else:
                    _settle_pending(client, row, item)
                counts["settled"] += 1
            continue
        if item is None:
            if row.state != Container.State.LOST:
                row.state, row.health = Container.State.LOST, Container.Health.OK
                row.save(update_fields=["state", "health", "updated"])
                counts["lost"] += 1
                lost.append(row)
            continue
        if row.observe(_listed_state(item), docker_id=item["id"]):
            counts["updated"] += 1
            if row.state == Container.State.EXITED:  # its output is final: kept, should it vanish later
                counts["archived"] += bool(logs.archive(row=row, reason="exited"))
        if row.state == Container.State.RUNNING:
            running.append(row)
    logs.mark_gone(lost, reason="lost")  # what its last snapshot kept is all there is of its output
    for row in logs.snapshot_due(running, now=now):  # so one that vanishes while running leaves its output
        counts["snapshots"] += bool(logs.archive(row=row, reason="snapshot"))
    wanted = {str(row.uuid) for row in tracked}
    grace = timedelta(seconds=settings.ORPHAN_GRACE)
    for item in items:
        if item["labels"].get("boatload.container") in wanted or item["labels"].get("boatload.service"):
            continue  # service containers belong to the connector's own reconciliation
        label = item["labels"].get("boatload.container", "")
        if now - datetime.fromtimestamp(item["created"], tz=UTC) >= grace and UUID_RE.fullmatch(label):
            client.remove_container(label)  # the satellite acts by label only
            counts["reaped"] += 1
    return counts
