"""Trust II, 7: follow streams, downloads and fetches are bounded per user and per host (429, Retry-After)."""
import pytest
from django.utils import timezone

from boatload.models import Host
from tests.conftest import IMAGE_NAME, IMAGE_TAG, SatelliteProcess, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_satellite(tmp_path_factory):
    """A satellite with tiny shares: 3 follow streams in all, 2 a user; 1 download in all."""
    process = SatelliteProcess(tmp_path_factory.mktemp("small"), name="sat-small", env={
        "SATELLITE_MAX_FOLLOWS": "3", "SATELLITE_MAX_FOLLOWS_PER_USER": "2", "SATELLITE_MAX_DOWNLOADS": "1",
        "SATELLITE_BUSY_RETRY_AFTER": "7"}).start()
    yield process
    process.stop()


@pytest.fixture
def small_host(transactional_db, small_satellite):
    """Its row, committed: streams give their database connection back, as in production."""
    return Host.objects.create(name=small_satellite.name, satellite_url=small_satellite.url,
                               key_id=small_satellite.key_id, secret=small_satellite.secret, state="active",
                               last_seen=timezone.now())


def in_use(satellite):
    return satellite.signed().get(f"{satellite.url}/info").json()["satellite"]["in_use"]


def silent(client):
    made = client.post("/v1/container/", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG,
                                          "command": ["sleep", "300"]}, format="json")
    assert made.status_code == 201, made.json()
    return made.json()["id"]


def follow(client, container):
    return client.get(f"/v1/container/{container}/stdout", {"follow": "true"})


def test_follow_streams_are_bounded_per_user_and_per_host(api, small_host, small_satellite):
    owner, other = api("owner"), api("other")
    mine, theirs = silent(owner), silent(other)
    held = [follow(owner, mine), follow(owner, mine)]
    assert all(response.status_code == 200 for response in held)
    refused = follow(owner, mine)
    assert refused.status_code == 429 and refused["Retry-After"] == "7"
    assert refused.json()["error"]["detail"]["scope"] == "user"
    held.append(follow(other, theirs))
    assert held[-1].status_code == 200, held[-1].json()
    full = follow(other, theirs)
    assert full.status_code == 429 and full.json()["error"]["detail"]["scope"] == "host"
    info = small_satellite.signed().get(f"{small_satellite.url}/info").json()["satellite"]
    assert info["in_use"]["follow"] == 3 and info["saturated"] == ["follow"]
    held.pop(0).close()  # a client goes away: its share comes back
    wait_until(lambda: in_use(small_satellite)["follow"] == 2, message="the stream's lease to be given back")
    held.append(follow(owner, mine))
    assert held[-1].status_code == 200
    for response in held:
        response.close()
    wait_until(lambda: in_use(small_satellite)["follow"] == 0, message="every lease to be given back")


def test_downloads_are_bounded_and_given_back_when_read(api, small_host, small_satellite, docker_client):
    owner = api("owner")
    made = owner.post("/v1/container/", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "command": [
        "sh", "-c", "mkdir /out && dd if=/dev/zero of=/out/big bs=1048576 count=64"]}, format="json").json()
    docker_client.api.wait(made["docker_id"], timeout=60)
    container = made["id"]  # its archive (64 MiB) is far more than the sockets between us buffer
    first = owner.get(f"/v1/container/{container}/archive")
    assert first.status_code == 200
    second = owner.get(f"/v1/container/{container}/archive")
    assert second.status_code == 429 and second.json()["error"]["detail"]["limit"] == "download"
    b"".join(first.streaming_content)  # read to the end: the stream closes and gives its share back
    first.close()
    wait_until(lambda: in_use(small_satellite)["download"] == 0, message="the download's lease")
    third = owner.get(f"/v1/container/{container}/archive")
    assert third.status_code == 200
    third.close()


def test_placement_avoids_a_saturated_host(api, fleet_hosts):
    Host.objects.filter(name__in=["host-a", "host-b"]).update(saturated=["fetch"])
    owner = api("owner")
    made = owner.post("/v1/container/", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "command": ["true"],
                                         "instances": 3}, format="json")
    assert made.status_code == 201, made.json()
    assert {result["host"] for result in made.json()["results"]} == {"host-c"}
