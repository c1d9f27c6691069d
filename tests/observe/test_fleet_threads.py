"""The reconciler's fleet collection (observe.metrics.collect_fleet) asks many hosts on a bounded number of
threads (BOATLOAD_FLEET_WORKERS), not one thread per host a pass. Eight Host rows with keys of their own,
all served by one real satellite (a satellite takes every key of its credentials); frozen, it holds every
call it gets until the deadline, so every thread a pass starts is alive at once and counted."""
import json
import logging
import threading

import pytest
from django.utils import timezone

from boatload.models import Host
from observe.metrics import collect_fleet
from tests.conftest import SatelliteProcess

HOSTS = 8
WORKERS = 2


@pytest.fixture(scope="module")
def shared_satellite(tmp_path_factory):
    """One satellite that accepts HOSTS keys: [(key id, secret)] and the process."""
    satellite = SatelliteProcess(tmp_path_factory.mktemp("fleet-threads"), name="fleet-threads")
    keys = [(f"{satellite.key_id}{n}", f"{satellite.secret}{n}") for n in range(HOSTS)]
    credentials = satellite.state_dir / "credentials.json"
    written = json.loads(credentials.read_text())
    credentials.write_text(json.dumps({**written, "keys": {**written["keys"], **dict(keys)}}))
    satellite.start()
    try:
        yield satellite, keys
    finally:
        satellite.freeze(False)
        satellite.stop()


@pytest.fixture
def many_hosts(db, shared_satellite):
    satellite, keys = shared_satellite
    return [Host.objects.create(name=f"fleet-{n}", satellite_url=satellite.url, key_id=key_id, secret=secret,
                                state=Host.State.ACTIVE, last_seen=timezone.now())
            for n, (key_id, secret) in enumerate(keys)]


def peak_threads_during(work):
    """(work's result, the most threads alive at once while it ran, beyond those alive before it)."""
    done, peak = threading.Event(), [0]

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], threading.active_count())
            done.wait(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    before = threading.active_count()  # the watcher included
    try:
        result = work()
    finally:
        done.set()
        watcher.join()
    return result, peak[0] - before


def test_a_fleet_pass_over_many_hosts_runs_on_a_bounded_number_of_threads(many_hosts, shared_satellite, settings,
                                                                          caplog):
    satellite, _ = shared_satellite
    settings.FLEET_WORKERS, settings.CLUSTER_READ_TIMEOUT = WORKERS, 2
    with caplog.at_level(logging.WARNING, logger="boatload.metrics"):
        assert collect_fleet() == 0  # nothing runs there, and every host answered: none is logged
    assert not [record.message for record in caplog.records if "fleet metrics" in record.message]
    satellite.freeze()
    try:
        with caplog.at_level(logging.WARNING, logger="boatload.metrics"):
            caplog.clear()
            _, extra = peak_threads_during(collect_fleet)
    finally:
        satellite.freeze(False)
    assert 1 <= extra <= WORKERS, extra
    logged = [record.message for record in caplog.records if record.message.startswith("fleet metrics: ")]
    named = sorted(message.split(":")[1].strip() for message in logged)
    assert named == sorted(host.name for host in many_hosts), named  # every host said to have not answered
