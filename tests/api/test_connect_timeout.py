"""A call to a remote waits for its connection no longer than the call may take: at most the connect
timeout setting (BOATLOAD_CONNECT_TIMEOUT), the call's own timeout and what is left of its fan-out's
deadline (common.remote.RemoteClient.timeouts). The remote is a loopback port that drops connection
attempts, as a host behind a firewall that drops SYNs: a listening socket whose accept queue is full."""
import re
import secrets
import socket

import pytest
from django.utils import timezone

from boatload.models import Host
from boatload.satellite_client import SatelliteClient
from common.errors import SatelliteTimeout
from common.remote import call_all
from tests.conftest import wait_until


@pytest.fixture
def dropping_port():
    """A loopback port whose listening socket never accepts and whose accept queue is full, so the kernel
    drops every further SYN (the client retransmits it until its connect timeout)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    queued = []
    while len(queued) < 64:
        client = socket.socket()
        client.settimeout(1)
        try:
            client.connect(server.getsockname())
        except TimeoutError:
            client.close()
            break
        queued.append(client)
    else:
        pytest.fail("the accept queue never filled")
    yield server.getsockname()[1]
    for client in queued:
        client.close()
    server.close()


@pytest.fixture
def silent_host(db, dropping_port):
    return Host.objects.create(name="silent", satellite_url=f"http://127.0.0.1:{dropping_port}", key_id="hk_silent",
                               secret=secrets.token_urlsafe(32), state=Host.State.ACTIVE, last_seen=timezone.now())


def connect_wait(error):
    """The seconds the call waited for its connection, as its error says (None if it does not say)."""
    found = re.search(r"did not accept a connection within ([\d.]+) s", error.message)
    return float(found.group(1)) if found else None


def test_a_call_waits_to_connect_no_longer_than_its_own_timeout(silent_host, settings):
    assert settings.CONNECT_TIMEOUT == 5
    with pytest.raises(SatelliteTimeout) as raised:
        SatelliteClient(silent_host, timeout=1).healthz()
    assert raised.value.status_code == 504 and raised.value.code == "satellite_timeout"
    assert connect_wait(raised.value) == 1, raised.value.message


def test_the_setting_bounds_the_connect_timeout(silent_host, settings):
    settings.CONNECT_TIMEOUT = 1
    with pytest.raises(SatelliteTimeout) as raised:
        SatelliteClient(silent_host, timeout=30).healthz()
    assert connect_wait(raised.value) == 1, raised.value.message


def test_a_fan_out_call_waits_to_connect_no_longer_than_the_fan_out_deadline(silent_host, settings):
    """The call's client allows 30 s and the setting 5 s; the fan-out gives it 2 s, and its worker gives up
    connecting by then, not 5 s later (a worker the fan-out gave up on holds nothing past the deadline)."""
    client = SatelliteClient(silent_host, timeout=30)
    ended = []

    def call():
        try:
            return client.healthz()
        except SatelliteTimeout as error:
            ended.append(error)
            raise

    [(_, answer, error)] = call_all([(silent_host, call)], timeout=2)
    assert answer is None and error.status_code == 504 and error.remote == "silent"
    wait_until(lambda: ended, timeout=30, message="the fan-out's worker to end")
    waited = connect_wait(ended[0])
    assert waited is not None and waited <= 2, ended[0].message
