"""Answers are authenticated, rotation evicts a leaked key, and a replay after a restart is refused."""
import json
import signal
from contextlib import contextmanager

import psutil
import pytest
import requests
from rest_framework.test import APIClient

from boatload.models import Host, JoinToken
from common import sealing, signing
from common.signing import HmacAuth, sign_headers, sign_response_headers
from tests.channel_servers import ImpostorAPI, json_answer
from tests.conftest import SatelliteProcess, wait_until


def credentials_of(satellite):
    return json.loads((satellite.state_dir / "credentials.json").read_text())


@contextmanager
def frozen(satellite):
    """The satellite's processes stopped (SIGSTOP) inside the block: no heartbeat leaves it."""
    processes = [psutil.Process(satellite.process.pid)]
    processes += processes[0].children(recursive=True)
    for process in processes:
        process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        for process in processes:
            process.send_signal(signal.SIGCONT)


def staff_client(django_user_model):
    staff = django_user_model.objects.create_user("keeper", password="keeper-pass-1", is_staff=True)
    client = APIClient()
    client.force_authenticate(staff)
    return client


def test_a_forged_heartbeat_answer_is_refused_and_logged(tmp_path):
    """An impostor API (or one on the path) answers heartbeats: unsigned, signed with a key the
    satellite does not hold, replaying a signature made for another request, or signed right (a
    thief of the HMAC key) but carrying a key not sealed to this satellite. None changes anything."""
    satellite = SatelliteProcess(tmp_path / "sat", name="steady")
    thief_box = sealing.public_text(sealing.new_private_key())

    def forged(handler, body):
        nonce = handler.headers.get(signing.HEADER_NONCE)
        mode = len(impostor.received) % 4
        if mode == 0:  # the old, unsigned shape: a plain secret
            out = json_answer({"host": "steady", "key_id": satellite.key_id,
                               "next_key": {"key_id": "hk_evil0", "secret": "evil"}})
            return 200, {}, out
        if mode == 1:  # signed, but with a key the satellite does not hold
            out = json_answer({"host": "steady", "key_id": "hk_evil1", "next_key": {"key_id": "hk_evil1",
                                                                                   "secret": "evil"}})
            return 200, sign_response_headers("guess", satellite.key_id, status=200, method="POST",
                                              path="/v1/host/heartbeat/", request_nonce=nonce, body=out), out
        if mode == 2:  # a correct signature, but for an earlier request (replayed answer)
            out = json_answer({"host": "steady", "key_id": "hk_evil2"})
            return 200, sign_response_headers(satellite.secret, satellite.key_id, status=200, method="POST",
                                              path="/v1/host/heartbeat/", request_nonce="an-old-nonce", body=out), out
        # signed right by a holder of the stolen key; the new key is sealed to the thief's own box key
        out = json_answer({"host": "steady", "key_id": satellite.key_id, "next_key": {
            "key_id": "hk_evil3", "sealed_secret": sealing.seal(thief_box, "evil",
                                                                sealing.next_key_aad("steady", "hk_evil3"))}})
        return 200, sign_response_headers(satellite.secret, satellite.key_id, status=200, method="POST",
                                          path="/v1/host/heartbeat/", request_nonce=nonce, body=out), out

    impostor = ImpostorAPI(forged)
    stored = {"host": "steady", "api_url": impostor.url, "key_id": satellite.key_id,
              "keys": {satellite.key_id: satellite.secret}}
    (satellite.state_dir / "credentials.json").write_text(json.dumps(stored))
    satellite.start()
    try:
        wait_until(lambda: len(impostor.received) >= 8, timeout=30, message="eight forged answers")
        assert credentials_of(satellite) == stored
        assert satellite.read_log().count("refused a heartbeat answer") >= 8
        assert satellite.signed().get(f"{satellite.url}/info", timeout=10).status_code == 200
    finally:
        satellite.stop()
        impostor.close()


@pytest.mark.django_db(transaction=True)
def test_a_thief_of_the_old_key_does_not_get_the_new_one_and_is_evicted(live_server, tmp_path, django_user_model):
    _, token = JoinToken.issue()
    satellite = SatelliteProcess(tmp_path / "state", name="leaky", keys=False,
                                 env={"BOATLOAD_API_URL": live_server.url, "SATELLITE_JOIN_TOKEN": token})
    satellite.start()
    try:
        host = Host.objects.get(name="leaky")
        stolen = HmacAuth(host.key_id, host.secret)
        with frozen(satellite):
            assert staff_client(django_user_model).post("/v1/host/leaky/rotate-key/").status_code == 200
            pending = Host.objects.get(pk=host.pk)
            # The thief heartbeats with the stolen key and reads the whole answer.
            answer = requests.post(f"{live_server.url}/v1/host/heartbeat/", json={}, auth=stolen, timeout=10)
            assert answer.status_code == 200
            assert answer.json()["next_key"]["key_id"] == pending.next_key_id
            assert pending.next_secret not in answer.text
            assert "secret" not in answer.json()["next_key"]
        rotated = wait_until(lambda: (lambda h: h if h.key_id == pending.next_key_id else None)(
            Host.objects.get(pk=host.pk)), message="the satellite to take the sealed key")
        wait_until(lambda: credentials_of(satellite)["keys"] == {rotated.key_id: rotated.secret},
                   message="the satellite to retire the old key")
        # The stolen key now opens nothing, on either side.
        assert requests.post(f"{live_server.url}/v1/host/heartbeat/", json={}, auth=stolen,
                             timeout=10).status_code == 401
        assert requests.get(f"{satellite.url}/info", auth=stolen, timeout=10).status_code == 401
    finally:
        satellite.stop()


@pytest.mark.django_db(transaction=True)
def test_a_second_rotation_before_the_first_completed_supersedes_it(live_server, tmp_path, django_user_model):
    _, token = JoinToken.issue()
    satellite = SatelliteProcess(tmp_path / "state", name="twice", keys=False, env={
        "BOATLOAD_API_URL": live_server.url, "SATELLITE_JOIN_TOKEN": token, "SATELLITE_HEARTBEAT_INTERVAL": "2"})
    satellite.start()
    staff = staff_client(django_user_model)
    try:
        host = Host.objects.get(name="twice")
        first_key = host.key_id
        staff.post("/v1/host/twice/rotate-key/")
        second = Host.objects.get(pk=host.pk).next_key_id
        # Freeze the satellite the moment it signs with the second key, before the API has seen it do so.
        wait_until(lambda: credentials_of(satellite)["key_id"] == second, interval=0.005,
                   message="the satellite to take the second key")
        with frozen(satellite):
            assert Host.objects.get(pk=host.pk).key_id == first_key, "the satellite beat before it was frozen"
            staff.post("/v1/host/twice/rotate-key/")
            third = Host.objects.get(pk=host.pk).next_key_id
            assert third != second
        done = wait_until(lambda: (lambda h: h if h.key_id == third and not h.next_key_id else None)(
            Host.objects.get(pk=host.pk)), timeout=30, message="the host to end on the third key")
        wait_until(lambda: credentials_of(satellite)["keys"] == {third: done.secret}, message="one key left")
        assert requests.get(f"{satellite.url}/info", auth=HmacAuth(third, done.secret), timeout=10).status_code == 200
    finally:
        satellite.stop()


def test_a_rotation_of_a_host_without_a_seal_key_is_refused(api, host):
    answer = api("staff").post(f"/v1/host/{host.name}/rotate-key/")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "conflict"
    host.refresh_from_db()
    assert host.next_key_id == ""


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_a_request_replayed_after_the_satellite_restarts_is_refused(tmp_path, how):
    satellite = SatelliteProcess(tmp_path / "sat", name="restarted").start()
    try:
        headers = sign_headers(satellite.secret, satellite.key_id, "GET", "/info", "", b"")
        assert requests.get(f"{satellite.url}/info", headers=headers, timeout=10).status_code == 200
        processes = [psutil.Process(satellite.process.pid)]
        processes += processes[0].children(recursive=True)
        for process in processes:  # SIGKILL: the master and its worker, as a crash would
            process.send_signal(how)
        psutil.wait_procs(processes, timeout=15)
        satellite.process.wait(15)
        satellite.log.close()
        satellite.start()
        replay = requests.get(f"{satellite.url}/info", headers=headers, timeout=10)
        assert replay.status_code == 401
        assert "replayed" in replay.json()["error"]["message"]
        fresh = sign_headers(satellite.secret, satellite.key_id, "GET", "/info", "", b"")
        assert requests.get(f"{satellite.url}/info", headers=fresh, timeout=10).status_code == 200
    finally:
        satellite.stop()
