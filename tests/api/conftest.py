"""A fleet of three real hosts: the main Docker engine and two extra engines, a satellite each."""
import pytest
from django.utils import timezone

import docker
from tests.conftest import RUN_LABEL, SatelliteProcess

FLEET = [  # name, loopback address, internal group, engine index (0 = the main engine)
    ("host-a", "127.0.0.21", "g1", 0),
    ("host-b", "127.0.0.22", "g1", 1),
    ("host-c", "127.0.0.23", "g2", 2),
]


def remove_test_containers(client):
    for container in client.containers.list(all=True, sparse=True, filters={"label": RUN_LABEL}):
        try:
            container.remove(force=True, v=True)
        except docker.errors.NotFound:
            pass


class Member:
    def __init__(self, name, address, group, satellite, docker_client):
        self.name, self.address, self.group = name, address, group
        self.satellite, self.docker = satellite, docker_client


@pytest.fixture(scope="session")
def fleet(tmp_path_factory, engines):
    members = []
    try:
        for name, address, group, index in FLEET:
            env = {"SATELLITE_PUBLISH_ADDRESS": address}
            client = docker.from_env()
            if index:
                engine = engines(index)
                env["DOCKER_HOST"] = engine.docker_host
                client = engine.client()
            satellite = SatelliteProcess(tmp_path_factory.mktemp(name), name=name, address=address, env=env).start()
            members.append(Member(name, address, group, satellite, client))
        yield {member.name: member for member in members}
    finally:
        for member in members:
            member.satellite.stop()
            remove_test_containers(member.docker)


@pytest.fixture
def fleet_hosts(db, fleet):
    """Host rows for the fleet, active and just seen."""
    from boatload.models import Host

    rows = {}
    for member in fleet.values():
        if member.satellite.process.poll() is not None:
            member.satellite.start()  # a test stopped it; bring it back for the next
        rows[member.name] = Host.objects.create(
            name=member.name, satellite_url=member.satellite.url, key_id=member.satellite.key_id,
            secret=member.satellite.secret, state=Host.State.ACTIVE, last_seen=timezone.now(),
            address_internal=member.address, address_cloud=member.address, labels={"group": member.group})
    yield rows
    for member in fleet.values():  # the rows roll back; the containers they stood for go too
        remove_test_containers(member.docker)
