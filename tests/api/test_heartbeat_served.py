"""Heartbeats as the real API serves them (gunicorn's gevent worker): from a pooled database connection,
answered by boatload.heartbeat ahead of DRF, with every refusal of before in the one error shape."""
import json
import time

import pytest
import requests
from django.db import connection
from django.utils import timezone

from common import signing
from tests.conftest import long_ago, wait_until
from tests.live import ApiServer

PATH = "/v1/host/heartbeat/"


@pytest.fixture(scope="module")
def served(django_db_setup, django_db_blocker, tmp_path_factory):
    """The API under gunicorn (one worker) and two enrolled hosts, committed for it to see."""
    from django.conf import settings
    from django.core.management import call_command

    from boatload.models import Host

    with django_db_blocker.unblock():
        hosts = []
        for name in ("beat-a", "beat-b"):
            key_id, secret = Host.new_credentials()
            hosts.append(Host.objects.create(name=name, satellite_url="http://127.0.0.1:7051", key_id=key_id,
                                             secret=secret, state=Host.State.DOWN, last_seen=long_ago(600)))
        server = ApiServer(tmp_path_factory.mktemp("beat") / "api.log", settings.DATABASES["default"]["NAME"])
        server.env.update({"BOATLOAD_WORKERS": "1", "BOATLOAD_HOST_DOWN_AFTER": "3600"})
        server.start()
        try:
            yield {"server": server, "hosts": hosts}
        finally:
            server.stop()
            call_command("flush", interactive=False, verbosity=0)


def beat(server, host, body=None, *, key_id=None, secret=None, **signed):
    """One heartbeat on a connection of its own (a satellite's next one comes 10 s later: no keep-alive)."""
    body = json.dumps({"cpus": 4, "memory_bytes": 1 << 30} if body is None else body).encode()
    headers = signing.sign_headers(secret or host.secret, key_id or host.key_id, "POST", PATH, "", body, **signed)
    with requests.Session() as session:
        return session.post(f"{server.url}{PATH}", data=body, timeout=10,
                            headers={**headers, "Content-Type": "application/json", "Connection": "close"})


def api_backends():
    """Pids of the Postgres connections to the test database other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees its first snapshot throughout
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                       " AND backend_type = 'client backend'")
        return {pid for (pid,) in cursor.fetchall()}


def row(host):
    from boatload.models import Host

    return Host.objects.get(pk=host.pk)


def assert_refused(answer, status, code):
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"] == "application/json"
    assert set(answer.json()) == {"error"} and answer.json()["error"]["code"] == code, answer.json()
    assert {"code", "message", "detail"} <= set(answer.json()["error"])
    if status == 401:
        assert answer.headers["WWW-Authenticate"] == "BoatLoad-HMAC"


@pytest.mark.django_db
def test_a_served_heartbeat_is_signed_back_and_marks_its_host_active(served):
    server, host = served["server"], served["hosts"][0]
    nonce = "served-first"
    answer = beat(server, host, nonce=nonce)
    assert answer.status_code == 200, answer.text
    signing.verify_response(answer, key_id=host.key_id, secret=host.secret, request_nonce=nonce)
    assert answer.json() == {"host": host.name, "state": "active", "key_id": host.key_id}
    assert answer.headers["X-Request-ID"] and answer.headers["X-Content-Type-Options"] == "nosniff"
    now = row(host)
    assert now.state == "active" and now.cpus == 4 and timezone.now() - now.last_seen < timezone.timedelta(seconds=60)


@pytest.mark.django_db
def test_the_api_reuses_its_database_connections_across_requests(served):
    """Before the pool, each request (a greenlet of its own) opened and closed a Postgres connection."""
    server, host = served["server"], served["hosts"][0]
    seen = []
    for _ in range(8):
        assert beat(server, host).status_code == 200
        seen.append(api_backends())
    assert seen[0], seen  # connections stay open between requests, in the worker's pool
    assert all(pids == seen[0] for pids in seen), seen  # and the next requests take them again: none is new


@pytest.mark.django_db
def test_bad_heartbeats_are_refused_in_the_one_error_shape_and_change_nothing(served):
    server, host = served["server"], served["hosts"][1]  # this test's rows are the API's: writes here would lock
    now = int(time.time())
    assert beat(server, host, timestamp=now, nonce="once-only").status_code == 200
    accepted = row(host)
    other = served["hosts"][0]
    cases = [
        (beat(server, host, timestamp=now, nonce="once-only"), 401, "authentication_failed"),  # a replay
        (beat(server, host, secret="not-the-secret"), 401, "authentication_failed"),  # a bad signature
        (beat(server, host, key_id=other.key_id), 401, "authentication_failed"),  # another host's key
        (beat(server, host, key_id="hk_unknown"), 401, "authentication_failed"),  # an unknown host
        (beat(server, host, timestamp=now - 2 * signing.MAX_SKEW), 401, "authentication_failed"),  # stale
        (beat(server, host, nonce="a nonce with spaces"), 401, "authentication_failed"),  # not a nonce the row keeps
        (requests.post(f"{server.url}{PATH}", json={"cpus": 1}, timeout=10), 401, "not_authenticated"),  # unsigned
    ]
    for answer, status, code in cases:
        assert_refused(answer, status, code)
    for body, field in (({"cpus": -1}, "cpus"), ({"cpus": 7, "memory_bytes": "lots"}, "memory_bytes"),
                        ({"cpus": 1 << 40}, "cpus"), ({"memory_bytes": 1 << 70}, "memory_bytes"),
                        ({"saturated": ["everything"]}, "saturated[0]"),
                        ({"docker_version": "x" * 65}, "docker_version"),
                        ({"satellite_url": "ftp://127.0.0.1/"}, "satellite_url"), ([1, 2], "")):
        answer = beat(server, host, body)
        assert_refused(answer, 400, "invalid")
        assert answer.json()["error"]["detail"]["field"] == field, answer.json()
    refused = row(host)
    assert (refused.last_seen, refused.cpus, refused.memory_bytes, refused.heartbeat_nonces) == (
        accepted.last_seen, 4, 1 << 30, accepted.heartbeat_nonces)


@pytest.mark.django_db
def test_a_pooled_connection_that_postgres_ended_is_replaced_unnoticed(served):
    """As after a Postgres restart: the pool's check on checkout finds the connection dead and opens another."""
    server, host = served["server"], served["hosts"][0]
    assert beat(server, host).status_code == 200
    pooled = api_backends()
    with connection.cursor() as cursor:
        for pid in pooled:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    assert pooled
    wait_until(lambda: not (api_backends() & pooled), timeout=30, message="Postgres to end the pooled connections")
    answers = [beat(server, host).status_code for _ in range(3)]
    assert answers == [200, 200, 200], answers


@pytest.mark.django_db
def test_a_served_heartbeat_runs_its_update_as_a_statement_prepared_on_its_connection(served):
    """Postgres parses and plans the heartbeat's long UPDATE (a CASE per conditional column) once per pooled
    connection, not on every beat: the API's connections last ran `EXECUTE` of the prepared statement."""
    server, host = served["server"], served["hosts"][0]
    for _ in range(3):
        assert beat(server, host).status_code == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT query FROM pg_stat_activity WHERE datname = current_database()"
                       " AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
        last = [query for (query,) in cursor.fetchall()]
    assert any(query.startswith("EXECUTE boatload_hb_") for query in last), last
    assert row(host).state == "active"
