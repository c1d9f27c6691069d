"""Rebalance (issue 15 item 6): a service's slots moved to an even spread over two satellites on two engines.

The service runs the good image of test_deployments (healthcheck `test -f /healthy`), imported into both
engines. A census thread counts, all the while, the containers both engines report running and healthy,
so the minimum during a rebalance is asserted: a new slot healthy before an old one goes. The reconciler's
steps are called directly, as in test_deployments.
"""
import threading
import time

import pytest

from genisys.management.commands.genisys import Command as Reconciler
from genisys.models import Deployment, Desired, Service
from tests.conftest import RUN_ID
from tests.genisys.test_crash_safety import STEADY
from tests.genisys.test_deployments import build_image, step_until_settled

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def good_everywhere(docker_client, engines):
    """The good image under one tag on both engines (there is no registry to pull it from)."""
    tag = f"boatload-test/rebalance-{RUN_ID}:good"
    clients = [docker_client, engines(1).client()]
    for client in clients:
        build_image(client, tag, healthy=True)
    yield tag
    for client in clients:
        try:
            client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001 - a container of a failed test may still hold it; the run label reaps it
            pass


@pytest.fixture
def engine_clients(docker_client, engines, service_name):
    clients = {"gen-a": docker_client, "gen-b": engines(1).client()}
    yield clients
    for client in clients.values():
        for container in client.containers.list(all=True, filters={"label": f"boatload.service={service_name}"}):
            container.remove(force=True)


class FleetCensus:
    """Every 50 ms: the service's containers running and healthy on each engine, and their sum."""

    def __init__(self, clients, name):
        self.clients, self.name = clients, name
        self.samples, self.running = [], True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def now(self):
        counts = {}
        for compute, client in self.clients.items():
            rows = client.api.containers(filters={"label": f"boatload.service={self.name}", "status": "running"})
            counts[compute] = sum(1 for row in rows if "(healthy)" in row["Status"])
        return counts

    def _sample(self):
        while self.running:
            self.samples.append(self.now())
            time.sleep(0.05)

    def stop(self):
        self.running = False
        self.thread.join()
        return self

    def minimum(self):
        return min(sum(sample.values()) for sample in self.samples)


def held(clients, name):
    """{compute: containers of the service on its engine}."""
    return {compute: len(client.containers.list(all=True, filters={"label": f"boatload.service={name}"}))
            for compute, client in clients.items()}


@pytest.fixture
def lopsided(api, hosts, connectors, good_everywhere, service_name, settings):
    """A service spread (`compute: "*"`) while only gen-a was defined: 4 healthy slots there. Then gen-b is
    added as a compute, so an even spread is 2 and 2."""
    settings.HOST_DOWN_AFTER = 3600  # the hosts' rows are not refreshed by heartbeats here
    staff = api("staff")
    staff.post("/compute", {"name": "gen-a", "connector": connectors["gen-a"].url}, format="json")
    created = staff.post("/service", {"name": service_name, "image": good_everywhere, "command": "sleep 3600",
                                      "healthcheck": STEADY,
                                      "update": {"min_healthy_time": "500ms", "parallelism": 1}}, format="json")
    assert created.status_code == 201, created.json()
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 4, "compute": "*"}, format="json")
    assert scaled.status_code == 200, scaled.json()
    assert step_until_settled(service_name, scaled.json()["deployment"]["id"]) == "succeeded"
    assert staff.post("/compute", {"name": "gen-b", "connector": connectors["gen-b"].url},
                      format="json").status_code == 201
    return staff


def test_rebalance_moves_slots_to_an_even_spread_healthy_before_old_ones_go(lopsided, service_name,
                                                                            engine_clients):
    census = FleetCensus(engine_clients, service_name)
    try:
        answer = lopsided.post(f"/service/{service_name}/rebalance")
        assert answer.status_code == 200, answer.json()
        deployment = answer.json()
        assert deployment["kind"] == "rebalance" and deployment["state"] == "running"
        assert answer["Location"] == deployment["url"]
        assert step_until_settled(service_name, deployment["id"]) == "succeeded"
    finally:
        census.stop()
    assert census.minimum() >= 4  # never below the desired total: a new slot healthy before an old one goes
    assert held(engine_clients, service_name) == {"gen-a": 2, "gen-b": 2}
    assert {d.compute.name: d.number for d in Desired.objects.filter(service__name=service_name)} == {
        "gen-a": 2, "gen-b": 2}
    shown = lopsided.get(deployment["url"]).json()
    assert {name: (entry["desired"], entry["healthy"], entry["target"]) for name, entry in shown["computes"].items()
            } == {"gen-a": (2, 2, 2), "gen-b": (2, 2, 2)}
    again = lopsided.post(f"/service/{service_name}/rebalance?wait=1m")  # nothing to move: done at once
    assert again.status_code == 200 and again.json()["state"] == "succeeded", again.json()
    assert again.json()["reason"] == "evenly spread already"


def test_rebalance_refuses_while_a_deployment_runs_and_without_a_healthy_compute(lopsided, service_name, hosts):
    before = Deployment.objects.filter(service__name=service_name).count()
    bad = lopsided.post(f"/service/{service_name}/rebalance?wait=soon")
    assert bad.status_code == 400 and bad.json()["error"]["detail"]["field"] == "wait"
    current = lopsided.get(f"/service/{service_name}").json()
    changed = lopsided.put(f"/service/{service_name}", {**{k: current[k] for k in (
        "image", "command", "healthcheck", "update")}, "environment": {"RELEASE": "2"}}, format="json")
    assert changed.status_code == 200 and changed.json()["deployment"]["state"] == "running"
    busy = lopsided.post(f"/service/{service_name}/rebalance")
    assert busy.status_code == 409, busy.json()
    assert busy.json()["error"]["detail"] == {"field": "deployment", "deployment": changed.json()["deployment"]["id"],
                                              "state": "running"}
    assert Deployment.objects.filter(service__name=service_name).count() == before + 1
    assert step_until_settled(service_name, changed.json()["deployment"]["id"]) == "succeeded"
    for host in hosts.values():
        host.state = "down"
        host.save(update_fields=["state"])
    down = lopsided.post(f"/service/{service_name}/rebalance")
    assert down.status_code == 503 and down.json()["error"]["code"] == "no_healthy_compute", down.json()
    assert Deployment.objects.filter(service__name=service_name).count() == before + 1  # nothing made
    assert not Service.objects.get(name=service_name).deployments.filter(kind="rebalance").exists()
    assert lopsided.post("/service/nosuchservice/rebalance").status_code == 404


def test_a_compute_joining_rebalances_a_spread_service_when_the_setting_says_so(lopsided, service_name,
                                                                               engine_clients, settings):
    service = Service.objects.get(name=service_name)
    settings.GENISYS_REBALANCE_ON_JOIN = False
    Reconciler().process_one_service(service)
    assert not service.deployments.filter(kind="rebalance").exists()  # off: nothing moves
    settings.GENISYS_REBALANCE_ON_JOIN = True
    Reconciler().process_one_service(Service.objects.get(name=service_name))
    started = service.deployments.get(kind="rebalance")
    assert started.state == "running" and started.reason == "compute gen-b joined" and started.started_by is None
    assert step_until_settled(service_name, started.pk) == "succeeded"
    assert held(engine_clients, service_name) == {"gen-a": 2, "gen-b": 2}
    Reconciler().process_one_service(Service.objects.get(name=service_name))
    assert service.deployments.filter(kind="rebalance").count() == 1  # balanced: no second one
    pinned = lopsided.post(f"/service/{service_name}/scale", {"number": 2, "compute": "gen-a"}, format="json")
    assert pinned.status_code == 200, pinned.json()
    assert step_until_settled(service_name, pinned.json()["deployment"]["id"]) == "succeeded"
    Reconciler().process_one_service(Service.objects.get(name=service_name))  # scaled onto one compute by name
    assert service.deployments.filter(kind="rebalance").count() == 1  # so it is not spread: left where it is


def test_a_rebalance_whose_new_slots_never_get_healthy_fails_and_takes_them_back(lopsided, service_name,
                                                                                  engine_clients):
    tag = Service.objects.get(name=service_name).image
    engine_clients["gen-b"].images.remove(tag, force=True)
    try:
        failing_rebalance(lopsided, service_name, engine_clients)
    finally:
        build_image(engine_clients["gen-b"], tag, healthy=True)


def failing_rebalance(lopsided, service_name, engine_clients):
    Service.objects.filter(name=service_name).update(update={"min_healthy_time": "500ms",
                                                             "progress_deadline": "3s"})
    census = FleetCensus(engine_clients, service_name)
    try:
        answer = lopsided.post(f"/service/{service_name}/rebalance")
        assert step_until_settled(service_name, answer.json()["id"]) == "failed"
    finally:
        census.stop()
    assert census.minimum() >= 4
    shown = lopsided.get(answer.json()["url"]).json()
    assert "progress_deadline" in shown["reason"]
    assert {d.compute.name: d.number for d in Desired.objects.filter(service__name=service_name)} == {
        "gen-a": 4, "gen-b": 0}  # the slot gen-b could not run is taken back
    assert held(engine_clients, service_name)["gen-a"] == 4
