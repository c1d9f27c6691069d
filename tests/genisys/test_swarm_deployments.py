"""Deployments on the Swarm backend, on a real three-node Swarm (tests/swarm_cluster.py).

A satellite with SATELLITE_CONNECTOR=swarm on the manager runs the service as one Swarm service;
a deployment is Swarm's own rolling update with the policy mapped onto UpdateConfig and
RollbackConfig, its progress read back from UpdateStatus. The images are test_deployments'
(`good` passes the healthcheck, `bad` does not), imported on every node. A poller counts, all the
while, the service's tasks the manager reports running (healthy), so the minimum during a start-first
rollout is asserted, not assumed.
"""
import threading
import time

import pytest

from boatload.models import Host
from genisys.management.commands.genisys import Command as Reconciler
from genisys.models import Deployment, Service
from tests.conftest import RUN_ID, SatelliteProcess, wait_until
from tests.genisys.test_deployments import build_image
from tests.swarm_cluster import SwarmCluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # a cluster start, then Swarm's own pace
REPLICAS = 6
# test_deployments' check, with retries: six engines' worth of tasks on two cores may miss one probe.
HEALTHCHECK = {"test": "test -f /healthy", "interval": "300ms", "timeout": "5s", "retries": 3}
GOOD, BAD = f"boatload-test/swarm-{RUN_ID}:good", f"boatload-test/swarm-{RUN_ID}:bad"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The three-node Swarm, the images on every node, and the swarm satellite on the manager."""
    swarm = SwarmCluster().start()
    try:
        swarm.load(lambda client: (build_image(client, GOOD, healthy=True), build_image(client, BAD, healthy=False)))
        satellite = SatelliteProcess(tmp_path_factory.mktemp("swarm3"), name="swarm3", address="127.0.0.37",
                                     env={"DOCKER_HOST": swarm.manager.docker_host,
                                          "SATELLITE_CONNECTOR": "swarm"}).start()
    except BaseException:
        swarm.stop()
        raise
    yield swarm, satellite
    satellite.stop()
    swarm.stop()


@pytest.fixture
def web(api, db, cluster, service_name):
    """The service of the good image at REPLICAS healthy replicas over the cluster (version 1), as staff."""
    swarm, satellite = cluster
    Host.objects.create(name="swarm3", satellite_url=satellite.url, key_id=satellite.key_id,
                        secret=satellite.secret, last_seen=time_now())
    staff = api("staff")
    staff.post("/compute", {"name": "swarm3", "connector": satellite.url}, format="json")
    created = staff.post("/service", {"name": service_name, "image": GOOD, "command": "sleep 3600",
                                      "healthcheck": HEALTHCHECK, "update": {"min_healthy_time": "1s"}},
                         format="json")
    assert created.status_code == 201, created.json()
    scaled = staff.post(f"/service/{service_name}/scale", {"number": REPLICAS}, format="json")
    assert scaled.status_code == 200, scaled.json()
    assert settle(service_name, scaled.json()["deployment"]["id"]) == "succeeded"
    yield staff
    for service in swarm.manager.client().services.list(filters={"name": f"bl-{service_name}"}):
        service.remove()


def time_now():
    from django.utils import timezone

    return timezone.now()


def settle(name, deployment_id, timeout=240):
    """Reconciler steps until the deployment is no longer running."""
    def step():
        Reconciler().process_one_service(Service.objects.get(name=name))
        state = Deployment.objects.get(pk=deployment_id).state
        return state if state != "running" else None
    try:
        return wait_until(step, timeout=timeout, interval=0.3, message=f"deployment {deployment_id} to end")
    except AssertionError:
        row = Deployment.objects.get(pk=deployment_id)
        raise AssertionError(f"deployment {deployment_id} still {row.state} ({row.reason}): {row.progress}") from None


def put(client, name, **changes):
    current = client.get(f"/service/{name}").json()
    body = {key: current[key] for key in ("image", "command", "environment", "ports", "healthcheck", "update")}
    return client.put(f"/service/{name}", {**body, **changes}, format="json")


def only_version(swarm, name, version):
    """Wait until the service's containers are REPLICAS of `version`: a deployment ends once every task Swarm
    keeps running is of its version and healthy, and the tasks Swarm stops may take their whole stop grace
    (`sleep` as PID 1 ignores SIGTERM) after it."""
    wait_until(lambda: sorted(v for _, v in containers(swarm.engines, name)) == [version] * REPLICAS, timeout=60,
               interval=0.5, message=f"only version {version} to run")


def containers(engines, name, healthy_only=True):
    """[(engine index, version)] of the service's running (and healthy) containers on the engines that answer."""
    found = []
    for engine in engines:
        if engine.process is None or engine.process.poll() is not None:
            continue
        try:
            rows = engine.client().api.containers(filters={"label": f"boatload.service={name}"})
        except Exception:  # noqa: BLE001 - an engine being stopped by the test
            continue
        found += [(engine.index, row["Labels"].get("boatload.version")) for row in rows
                  if row["State"] == "running" and (not healthy_only or "(healthy)" in row["Status"])]
    return found


class Census:
    """Counts every 100 ms the service's tasks that run, in one answer of the manager (with a healthcheck,
    Swarm reports a task running only once it is healthy). Polling the three engines one after the other
    is no snapshot: a replacement that became healthy on one node after it was read, and the old task it
    let stop on another before that was read, would both be missed."""

    def __init__(self, manager, name):
        self.manager, self.name, self.samples, self.running, self.empty = manager, name, [], True, 0
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        client = self.manager.client()
        while self.running:
            tasks = client.api.tasks(filters={"service": f"bl-{self.name}"})
            if tasks:  # the service always has tasks: an empty answer is no observation (the manager busy)
                self.samples.append(sum(1 for task in tasks if task["Status"]["State"] == "running"))
            else:
                self.empty += 1
            time.sleep(0.1)

    def stop(self):
        self.running = False
        self.thread.join()
        return self


def test_a_good_version_rolls_out_start_first_with_swarms_update_config(web, cluster, service_name):
    swarm, _ = cluster
    assert len({index for index, _ in containers(swarm.engines, service_name)}) > 1  # spread over the nodes
    changed = put(web, service_name, environment={"RELEASE": "2"},
                  update={"parallelism": 2, "min_healthy_time": "1s", "order": "start-first"})
    assert changed.status_code == 200, changed.json()
    deployment = changed.json()["deployment"]
    census = Census(swarm.manager, service_name)
    try:
        state = settle(service_name, deployment["id"])
    finally:
        census.stop()
    assert state == "succeeded", Deployment.objects.get(pk=deployment["id"]).reason
    assert min(census.samples) >= REPLICAS  # start-first: never below the desired number
    [service] = swarm.manager.client().services.list(filters={"name": f"bl-{service_name}"})
    spec = service.attrs["Spec"]
    assert spec["UpdateConfig"] == {"Parallelism": 2, "Delay": 1_000_000_000, "Monitor": 1_000_000_000,
                                    "FailureAction": "rollback", "MaxFailureRatio": 0, "Order": "start-first"}
    assert spec["RollbackConfig"]["FailureAction"] == "pause" and spec["RollbackConfig"]["Order"] == "start-first"
    assert spec["TaskTemplate"]["ContainerSpec"]["Healthcheck"]["Test"] == ["CMD-SHELL", "test -f /healthy"]
    only_version(swarm, service_name, "2")
    shown = web.get(deployment["url"]).json()
    # Done when every task has been healthy for min_healthy_time: Swarm's updater may still be sleeping its delay
    # and last monitor window then, or have said completed.
    assert shown["computes"]["swarm3"].pop("swarm") in ({"state": "updating", "message": "update in progress"},
                                                        {"state": "completed", "message": "update completed"})
    assert shown["computes"]["swarm3"] == {"desired": REPLICAS, "updated": REPLICAS, "healthy": REPLICAS,
                                           "failed": 0, "versions": {"2": REPLICAS}}


def test_a_pause_of_a_rollout_swarm_runs_is_refused_naming_the_compute(web, cluster, service_name):
    """Swarm's updater can not be paused: the deployment is not said paused while Swarm goes on."""
    changed = put(web, service_name, environment={"RELEASE": "3"},
                  update={"parallelism": 1, "min_healthy_time": "1s", "order": "start-first"})
    deployment = changed.json()["deployment"]
    Reconciler().process_one_service(Service.objects.get(name=service_name))  # Swarm is given the version
    paused = web.post(f"{deployment['url']}/pause")
    assert paused.status_code == 409, paused.json()
    error = paused.json()["error"]
    assert error["detail"]["field"] == "state" and error["detail"]["swarm"] == ["swarm3"], error
    assert "can not be paused" in error["message"]
    assert settle(service_name, deployment["id"]) == "succeeded"


def test_a_version_whose_healthcheck_fails_is_rolled_back_by_swarm(web, cluster, service_name):
    swarm, _ = cluster
    changed = put(web, service_name, image=BAD, update={"parallelism": 1, "min_healthy_time": "1s",
                                                         "order": "start-first"})
    deployment = changed.json()["deployment"]
    census = Census(swarm.manager, service_name)
    try:
        state = settle(service_name, deployment["id"])
    finally:
        census.stop()
    assert state == "rolled_back"
    assert min(census.samples) >= REPLICAS, (census.samples, census.empty)  # start-first: the old ones served
    shown = web.get(deployment["url"]).json()
    assert "Swarm rolled the update back" in shown["reason"], shown
    assert shown["rolling_back"] is True and shown["target_version"] == 1
    assert shown["computes"]["swarm3"]["swarm"]["state"] == "rollback_completed"
    only_version(swarm, service_name, "1")
    service = web.get(f"/service/{service_name}").json()
    assert service["image"] == GOOD and service["version"] == 1


def test_a_worker_stopped_mid_rollout_is_rescheduled_and_status_counts_only_running(web, cluster, service_name):
    swarm, _ = cluster
    worker = swarm.workers[-1]
    assert any(index == worker.index for index, _ in containers(swarm.engines, service_name))
    changed = put(web, service_name, environment={"RELEASE": "2"},
                  update={"parallelism": 1, "min_healthy_time": "1s", "order": "start-first",
                          "progress_deadline": "120s"})
    deployment = changed.json()["deployment"]
    wait_until(lambda: Reconciler().process_one_service(Service.objects.get(name=service_name)).progress[
        "swarm3"]["updated"] >= 1, timeout=60, message="the first batch")
    swarm.stop_engine(worker)
    state = settle(service_name, deployment["id"], timeout=300)
    assert state in ("succeeded", "rolled_back", "failed")

    def status_matches():
        running = len(containers(swarm.engines, service_name, healthy_only=False))
        answer = web.get(f"/service/{service_name}/status").json()
        return running == REPLICAS and answer["running_resources"] == running
    wait_until(status_matches, timeout=120, interval=0.5, message="Swarm rescheduling onto the live nodes")
    assert {index for index, _ in containers(swarm.engines, service_name)} <= {e.index for e in swarm.engines[:2]}


@pytest.fixture
def all_nodes(cluster):
    """Every node of the cluster up and ready (the worker test above stops an engine and leaves it stopped)."""
    swarm, _ = cluster
    for engine in swarm.engines:
        if engine.process is None or engine.process.poll() is not None:
            swarm.restart_engine(engine)
    swarm.wait_nodes_ready(len(swarm.engines), timeout=120)
    return swarm


def node_of(engine):
    return engine.client().info()["Swarm"]["NodeID"]


def availability(swarm, engine, value):
    """Set one node's availability (`drain` moves its tasks off; `active` lets Swarm place tasks there again)."""
    node = swarm.manager.client().nodes.get(node_of(engine))
    node.update({**node.attrs["Spec"], "Availability": value})


def spread(swarm, name):
    """{node id: the service's tasks running there} over the nodes Swarm may place a task on now."""
    manager = swarm.manager.client()
    active = [node.id for node in manager.nodes.list() if node.attrs["Status"]["State"] == "ready"
              and node.attrs["Spec"]["Availability"] == "active"]
    tasks = manager.api.tasks(filters={"service": f"bl-{name}", "desired-state": "running"})
    return {node: sum(1 for task in tasks if task.get("NodeID") == node and task["Status"]["State"] == "running")
            for node in active}


def drained_onto_the_rest(swarm, name, engines):
    """Drain `engines`, wait until every replica runs on the other nodes, then make them active again: the
    service's tasks now sit on fewer nodes than Swarm may use (it never moves running tasks by itself)."""
    for engine in engines:
        availability(swarm, engine, "drain")
    wait_until(lambda: sum(spread(swarm, name).values()) == REPLICAS, timeout=120, interval=0.5,
               message="the drained nodes' tasks rescheduled")
    for engine in engines:
        availability(swarm, engine, "active")
    shown = spread(swarm, name)
    assert len(shown) == 3 and all(shown[node_of(engine)] == 0 for engine in engines), shown
    return shown


def test_a_rebalance_spreads_the_tasks_over_the_nodes_healthy_and_never_below_desired(all_nodes, web, cluster,
                                                                                        service_name, settings):
    settings.HOST_DOWN_AFTER = 3600  # the host row is not refreshed by heartbeats here
    swarm, _ = cluster
    try:
        drained_onto_the_rest(swarm, service_name, swarm.workers)  # all six on the manager
        census = Census(swarm.manager, service_name)
        try:
            answer = web.post(f"/service/{service_name}/rebalance")
            assert answer.status_code == 200, answer.json()
            deployment = answer.json()
            assert deployment["kind"] == "rebalance" and deployment["state"] == "running"
            assert settle(service_name, deployment["id"], timeout=300) == "succeeded"
        finally:
            census.stop()
        assert min(census.samples) >= REPLICAS, (census.samples, census.empty)  # healthy before an old one goes
        counts = spread(swarm, service_name)
        assert sum(counts.values()) == REPLICAS and max(counts.values()) - min(counts.values()) <= 1, counts
        shown = web.get(deployment["url"]).json()
        entry = shown["computes"]["swarm3"]
        assert (entry["desired"], entry["healthy"], entry["target"]) == (REPLICAS, REPLICAS, REPLICAS), shown
        assert sorted(entry["nodes"].values()) == sorted(counts.values()) and shown["finished"] is not None
        assert 1 <= entry["surges"] <= 2 * REPLICAS, entry
        # A node joining (made active again after a drain) starts one on its own with the setting on.
        settings.GENISYS_REBALANCE_ON_JOIN = True
        drained_onto_the_rest(swarm, service_name, swarm.workers[-1:])
        Reconciler().process_one_service(Service.objects.get(name=service_name))
        started = Deployment.objects.filter(service__name=service_name, kind="rebalance").exclude(
            pk=deployment["id"]).get()
        assert started.state == "running" and "joined" in started.reason, started.reason
        assert node_of(swarm.workers[-1])[:12] in started.reason
        assert settle(service_name, started.pk, timeout=300) == "succeeded"
        counts = spread(swarm, service_name)
        assert sum(counts.values()) == REPLICAS and max(counts.values()) - min(counts.values()) <= 1, counts
    finally:
        for worker in swarm.workers:
            availability(swarm, worker, "active")


def test_an_update_swarm_paused_shows_paused_and_resume_resumes_it_to_the_end(all_nodes, web, cluster, service_name):
    swarm, _ = cluster
    flaky = f"boatload-test/swarm-{RUN_ID}:flaky-{service_name}"
    swarm.load(lambda client: build_image(client, flaky, healthy=False))
    try:
        changed = put(web, service_name, image=flaky, update={"parallelism": 1, "min_healthy_time": "1s",
                                                              "order": "start-first", "failure_action": "pause"})
        deployment = changed.json()["deployment"]
        assert settle(service_name, deployment["id"]) == "paused"
        shown = web.get(deployment["url"]).json()
        assert "Swarm paused the update" in shown["reason"], shown
        assert shown["computes"]["swarm3"]["swarm"]["state"] == "paused"
        swarm.load(lambda client: build_image(client, flaky, healthy=True))  # the tag names a good image now
        resumed = web.post(f"{deployment['url']}/resume")
        assert resumed.status_code == 200 and resumed.json()["state"] == "running", resumed.json()
        assert settle(service_name, deployment["id"], timeout=300) == "succeeded", \
            Deployment.objects.get(pk=deployment["id"]).reason
        only_version(swarm, service_name, "2")
        assert web.get(deployment["url"]).json()["computes"]["swarm3"]["swarm"]["state"] in ("updating", "completed")
    finally:
        for engine in swarm.engines:
            try:
                engine.client().images.remove(flaky, force=True)
            except Exception:  # noqa: BLE001 - a task of the service may still hold it; the cluster goes at the end
                pass


def test_a_task_not_healthy_by_healthy_deadline_fails_the_deployment_with_its_failure_action(all_nodes, web, cluster,
                                                                                             service_name):
    swarm, _ = cluster
    # Within start_period a failing check keeps the task `starting`: Swarm's updater would wait for it.
    changed = put(web, service_name, image=BAD, healthcheck={**HEALTHCHECK, "start_period": "10m"},
                  update={"parallelism": 1, "min_healthy_time": "1s", "order": "start-first",
                          "healthy_deadline": "5s"})
    deployment = changed.json()["deployment"]
    census = Census(swarm.manager, service_name)
    try:
        state = settle(service_name, deployment["id"], timeout=150)
    finally:
        census.stop()
    shown = web.get(deployment["url"]).json()
    assert state == "rolled_back", shown
    assert "not healthy within healthy_deadline (5s)" in shown["reason"], shown
    assert min(census.samples) >= REPLICAS, (census.samples, census.empty)  # start-first: the old ones served
    only_version(swarm, service_name, "1")


@pytest.mark.parametrize(("body", "field"), [
    ({"number": 1, "policy": {"parallelism": 0}}, "policy.parallelism"),
    ({"number": 1, "policy": {"healthy_deadline": "soon"}}, "policy.healthy_deadline"),
    ({"number": 1, "policy": {}, "resume": "../x"}, "resume"),
    ({"number": 1, "policy": {"order": "random"}}, "policy.order"),
    ({"number": -1, "policy": {}}, "number"),
    ({"number": 1, "policy": {}, "definition": {"image": GOOD}}, "definition.version"),
    ({"number": 1, "policy": {}, "definition": {"image": GOOD, "version": 2, "ports": ["x"]}}, "definition.ports"),
])
def test_a_bad_rollout_is_400_naming_the_field_and_changes_nothing(cluster, service_name, body, field):
    swarm, satellite = cluster
    session = satellite.signed()
    defined = session.put(f"{satellite.url}/service/{service_name}", json={"image": GOOD})
    assert defined.status_code == 200, defined.text
    answer = session.post(f"{satellite.url}/service/{service_name}/rollout",
                          json={"definition": {"image": GOOD, "version": 2}, **body})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["detail"]["field"] == field
    assert not swarm.manager.client().services.list(filters={"name": f"bl-{service_name}"})
