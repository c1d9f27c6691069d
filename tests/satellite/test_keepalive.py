"""A call the API sends on a pooled connection to a satellite that stalled (load, a pause, SIGSTOP) is answered,
not reset unread: the satellite keeps an idle connection open SATELLITE_KEEPALIVE (gunicorn's 2 s timer ran
out during the stall, and on waking it closed the connection the call was waiting on)."""
import threading
import time

import pytest

from boatload.models import Host
from boatload.satellite_client import SatelliteClient
from tests.conftest import SatelliteProcess


@pytest.fixture
def stalling(tmp_path):
    process = SatelliteProcess(tmp_path, name="sat-stalling").start()
    yield process
    process.freeze(False)
    process.stop()


def test_a_call_on_a_kept_connection_to_a_satellite_that_stalled_is_answered(stalling):
    client = SatelliteClient(Host(name="sat-stalling", satellite_url=stalling.url, key_id=stalling.key_id,
                                  secret=stalling.secret))
    assert client.info()  # the pooled connection the next call reuses
    stalling.freeze()
    answers = []
    call = threading.Thread(target=lambda: answers.append(client.list_containers()))
    call.start()
    time.sleep(4)  # longer than gunicorn's default keepalive, while the call waits on the kept connection
    stalling.freeze(False)
    call.join(timeout=60)
    assert len(answers) == 1 and isinstance(answers[0], list), answers
