"""Crash safety of deployments (issue 15 item 8): the reconciler (start-first; test_deployments kills one
mid stop-first rollout), the API and a satellite SIGKILLed mid-rollout, and what a satellite killed between
a container's create and its start leaves behind.

Real processes: the API under gunicorn (tests/live.py), `manage.py genisys` and the satellite, each killed
with SIGKILL. The census of test_deployments polls Docker all along: its minimum of healthy containers
with `start-first` is the desired number, and no slot ever holds two containers of one version.
"""
import signal
import threading

import psutil
import pytest
import requests
from django.db import connection

from genisys.models import Deployment
from tests.conftest import jwt_for, wait_until
from tests.genisys import test_deployments as deployments
from tests.genisys.test_deployments import Census, put, service_versions, step_until_settled
from tests.live import ApiServer

pytestmark = pytest.mark.slow
# test_deployments' fixtures, by name here: its images, the reconciler processes, and the removal of the
# service's containers after each test.
images, reconciler = deployments.images, deployments.reconciler
remove_service_containers = deployments.remove_service_containers
START_FIRST = {"parallelism": 1, "min_healthy_time": "1s", "order": "start-first"}
# test_deployments' healthcheck, tolerant of a slow check: with one retry, a check that took over its
# timeout on a loaded machine made a healthy old container "unhealthy" for a moment (seen here), and a
# minimum of the census is asserted. The new and old images differ in nothing else.
STEADY = {**deployments.HEALTHCHECK, "timeout": "5s", "retries": 5}


def steady_web(staff, connectors, images, name):
    """The `web` service of test_deployments (4 slots of version 1 on gen-a) with the STEADY healthcheck."""
    staff.post("/compute", {"name": "gen-a", "connector": connectors["gen-a"].url}, format="json")
    created = staff.post("/service", {"name": name, "image": images["good"], "command": "sleep 3600",
                                      "healthcheck": STEADY, "update": {"min_healthy_time": "500ms"}}, format="json")
    assert created.status_code == 201, created.json()


@pytest.fixture
def web(api, hosts, connectors, images, service_name):
    """4 healthy slots of version 1, the reconciler's steps called here."""
    staff = api("staff")
    steady_web(staff, connectors, images, service_name)
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 4}, format="json")
    assert step_until_settled(service_name, scaled.json()["deployment"]["id"]) == "succeeded"
    return staff


@pytest.fixture
def web_live(reconciler, api, users, hosts, connectors, images, service_name):
    """4 healthy slots of version 1, with a reconciler process at work."""
    staff = api("staff")
    steady_web(staff, connectors, images, service_name)
    process = reconciler()
    scaled = staff.post(f"/service/{service_name}/scale?wait=5m", {"number": 4}, format="json")
    assert scaled.status_code == 200 and scaled.json()["deployment"]["state"] == "succeeded", scaled.json()
    return staff, process


def kill_tree(process):
    """SIGKILL a process and every process under it (gunicorn's master and its workers) at once."""
    tree = psutil.Process(process.pid)
    for member in [*tree.children(recursive=True), tree]:
        member.send_signal(signal.SIGKILL)
    process.wait(10)


def healthy_of(deployment_id, at_least):
    return lambda: Deployment.objects.get(pk=deployment_id).progress.get("gen-a", {}).get("healthy", 0) >= at_least


def definition_body(client, name, **changes):
    current = client.get(f"/service/{name}").json()
    return {**{key: current[key] for key in ("image", "command", "environment", "ports", "healthcheck", "update")},
            **changes}


@pytest.fixture
def api_servers(tmp_path):
    servers = []

    def start():
        server = ApiServer(tmp_path / f"api-{len(servers)}.log", connection.settings_dict["NAME"])
        server.env.update({"BOATLOAD_HOST_DOWN_AFTER": "3600"})
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


def test_a_sigkilled_reconciler_mid_start_first_rollout_never_drops_below_the_desired_count(
        web_live, reconciler, service_name, docker_client):
    staff, first = web_live  # test_deployments kills one mid stop-first rollout
    changed = put(staff, service_name, environment={"RELEASE": "2"}, update=START_FIRST)
    deployment_id = changed.json()["deployment"]["id"]
    census = Census(docker_client, service_name)
    try:
        wait_until(healthy_of(deployment_id, 1), timeout=300, message="one slot of version 2 healthy")
        first.kill()
        assert Deployment.objects.get(pk=deployment_id).progress["gen-a"]["healthy"] < 4
        reconciler()
        wait_until(lambda: Deployment.objects.get(pk=deployment_id).state != "running", timeout=300,
                   message="the deployment ending after the restart")
    finally:
        census.stop()
    assert Deployment.objects.get(pk=deployment_id).state == "succeeded"
    assert census.twins == 1
    assert census.minimum() == 4
    assert service_versions(docker_client, service_name) == [(slot, "2") for slot in range(4)]


def test_a_sigkilled_api_mid_rollout_leaves_the_deployment_going_and_a_new_api_answers_it(
        web_live, api_servers, users, service_name, docker_client):
    staff, _ = web_live
    first = api_servers()
    headers = {"Authorization": f"Bearer {jwt_for(users['staff'])}"}
    body = definition_body(staff, service_name, environment={"RELEASE": "2"}, update=START_FIRST)
    answers = []

    def ci_step():  # a CI job waiting on the outcome through the API that is about to die
        try:
            answers.append(requests.put(f"{first.url}/service/{service_name}?wait=5m", json=body, headers=headers,
                                        timeout=300))
        except requests.RequestException as error:
            answers.append(error)

    census = Census(docker_client, service_name)
    try:
        waiter = threading.Thread(target=ci_step)
        waiter.start()
        deployment = wait_until(lambda: Deployment.objects.filter(service__name=service_name, to_version=2).first(),
                                timeout=60, message="the deployment of version 2")
        wait_until(healthy_of(deployment.pk, 1), timeout=300, message="one slot of version 2 healthy")
        kill_tree(first.process)
        waiter.join(60)
        assert len(answers) == 1 and isinstance(answers[0], requests.ConnectionError)  # its API is gone
        assert Deployment.objects.get(pk=deployment.pk).state == "running"
        wait_until(lambda: Deployment.objects.get(pk=deployment.pk).state != "running", timeout=300,
                   message="the deployment ending with no API running")
        second = api_servers()
        shown = requests.get(f"{second.url}/service/{service_name}/deployments/{deployment.pk}", headers=headers,
                             timeout=30)
    finally:
        census.stop()
    assert shown.status_code == 200 and shown.json()["state"] == "succeeded", shown.text
    assert shown.json()["computes"]["gen-a"]["healthy"] == 4
    assert census.twins == 1
    assert census.minimum() == 4  # start-first: never below the desired number
    assert service_versions(docker_client, service_name) == [(slot, "2") for slot in range(4)]
    assert Deployment.objects.filter(service__name=service_name, to_version=2).count() == 1


def test_a_sigkilled_satellite_mid_rollout_stalls_it_and_it_resumes_when_the_satellite_is_back(
        web_live, connectors, service_name, docker_client):
    staff, _ = web_live
    changed = put(staff, service_name, environment={"RELEASE": "2"}, update=START_FIRST)
    deployment_id = changed.json()["deployment"]["id"]
    satellite = connectors["gen-a"]
    census = Census(docker_client, service_name)
    try:
        wait_until(healthy_of(deployment_id, 1), timeout=300, message="one slot of version 2 healthy")
        kill_tree(satellite.process)  # the host's satellite gone at once, its gunicorn worker too
        satellite.log.close()
        wait_until(lambda: "error" in Deployment.objects.get(pk=deployment_id).progress["gen-a"], timeout=60,
                   message="the reconciler finding the satellite gone")
        stalled = Deployment.objects.get(pk=deployment_id)
        assert stalled.state == "running" and stalled.progress["gen-a"]["healthy"] < 4
        satellite.start()
        wait_until(lambda: Deployment.objects.get(pk=deployment_id).state != "running", timeout=300,
                   message="the deployment ending after the satellite came back")
    finally:
        if satellite.process.poll() is not None:
            satellite.start()
        census.stop()
    ended = Deployment.objects.get(pk=deployment_id)
    assert ended.state == "succeeded", ended.reason
    assert "error" not in ended.progress["gen-a"]
    assert census.twins == 1
    assert census.minimum() == 4  # start-first: the running containers never depended on the satellite
    assert service_versions(docker_client, service_name) == [(slot, "2") for slot in range(4)]


def test_a_container_a_killed_satellite_created_but_never_started_is_replaced_not_waited_for(
        web, service_name, docker_client):
    changed = put(web, service_name, environment={"RELEASE": "2"},
                  update={**START_FIRST, "min_healthy_time": "300ms", "healthy_deadline": "20s"})
    deployment = changed.json()["deployment"]
    [old] = [c for c in docker_client.containers.list(filters={"label": f"boatload.service={service_name}"})
             if c.name == f"bl-{service_name}-0"]
    # What a satellite SIGKILLed between Docker's create and start leaves: slot 0's container of version 2,
    # with every label the satellite gives it, created and never started.
    remnant = docker_client.api.create_container(old.attrs["Image"], command=["sleep", "3600"],
                                                 labels={**old.labels, "boatload.version": "2"},
                                                 name=f"bl-{service_name}-0-1")["Id"]
    census = Census(docker_client, service_name)
    try:
        state = step_until_settled(service_name, deployment["id"])
    finally:
        census.stop()
    assert state == "succeeded", Deployment.objects.get(pk=deployment["id"]).reason
    assert census.twins == 1 and census.minimum() == 4
    assert service_versions(docker_client, service_name) == [(slot, "2") for slot in range(4)]
    left = docker_client.api.containers(all=True, filters={"label": f"boatload.service={service_name}"})
    assert remnant not in {row["Id"] for row in left}
