"""Placement at scale: `instances` spread evenly over hosts counting what each already runs, and created
with per-host parallelism, so one slow host does not serialise the rest. Four real satellites share the
main engine (each acts only on its own containers); the big figure (200 over 10) is the bench's."""
import pytest
from django.utils import timezone

from boatload import services
from boatload.models import Container, Host
from tests.conftest import IMAGE_NAME, IMAGE_TAG, started_satellites

NAMES = ["spread-0", "spread-1", "spread-2", "spread-3"]


@pytest.fixture(scope="module")
def satellites(tmp_path_factory):
    with started_satellites(tmp_path_factory, NAMES) as started:
        yield started


@pytest.fixture
def spread_hosts(db, satellites):
    return {name: Host.objects.create(name=name, satellite_url=sat.url, key_id=sat.key_id, secret=sat.secret,
                                      state=Host.State.ACTIVE, last_seen=timezone.now())
            for name, sat in satellites.items()}


def fields(**more):
    return {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "command": ["sleep", "60"], **more}


def per_host():
    rows = Container.objects.filter(host__name__in=NAMES, state__in=(*Container.DEPLOYED, Container.State.PENDING))
    return {name: rows.filter(host__name=name).count() for name in NAMES}


def test_instances_even_out_what_each_host_already_runs(api, users, spread_hosts):
    already = [("spread-0", Container.State.RUNNING), ("spread-1", Container.State.PENDING)]  # pending: in flight
    Container.objects.bulk_create([Container(owner=users["owner"], host=spread_hosts[name], image_name="img",
                                             name=f"bl-already-{name}-{n}", state=state)
                                   for name, state in already for n in range(3)])
    answer = api("owner").post("/v1/container/", fields(instances=6), format="json")
    assert answer.status_code == 201, answer.content
    assert answer.json()["created"] == 6 and answer.json()["failed"] == 0
    assert per_host() == {"spread-0": 3, "spread-1": 3, "spread-2": 3, "spread-3": 3}
    answer = api("owner").post("/v1/container/", fields(instances=6), format="json")
    counts = per_host()
    assert answer.json()["created"] == 6 and max(counts.values()) - min(counts.values()) <= 1, counts


def test_a_frozen_host_holds_only_its_own_creates(users, satellites, spread_hosts, settings):
    settings.SATELLITE_TIMEOUT = 5  # the frozen host's creates give up after this (and the clean-up call too)
    settings.CREATE_PARALLELISM = 1
    satellites["spread-3"].freeze()
    try:
        _, spec, rows = services.container_create_checked(user=users["owner"], fields=fields(instances=8))
        order = [(row.host.name, error) for row, error in services.container_create_each(rows, spec)]
    finally:
        satellites["spread-3"].freeze(False)
    assert sorted(name for name, _ in order) == sorted(NAMES * 2)
    first_frozen = next(n for n, (name, _) in enumerate(order) if name == "spread-3")
    assert all(name == "spread-3" for name, _ in order[first_frozen:]), order  # the others all ended first
    assert all(error is None for name, error in order if name != "spread-3")
    assert all(error is not None for name, error in order if name == "spread-3")
