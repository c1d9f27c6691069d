"""Logs of replaced service slots (issue 17, item 3): the containers a rolling update or a scale-down removes
have their last output kept by their satellite, listed and read through GET /service/<name>/logs[/<container>]
after Docker no longer has them; live ones are read from their satellite. Real satellites on real engines, the
API over HTTP (live_server) for the streams, the reconciler's steps called directly."""
import time

import pytest
import requests
from django.utils import timezone

import docker
from boatload.models import Host
from genisys.management.commands.genisys import Command as Reconciler
from genisys.models import Deployment, Service
from tests.conftest import IMAGE_NAME, IMAGE_TAG, SatelliteProcess, jwt_for, wait_until

pytestmark = pytest.mark.slow
IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"
# Each container says which release it runs and its own host name, on stdout and on stderr.
COMMAND = "sh -c 'echo out-$RELEASE-$HOSTNAME; echo err-$RELEASE >&2; sleep 3600'"
NO_WAIT = {"min_healthy_time": "0s", "parallelism": 2}


@pytest.fixture(autouse=True)
def remove_service_containers(service_name, docker_client):
    yield
    for container in docker_client.containers.list(all=True, filters={"label": f"boatload.service={service_name}"}):
        container.remove(force=True)


def containers_of(docker_client, name):
    return {c.id: c for c in docker_client.containers.list(all=True, filters={"label": f"boatload.service={name}"})}


def settle(name, deployment_id, limit=300):
    for _ in range(limit):
        Reconciler().process_one_service(Service.objects.get(name=name))
        if Deployment.objects.get(pk=deployment_id).state != "running":
            return Deployment.objects.get(pk=deployment_id).state
        time.sleep(0.1)
    raise AssertionError(f"deployment {deployment_id} still running")


def output_of(container, *needles):
    """The container's whole output (stdout and stderr, as the engine interleaves them) once it holds `needles`."""
    wait_until(lambda: all(n in container.logs(stdout=True, stderr=True) for n in needles), timeout=30,
               message=f"output of {container.name}")
    return container.logs(stdout=True, stderr=True)


def read(live_server, path, user, **params):
    answer = requests.get(f"{live_server.url}{path}", params=params, stream=True, timeout=60,
                          headers={"Authorization": f"Bearer {jwt_for(user)}"})
    chunks = list(answer.iter_content(chunk_size=None)) if answer.status_code == 200 else []
    return answer, b"".join(chunks)


@pytest.fixture
def owned(api, hosts, connectors, service_name, docker_client):
    """`owner`'s service at two slots of release 1 on gen-a; {docker id: output} of those containers."""
    assert api("staff").post("/compute", {"name": "gen-a", "connector": connectors["gen-a"].url},
                             format="json").status_code == 201
    owner = api("owner")
    assert owner.post("/service", {"name": service_name, "image": IMAGE, "command": COMMAND,
                                   "environment": {"RELEASE": "1"}, "update": NO_WAIT},
                      format="json").status_code == 201
    scaled = owner.post(f"/service/{service_name}/scale", {"number": 2}, format="json")
    assert scaled.status_code == 200, scaled.json()
    assert settle(service_name, scaled.json()["deployment"]["id"]) == "succeeded"
    first = containers_of(docker_client, service_name)
    assert len(first) == 2
    return {cid: output_of(container, b"out-1-", b"err-1") for cid, container in first.items()}


def test_replaced_slots_output_is_read_through_the_api_after_docker_removed_them(live_server, api, users, owned,
                                                                                service_name, docker_client):
    owner = api("owner")
    changed = owner.put(f"/service/{service_name}", {"image": IMAGE, "command": COMMAND, "update": NO_WAIT,
                                                     "environment": {"RELEASE": "2"}}, format="json")
    assert changed.status_code == 200 and changed.json()["deployment"]["to_version"] == 2, changed.json()
    assert settle(service_name, changed.json()["deployment"]["id"]) == "succeeded"
    for old in owned:  # Docker no longer has them
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(old)
    now = containers_of(docker_client, service_name)
    assert len(now) == 2 and not set(now) & set(owned)

    listed = owner.get(f"/service/{service_name}/logs")
    assert listed.status_code == 200, listed.json()
    assert listed.json()["failures"] == []
    by_id = {item["container"]: item for item in listed.json()["results"]}
    assert set(by_id) == set(owned) | set(now)
    for old in owned:
        item = by_id[old]
        assert (item["compute"], item["state"], item["version"], item["reason"]) == ("gen-a", "archived", 1,
                                                                                     "replaced")
        assert item["name"].startswith(f"bl-{service_name}-") and item["removed_at"] and not item["truncated"]
    for live in now:
        assert (by_id[live]["state"], by_id[live]["version"], by_id[live]["removed_at"]) == ("live", 2, None)

    for old, output in owned.items():  # the kept bytes are the output Docker had, streamed
        answer, body = read(live_server, f"/service/{service_name}/logs/{old}", users["owner"])
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-BoatLoad-Archived"] == "replaced" and answer.headers["X-BoatLoad-Compute"] == "gen-a"
        assert answer.headers["X-BoatLoad-Archive-Truncated"] == "false" and answer.headers["X-BoatLoad-Archived-At"]
        assert body == output
    live_id = next(iter(now))
    answer, body = read(live_server, f"/service/{service_name}/logs/{live_id}", users["owner"], stderr="true")
    assert answer.status_code == 200 and "X-BoatLoad-Archived" not in answer.headers
    assert body == output_of(now[live_id], b"out-2-", b"err-2")

    old = next(iter(owned))
    assert read(live_server, f"/service/{service_name}/logs/{old}", users["staff"])[0].status_code == 200
    for path in (f"/service/{service_name}/logs", f"/service/{service_name}/logs/{old}"):
        refused = api("other").get(path)  # another user's service: as if it did not exist
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    unknown = owner.get(f"/service/{service_name}/logs/{'0' * 64}")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    for query, field in (({"tail": "-1"}, "tail"), ({"compute": "nowhere"}, "compute")):
        bad = owner.get(f"/service/{service_name}/logs/{old}", query)
        assert bad.status_code == 400 and bad.json()["error"]["detail"]["field"] == field


def test_a_scale_down_keeps_the_removed_slots_output(api, owned, service_name, docker_client):
    owner = api("owner")
    scaled = owner.post(f"/service/{service_name}/scale", {"number": 1}, format="json")
    assert scaled.status_code == 200, scaled.json()
    gone = [cid for cid in owned if cid not in containers_of(docker_client, service_name)]
    assert len(gone) == 1
    [item] = [i for i in owner.get(f"/service/{service_name}/logs").json()["results"] if i["container"] == gone[0]]
    assert (item["state"], item["reason"], item["slot"]) == ("archived", "removed", 1)
    answer = owner.get(f"/service/{service_name}/logs/{gone[0]}")
    assert answer.status_code == 200 and answer["X-BoatLoad-Archived"] == "removed"
    assert b"".join(answer.streaming_content) == owned[gone[0]]


def test_kept_output_is_bounded_by_size_and_count(tmp_path, api, users, service_name, docker_client):
    """A satellite keeping 100 bytes of at most 2 removed containers a service."""
    satellite = SatelliteProcess(tmp_path / "bounded", name="gen-bounded", address="127.0.0.36",
                                 env={"SATELLITE_SLOT_LOG_KEEP": "100", "SATELLITE_SLOT_LOG_COUNT": "2"}).start()
    try:
        Host.objects.create(name="gen-bounded", satellite_url=satellite.url, key_id=satellite.key_id,
                            secret=satellite.secret, last_seen=timezone.now())
        staff = api("staff")
        assert staff.post("/compute", {"name": "bounded", "connector": satellite.url}, format="json").status_code == 201
        assert staff.post("/service", {"name": service_name, "image": IMAGE, "update": NO_WAIT,
                                       "command": "sh -c 'seq 1 500; sleep 3600'"}, format="json").status_code == 201
        assert staff.post(f"/service/{service_name}/scale", {"number": 3}, format="json").status_code == 200
        made = containers_of(docker_client, service_name)
        outputs = {cid: output_of(container, b"\n500\n") for cid, container in made.items()}
        assert staff.post(f"/service/{service_name}/scale", {"number": 0}, format="json").status_code == 200
        assert containers_of(docker_client, service_name) == {}
        listed = staff.get(f"/service/{service_name}/logs").json()["results"]
        assert len(listed) == 2 and {item["slot"] for item in listed} == {0, 1}  # slot 2 went first: pruned
        for item in listed:
            assert (item["size"], item["truncated"]) == (100, True)
            answer = staff.get(f"/service/{service_name}/logs/{item['container']}")
            assert answer["X-BoatLoad-Archive-Truncated"] == "true"
            assert b"".join(answer.streaming_content) == outputs[item["container"]][-100:]
    finally:
        satellite.stop()
