"""Writes to a host row do not clobber each other; unregistering a host leaves no row deployed."""
import threading

import pytest
import requests
from django.contrib.admin.sites import AdminSite

from boatload import services
from boatload.admin import HostAdmin
from boatload.models import Container, Host
from common import sealing
from common.signing import HmacAuth
from tests.api.test_hosts import signed_heartbeat
from tests.conftest import long_ago, wait_until


def test_a_heartbeat_from_a_stale_copy_undoes_no_drain_claim_or_rotation(db, host):
    Host.objects.filter(pk=host.pk).update(seal_public_key=sealing.public_text(sealing.new_private_key()))
    stale = Host.objects.get(pk=host.pk)  # what a heartbeat read before the others wrote
    assert Host.objects.get(pk=host.pk).drain() is True
    assert services.host_claim(Host.objects.get(pk=host.pk))
    rotating = services.host_rotate_key(host=Host.objects.get(pk=host.pk))
    services.host_heartbeat(host=stale, cpus=7)
    row = Host.objects.get(pk=host.pk)
    assert row.state == Host.State.DRAINING
    assert row.claimed_until is not None
    assert (row.next_key_id, row.next_secret) == (rotating.next_key_id, rotating.next_secret)
    assert row.cpus == 7 and row.key_id == host.key_id


def test_a_heartbeat_brings_back_only_a_host_that_is_still_down(db, client, host):
    Host.objects.filter(pk=host.pk).update(state=Host.State.DOWN, last_seen=long_ago(120))
    stale = Host.objects.get(pk=host.pk)
    Host.objects.get(pk=host.pk).drain()  # drained while down
    services.host_heartbeat(host=stale)
    assert Host.objects.get(pk=host.pk).state == Host.State.DRAINING
    Host.objects.filter(pk=host.pk).update(state=Host.State.DOWN)
    assert signed_heartbeat(client, host).status_code == 200
    assert Host.objects.get(pk=host.pk).state == Host.State.ACTIVE


def test_a_heartbeat_completes_a_rotation_only_for_the_key_still_pending(db, host):
    box = sealing.public_text(sealing.new_private_key())
    Host.objects.filter(pk=host.pk).update(seal_public_key=box)
    first = services.host_rotate_key(host=Host.objects.get(pk=host.pk))
    stale = Host.objects.get(pk=host.pk)
    second = services.host_rotate_key(host=Host.objects.get(pk=host.pk))  # supersedes the first
    services.host_heartbeat(host=stale, key_id=first.next_key_id)  # a late beat with the superseded key
    row = Host.objects.get(pk=host.pk)
    assert row.key_id == host.key_id and row.next_key_id == second.next_key_id


def test_drain_in_the_admin_is_the_same_conditional_update(db, host, rf, users):
    stale = Host.objects.get(pk=host.pk)
    HostAdmin(Host, AdminSite()).drain(rf.post("/"), Host.objects.filter(pk=host.pk))
    services.host_heartbeat(host=stale)
    assert Host.objects.get(pk=host.pk).state == Host.State.DRAINING


def test_unregistering_a_host_leaves_no_row_running(api, host, users):
    rows = {state: Container.objects.create(owner=users["owner"], host=host, image_name="x", state=state,
                                            name=f"bl-{state}")
            for state in ("pending", "running", "exited", "failed", "deleted")}
    assert api("staff").post(f"/v1/host/{host.name}/unregister/").status_code == 204
    assert not Host.objects.filter(pk=host.pk).exists()
    after = {state: Container.objects.get(pk=row.pk) for state, row in rows.items()}
    for state in ("pending", "running", "exited"):
        assert after[state].state == Container.State.LOST
        assert host.name in after[state].last_error
    assert after["failed"].state == Container.State.FAILED and after["deleted"].state == Container.State.DELETED
    assert not Container.objects.filter(state__in=Container.DEPLOYED).exists()


@pytest.mark.django_db(transaction=True)
def test_drains_asked_during_a_stream_of_real_heartbeats_all_hold(live_server, django_user_model):
    from rest_framework.test import APIClient

    key_id, secret = Host.new_credentials()
    host = Host.objects.create(name="busy", satellite_url="http://127.0.0.1:1", key_id=key_id, secret=secret)
    staff = APIClient()
    staff.force_authenticate(django_user_model.objects.create_user("drainer", password="d-pass-1", is_staff=True))
    stop = threading.Event()
    beats = []

    def beat():
        with requests.Session() as session:
            while not stop.is_set():
                beats.append(session.post(f"{live_server.url}/v1/host/heartbeat/", json={"cpus": 2},
                                          auth=HmacAuth(key_id, secret), timeout=10).status_code)

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        undone = 0
        for _ in range(10):
            Host.objects.filter(pk=host.pk).update(state=Host.State.ACTIVE)
            assert staff.post("/v1/host/busy/drain/").json()["state"] == "draining"
            seen = len(beats)
            wait_until(lambda seen=seen: len(beats) >= seen + 8, message="heartbeats after the drain")
            undone += Host.objects.get(pk=host.pk).state != Host.State.DRAINING
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    assert set(beats) == {200}
    assert undone == 0
