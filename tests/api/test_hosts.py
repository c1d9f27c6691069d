"""Satellite enrolment with join tokens, heartbeats and down-marking, against a live API."""
import json
import stat

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone

from boatload.management.commands.reconcile import Command as Reconcile
from boatload.models import Host, JoinToken
from common import sealing
from common.signing import HmacAuth
from tests.conftest import SatelliteProcess, long_ago, wait_until


def enrol(live_server, token, name="new-host", **fields):
    return requests.post(f"{live_server.url}/v1/host/enrol/", json={
        "token": token, "name": name, "satellite_url": "http://127.0.0.1:7999", "docker_version": "x",
        "seal_public_key": sealing.public_text(sealing.new_private_key()), **fields}, timeout=10)


@pytest.mark.django_db(transaction=True)
def test_a_satellite_enrols_once_keeps_its_keys_private_and_heartbeats(live_server, tmp_path):
    _, token = JoinToken.issue(note="test")
    satellite = SatelliteProcess(tmp_path / "state", name="enrolled-host", keys=False,
                                 env={"BOATLOAD_API_URL": live_server.url, "SATELLITE_JOIN_TOKEN": token})
    satellite.start()
    try:
        credentials = tmp_path / "state" / "credentials.json"
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        keys = json.loads(credentials.read_text())
        host = Host.objects.get(name="enrolled-host")
        assert keys["keys"] == {host.key_id: host.secret}
        assert host.satellite_url == satellite.url and host.docker_version
        first_seen = host.last_seen
        wait_until(lambda: Host.objects.get(pk=host.pk).last_seen > first_seen, message="a heartbeat")
        assert JoinToken.objects.get().used is not None
    finally:
        satellite.stop()
    # The token is spent: a second satellite with it is refused and no host is made.
    answer = enrol(live_server, token, name="second-host")
    assert answer.status_code == 401
    assert not Host.objects.filter(name="second-host").exists()


@pytest.mark.django_db(transaction=True)
def test_an_expired_token_is_refused_and_creates_no_host(live_server):
    row, token = JoinToken.issue()
    JoinToken.objects.filter(pk=row.pk).update(expires=long_ago(1))
    answer = enrol(live_server, token)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "authentication_failed"
    assert not Host.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_an_unknown_token_is_refused(live_server):
    assert enrol(live_server, "bljt_made-up").status_code == 401
    assert not Host.objects.exists()


def test_staff_issue_join_tokens_and_see_the_join_command(api):
    answer = api("staff").post("/v1/jointoken/", {"note": "rack 4"}, format="json")
    assert answer.status_code == 201
    body = answer.json()
    assert body["token"].startswith("bljt_") and body["token"] in body["join_command"]
    assert JoinToken.objects.get().token_hash != body["token"]  # only the hash is kept
    assert "token" not in api("staff").get("/v1/jointoken/").json()["results"][0]
    assert api("owner").post("/v1/jointoken/", {}, format="json").status_code == 403


def test_the_jointoken_command_prints_a_usable_token(db, capsys):
    call_command("jointoken", "--quiet")
    token = capsys.readouterr().out.strip()
    assert JoinToken.usable(token) is not None


def signed_heartbeat(client, host, body=b"{}", **headers):
    from common.signing import sign_headers

    signed = sign_headers(host.secret, host.key_id, "POST", "/v1/host/heartbeat/", "", body, **headers)
    return client.post("/v1/host/heartbeat/", body, content_type="application/json",
                       **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in signed.items()})


def test_a_silent_host_is_marked_down_and_a_heartbeat_brings_it_back(db, client, host):
    Host.objects.filter(pk=host.pk).update(last_seen=long_ago(120))
    Reconcile().process_one_pass()
    host.refresh_from_db()
    assert host.state == Host.State.DOWN
    assert signed_heartbeat(client, host).status_code == 200
    host.refresh_from_db()
    assert host.state == Host.State.ACTIVE and timezone.now() - host.last_seen < timezone.timedelta(seconds=5)


def test_a_replayed_or_unsigned_heartbeat_is_refused(db, client, host):
    assert signed_heartbeat(client, host, nonce="same-nonce").status_code == 200
    assert signed_heartbeat(client, host, nonce="same-nonce").status_code == 401
    assert client.post("/v1/host/heartbeat/", {}, content_type="application/json").status_code == 401


def test_host_list_shows_health(api, host):
    Host.objects.filter(pk=host.pk).update(last_seen=long_ago(120))
    rows = api("owner").get("/v1/host/").json()["results"]
    assert [(r["name"], r["state"], r["healthy"]) for r in rows] == [(host.name, "down", False)]


def test_staff_drain_a_host_and_users_can_not(api, host):
    assert api("owner").post(f"/v1/host/{host.name}/drain/").status_code == 403
    assert api("staff").post(f"/v1/host/{host.name}/drain/").json()["state"] == "draining"


def test_a_heartbeat_request_signed_by_requests_auth_matches_the_server(live_server, db, transactional_db):
    key_id, secret = Host.new_credentials()
    Host.objects.create(name="h", satellite_url="http://127.0.0.1:1", key_id=key_id, secret=secret)
    answer = requests.post(f"{live_server.url}/v1/host/heartbeat/?x=1", json={"cpus": 3},
                           auth=HmacAuth(key_id, secret), timeout=10)
    assert answer.status_code == 200 and answer.json() == {"host": "h", "state": "active", "key_id": key_id}
    assert Host.objects.get(name="h").cpus == 3


@pytest.mark.django_db(transaction=True)
def test_a_key_rotation_reaches_the_satellite_and_retires_the_old_key(live_server, tmp_path):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    _, token = JoinToken.issue()
    satellite = SatelliteProcess(tmp_path / "state", name="rotating", keys=False,
                                 env={"BOATLOAD_API_URL": live_server.url, "SATELLITE_JOIN_TOKEN": token})
    satellite.start()
    try:
        host = Host.objects.get(name="rotating")
        old_key, old_secret = host.key_id, host.secret
        staff = get_user_model().objects.create_user("rotator", password="x-pass-1", is_staff=True)
        client = APIClient()
        client.force_authenticate(staff)
        assert client.post("/v1/host/rotating/rotate-key/").json()["rotating_key"] is True
        rotated = wait_until(lambda: (lambda h: h if h.key_id != old_key and not h.next_key_id else None)(
            Host.objects.get(pk=host.pk)), message="the satellite to sign with the new key")
        credentials = tmp_path / "state" / "credentials.json"
        wait_until(lambda: json.loads(credentials.read_text())["keys"] == {rotated.key_id: rotated.secret},
                   message="the satellite to retire the old key")
        assert requests.get(f"{satellite.url}/info", auth=HmacAuth(rotated.key_id, rotated.secret),
                            timeout=10).status_code == 200
        assert requests.get(f"{satellite.url}/info", auth=HmacAuth(old_key, old_secret), timeout=10).status_code == 401
    finally:
        satellite.stop()


def test_migrations_are_complete(db):
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
