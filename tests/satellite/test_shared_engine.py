"""Issue 18, 1: satellites sharing one engine each see, find and remove only their own containers."""
import pytest

from tests.conftest import SatelliteProcess
from tests.satellite.helpers import create


@pytest.fixture(scope="module")
def neighbour(tmp_path_factory):
    """A second satellite on the same Docker engine as the shared test satellite."""
    process = SatelliteProcess(tmp_path_factory.mktemp("neighbour"), name="sat-neighbour").start()
    session = process.signed()
    session.base = process.url
    yield session
    process.stop()


def test_a_satellite_lists_and_acts_only_on_its_own_containers(sat, neighbour, docker_client):
    mine = create(sat, command=["sleep", "300"]).json()
    theirs = create(neighbour, command=["sleep", "300"]).json()
    listed = {item["id"] for item in sat.get(f"{sat.base}/containers").json()}
    assert mine["id"] in listed and theirs["id"] not in listed
    assert sat.get(f"{sat.base}/containers/{theirs['container']}/state").status_code == 404
    assert sat.delete(f"{sat.base}/containers/{theirs['container']}").status_code == 204  # nothing of its own
    assert docker_client.containers.get(theirs["id"]).status == "running"
    assert theirs["id"] not in sat.get(f"{sat.base}/stats").json()
    assert neighbour.delete(f"{neighbour.base}/containers/{theirs['container']}").status_code == 204
    assert docker_client.containers.list(all=True, filters={"id": theirs["id"]}) == []
