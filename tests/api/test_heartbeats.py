"""A heartbeat is cheap: one indexed read of its key and one UPDATE of its host's row, which is also
the replay check (1,000 hosts every 10 s are 100 heartbeats a second; bench/heartbeats.py measures it)."""
import json
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from boatload.models import Host, SeenNonce
from common import sealing, tls
from tests.api.test_hosts import signed_heartbeat
from tests.conftest import long_ago


@pytest.fixture
def pinned(db, tmp_path):
    """A host as a TLS satellite enrols it: certificate pinned, seal key recorded."""
    certificate = tls.ensure_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", ["127.0.0.1"])
    key_id, secret = Host.new_credentials()
    return Host.objects.create(name="beat", satellite_url="https://127.0.0.1:7051", key_id=key_id, secret=secret,
                               tls_certificate=certificate,
                               seal_public_key=sealing.public_text(sealing.new_private_key()),
                               last_seen=long_ago(60), state=Host.State.DOWN)


def beat_body(host):
    """What a TLS satellite sends with every heartbeat: its facts and its channel."""
    return json.dumps({"docker_version": "26.1.5", "cpus": 3, "memory_bytes": 1 << 30, "saturated": [],
                       "address_internal": "10.0.0.7", "satellite_url": host.satellite_url,
                       "certificate": host.tls_certificate, "seal_public_key": host.seal_public_key}).encode()


def writes(queries):
    return [q["sql"] for q in queries if q["sql"].lstrip().split()[0].upper() in ("INSERT", "UPDATE", "DELETE")]


def test_a_heartbeat_is_one_read_and_one_write(client, pinned):
    with CaptureQueriesContext(connection) as queries:
        answer = signed_heartbeat(client, pinned, body=beat_body(pinned))
    assert answer.status_code == 200 and answer.json()["state"] == "active"
    assert len(writes(queries)) == 1, writes(queries)
    assert len(queries) == 2, [q["sql"] for q in queries]  # the key's row, and the one UPDATE
    row = Host.objects.get(pk=pinned.pk)
    assert row.state == Host.State.ACTIVE and row.cpus == 3 and row.address_internal == "10.0.0.7"
    assert timezone.now() - row.last_seen < timezone.timedelta(seconds=30)
    assert not SeenNonce.objects.exists()  # the replay check lives in the host's row


def test_a_replayed_or_much_older_heartbeat_changes_nothing(client, pinned):
    now = int(time.time())
    assert signed_heartbeat(client, pinned, timestamp=now, nonce="n-first").status_code == 200
    assert signed_heartbeat(client, pinned, timestamp=now, nonce="n-second").status_code == 200  # the same second
    assert signed_heartbeat(client, pinned, timestamp=now - 5, nonce="n-late").status_code == 200  # a little late
    Host.objects.filter(pk=pinned.pk).update(last_seen=long_ago(60), state=Host.State.DOWN)
    for timestamp, nonce in ((now, "n-first"), (now, "n-second"), (now - 5, "n-late"), (now - 40, "n-older")):
        answer = signed_heartbeat(client, pinned, timestamp=timestamp, nonce=nonce)
        assert answer.status_code == 401, (timestamp, nonce)
        assert answer.json()["error"]["code"] == "authentication_failed"
    row = Host.objects.get(pk=pinned.pk)
    assert row.state == Host.State.DOWN and timezone.now() - row.last_seen > timezone.timedelta(seconds=50)
    assert signed_heartbeat(client, pinned, timestamp=now + 1, nonce="n-third").status_code == 200


def test_a_heartbeat_with_the_rotated_key_completes_the_rotation_in_its_one_write(client, pinned):
    from boatload import services

    rotating = services.host_rotate_key(host=pinned)
    rotated = Host(pk=pinned.pk, key_id=rotating.next_key_id, secret=rotating.next_secret)
    with CaptureQueriesContext(connection) as queries:
        answer = signed_heartbeat(client, rotated, body=beat_body(pinned))
    assert answer.status_code == 200 and answer.json()["key_id"] == rotating.next_key_id
    assert "next_key" not in answer.json() and len(writes(queries)) == 1
    row = Host.objects.get(pk=pinned.pk)
    assert (row.key_id, row.secret, row.next_key_id) == (rotating.next_key_id, rotating.next_secret, "")
    assert signed_heartbeat(client, pinned).status_code == 401  # the old key stopped working


def test_the_next_heartbeat_of_a_host_is_one_write_and_no_read(client, pinned):
    assert signed_heartbeat(client, pinned, body=beat_body(pinned)).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        answer = signed_heartbeat(client, pinned, body=beat_body(pinned))
    assert answer.status_code == 200 and answer.json()["state"] == "active"
    assert [q["sql"].split()[0] for q in queries] == ["UPDATE"], [q["sql"] for q in queries]


def test_a_remembered_key_stops_working_when_its_host_is_unregistered_or_rotated_past(client, pinned):
    from boatload import services

    assert signed_heartbeat(client, pinned).status_code == 200  # the key is remembered now
    rotating = services.host_rotate_key(host=pinned)
    answer = signed_heartbeat(client, pinned)
    assert answer.status_code == 200 and answer.json()["next_key"]["key_id"] == rotating.next_key_id  # fresh
    rotated = Host(pk=pinned.pk, key_id=rotating.next_key_id, secret=rotating.next_secret)
    assert signed_heartbeat(client, rotated).status_code == 200  # completes the rotation
    refused = signed_heartbeat(client, pinned)  # the old key, remembered by this worker
    assert refused.status_code == 401 and refused.json()["error"]["message"] == "The signing key is unknown."
    assert signed_heartbeat(client, rotated).status_code == 200
    services.host_unregister(host=Host.objects.get(pk=pinned.pk))
    gone = signed_heartbeat(client, rotated)
    assert gone.status_code == 401 and gone.json()["error"]["message"] == "The signing key is unknown."
    assert not Host.objects.filter(pk=pinned.pk).exists()


def test_a_heartbeat_body_over_the_upload_limit_is_a_413_in_the_error_shape(client, pinned, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    answer = signed_heartbeat(client, pinned, body=json.dumps({"docker_version": "x" * 2000}).encode())
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "too_large", answer.content
    assert Host.objects.get(pk=pinned.pk).state == Host.State.DOWN


def prepared_statements():
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE %s", ["boatload\\_hb\\_%"])
        return [name for (name,) in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)  # in autocommit, as the API serves a heartbeat (never in a transaction)
def test_the_heartbeat_update_is_prepared_once_on_its_connection_and_outlives_losing_it(client):
    """The UPDATE is a statement prepared on the connection the first time, then only executed; a connection
    whose prepared statements went (DEALLOCATE ALL, DISCARD ALL) still records the beat, with its checks."""
    key_id, secret = Host.new_credentials()
    host = Host.objects.create(name="prepared", satellite_url="http://127.0.0.1:7051", key_id=key_id, secret=secret,
                               last_seen=long_ago(600), state=Host.State.DOWN)
    body = json.dumps({"cpus": 2, "memory_bytes": 1 << 30}).encode()
    assert signed_heartbeat(client, host, body=body).status_code == 200
    [name] = prepared_statements()
    with CaptureQueriesContext(connection) as queries:
        assert signed_heartbeat(client, host, body=body).status_code == 200
    assert [q["sql"].split()[0] for q in queries] == ["EXECUTE"], [q["sql"] for q in queries]  # no read, no PREPARE
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    Host.objects.filter(pk=host.pk).update(state=Host.State.DOWN, cpus=0)
    assert signed_heartbeat(client, host, body=body, nonce="after-deallocate").status_code == 200
    assert Host.objects.filter(pk=host.pk, state=Host.State.ACTIVE, cpus=2).exists()
    assert signed_heartbeat(client, host, body=body, nonce="after-deallocate").status_code == 401  # still a replay
    assert signed_heartbeat(client, host, body=body).status_code == 200
    assert prepared_statements() == [name]  # prepared again


@pytest.mark.django_db(transaction=True)
def test_with_prepared_statements_off_a_heartbeat_updates_its_row_as_it_is(client, settings):
    """BOATLOAD_DB_PREPARED=off (behind PgBouncer's transaction mode): the UPDATE is sent whole each beat."""
    settings.DB_PREPARED_STATEMENTS = False
    key_id, secret = Host.new_credentials()
    host = Host.objects.create(name="unprepared", satellite_url="http://127.0.0.1:7051", key_id=key_id,
                               secret=secret, last_seen=long_ago(600), state=Host.State.DOWN)
    body = json.dumps({"cpus": 2}).encode()
    for nonce in ("unprepared-1", "unprepared-2"):
        with CaptureQueriesContext(connection) as queries:
            assert signed_heartbeat(client, host, body=body, nonce=nonce).status_code == 200
        assert [q["sql"].split()[0] for q in queries][-1] == "UPDATE", [q["sql"] for q in queries]
    assert Host.objects.filter(pk=host.pk, state=Host.State.ACTIVE, cpus=2).exists()
    assert signed_heartbeat(client, host, body=body, nonce="unprepared-2").status_code == 401  # still a replay
