"""Cluster reads under load: a frozen host is named in `failures` by the per-host deadline and never
holds the other hosts' answers, however many fan-outs are in flight at once (common.remote.call_all
gives every call its own worker). Three real satellites share the main engine; the figures (the time
of such an answer at 1, 10 and 50 hosts) are bench/fleet.py's."""
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.utils import timezone

from boatload import services
from boatload.models import Host
from boatload.satellite_client import SatelliteClient
from tests.conftest import IMAGE_NAME, IMAGE_TAG, started_satellites

NAMES = ["fan-0", "fan-1", "fan-2"]
FROZEN = "fan-2"
IN_FLIGHT = 24  # more fan-outs at once than the 16 workers the shared pool had


@pytest.fixture(scope="module")
def satellites(tmp_path_factory):
    with started_satellites(tmp_path_factory, NAMES) as started:
        yield started


@pytest.fixture
def fan_hosts(db, satellites):
    return {name: Host.objects.create(name=name, satellite_url=sat.url, key_id=sat.key_id, secret=sat.secret,
                                      state=Host.State.ACTIVE, last_seen=timezone.now())
            for name, sat in satellites.items()}


def test_a_frozen_host_is_named_while_many_fan_outs_are_in_flight(api, fan_hosts, satellites, settings):
    settings.CLUSTER_READ_TIMEOUT = 2
    staff = api("staff")
    made = staff.post("/v1/container/", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG,
                                         "command": ["sleep", "60"], "instances": 3}, format="json")
    assert made.status_code == 201 and made.json()["created"] == 3, made.content
    made = {item["host"]: item["container"]["id"] for item in made.json()["results"]}
    clients = [(host, SatelliteClient(host, timeout=settings.CLUSTER_READ_TIMEOUT)) for host in fan_hosts.values()]
    satellites[FROZEN].freeze()
    try:
        with ThreadPoolExecutor(IN_FLIGHT) as pool:  # other callers' fan-outs, each waiting on the frozen host
            others = [pool.submit(services.cluster_calls, [(host, client.list_containers) for host, client in clients])
                      for _ in range(IN_FLIGHT)]
            answer = staff.get("/v1/container/cluster/?limit=1000")
            others = [future.result() for future in others]
    finally:
        satellites[FROZEN].freeze(False)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert [failure["host"] for failure in body["failures"]] == [FROZEN], body["failures"]
    assert body["failures"][0]["code"] == "timeout"
    listed = {}
    for item in body["results"]:
        listed.setdefault(item["host"], []).append(item)
    assert sorted(listed) == ["fan-0", "fan-1"], listed
    for name in ("fan-0", "fan-1"):
        assert [item["labels"]["boatload.container"] for item in listed[name]] == [made[name]], listed[name]
    for results in others:
        assert [host.name for host, _, error in results if error is not None] == [FROZEN]
        assert all(len(answer) == 1 for host, answer, error in results if error is None)
