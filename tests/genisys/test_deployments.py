"""Deployments: versions, healthchecks and health-gated rolling updates, on a real satellite and engine.

Two images made here with `docker import` from the host's static busybox: `good` holds /healthy,
`bad` does not, and every definition's healthcheck is `test -f /healthy`, so the bad one's
containers run but Docker calls them unhealthy. The reconciler's steps are called directly (as
the other Genisys tests do); a poller thread counts, all the while, the containers Docker reports
running and healthy, so the minimum of that count during a rollout is asserted, not assumed.
"""
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path

import pytest

from boatload import loop
from genisys.management.commands.genisys import Command as Reconciler
from genisys.models import Deployment, Service, ServiceVersion
from tests.conftest import ROOT, RUN_ID, wait_until

pytestmark = pytest.mark.slow
HEALTHCHECK = {"test": "test -f /healthy", "interval": "300ms", "timeout": "2s", "retries": 1}


def build_image(docker_client, tag, healthy, release=b""):
    """A busybox root file system, with /healthy when `healthy` and /release holding `release`, imported as
    `tag` (no registry)."""
    import io

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add("/bin/busybox", arcname="bin/busybox")
        for tool in subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True).stdout.split():
            if tool != "busybox":
                link = tarfile.TarInfo(f"bin/{tool}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        if release:
            note = tarfile.TarInfo("release")
            note.size = len(release)
            tar.addfile(note, io.BytesIO(release))
        if healthy:
            marker = tarfile.TarInfo("healthy")
            marker.size = 3
            tar.addfile(marker, io.BytesIO(b"ok\n"))
    repository, version = tag.rsplit(":", 1)
    docker_client.api.import_image_from_data(buffer.getvalue(), repository=repository, tag=version,
                                             changes=["ENV PATH=/bin", 'CMD ["/bin/sh"]'])
    return tag


@pytest.fixture(scope="session")
def images(docker_client):
    tags = {"good": build_image(docker_client, f"boatload-test/deploy-{RUN_ID}:good", healthy=True),
            "bad": build_image(docker_client, f"boatload-test/deploy-{RUN_ID}:bad", healthy=False)}
    yield tags
    for tag in tags.values():
        try:
            docker_client.images.remove(tag, force=True)
        except Exception:  # noqa: BLE001 - a container of a failed test may still hold it; the run label reaps it
            pass


def remove_containers_of(service_name, docker_client):
    for container in docker_client.containers.list(all=True, filters={"label": f"boatload.service={service_name}"}):
        container.remove(force=True)


@pytest.fixture(autouse=True)
def remove_service_containers(service_name, docker_client):
    yield
    remove_containers_of(service_name, docker_client)


@pytest.fixture
def made_images(service_name, docker_client):
    """The ids of the images a test builds (it appends them), removed after the containers that run them."""
    made = []
    yield made
    remove_containers_of(service_name, docker_client)
    for image_id in made:
        try:
            docker_client.images.remove(image_id, force=True)
        except Exception:  # noqa: BLE001 - gone already
            pass


class Census:
    """Counts, every 50 ms in the background, the service's containers Docker reports running and healthy
    (per version), and the most containers ever seen in one slot for one version."""

    def __init__(self, docker_client, name):
        self.client, self.name = docker_client, name
        self.samples, self.twins, self.running = [], 0, True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def now(self):
        rows = self.client.api.containers(all=True, filters={"label": f"boatload.service={self.name}"})
        healthy, per_slot = {}, {}
        for row in rows:
            labels = row["Labels"]
            key = (labels.get("boatload.slot"), labels.get("boatload.version"))
            per_slot[key] = per_slot.get(key, 0) + 1
            if row["State"] == "running" and "(healthy)" in row["Status"]:
                healthy[labels.get("boatload.version")] = healthy.get(labels.get("boatload.version"), 0) + 1
        return healthy, max(per_slot.values(), default=0)

    def _sample(self):
        while self.running:
            healthy, most = self.now()
            self.samples.append(healthy)
            self.twins = max(self.twins, most)
            time.sleep(0.05)

    def stop(self):
        self.running = False
        self.thread.join()
        return self

    def minimum(self, version=None):
        return min(sum(s.values()) if version is None else s.get(str(version), 0) for s in self.samples)


def step_until_settled(service_name, deployment_id, limit=400):
    """Reconciler steps until the deployment is no longer running (a pause counts: it stops there)."""
    for _ in range(limit):
        Reconciler().process_one_service(Service.objects.get(name=service_name))
        state = Deployment.objects.get(pk=deployment_id).state
        if state != "running":
            return state
        time.sleep(0.1)
    raise AssertionError(f"deployment {deployment_id} still running after {limit} steps")


def service_versions(docker_client, name):
    rows = docker_client.api.containers(all=True, filters={"label": f"boatload.service={name}"})
    return sorted((int(r["Labels"]["boatload.slot"]), r["Labels"].get("boatload.version")) for r in rows)


@pytest.fixture
def web(api, hosts, connectors, images, service_name, docker_client):
    """A service of the good image at 4 healthy slots on gen-a (version 1), as staff."""
    staff = api("staff")
    staff.post("/compute", {"name": "gen-a", "connector": connectors["gen-a"].url}, format="json")
    created = staff.post("/service", {"name": service_name, "image": images["good"], "command": "sleep 3600",
                                      "healthcheck": HEALTHCHECK, "update": {"min_healthy_time": "500ms"}},
                         format="json")
    assert created.status_code == 201, created.json()
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 4}, format="json")
    assert scaled.status_code == 200, scaled.json()
    assert step_until_settled(service_name, scaled.json()["deployment"]["id"]) == "succeeded"
    return staff


def put(client, name, wait=None, **changes):
    current = client.get(f"/service/{name}").json()
    body = {key: current[key] for key in ("image", "command", "environment", "ports", "healthcheck", "memory", "cpus",
                                          "update")}
    suffix = f"?wait={wait}" if wait is not None else ""
    return client.put(f"/service/{name}{suffix}", {**body, **changes}, format="json")


def test_a_definition_change_is_a_new_version_listed_and_labelled(web, service_name, docker_client, settings):
    settings.GENISYS_VERSION_HISTORY = 3
    assert service_versions(docker_client, service_name) == [(slot, "1") for slot in range(4)]
    [container] = docker_client.containers.list(filters={"name": f"bl-{service_name}-0"})
    check = container.attrs["Config"]["Healthcheck"]
    assert check == {"Test": ["CMD-SHELL", "test -f /healthy"], "Interval": 300_000_000, "Timeout": 2_000_000_000,
                     "Retries": 1}
    only_policy = put(web, service_name, update={"min_healthy_time": "0s", "parallelism": 4})
    assert only_policy.status_code == 200 and only_policy.json()["deployment"] is None  # nothing that runs changed
    for number in range(2, 6):
        changed = put(web, service_name, environment={"RELEASE": str(number)})
        assert changed.status_code == 200 and changed.json()["version"] == number
        assert changed.json()["deployment"]["from_version"] == number - 1
        assert changed.json()["deployment"]["to_version"] == number
    versions = web.get(f"/service/{service_name}/versions").json()
    assert [v["version"] for v in versions] == [5, 4, 3]  # bounded by GENISYS_VERSION_HISTORY
    assert versions[0]["current"] is True and versions[0]["definition"]["environment"] == {"RELEASE": "5"}
    assert versions[0]["created_by"] == "staff"
    deployments = web.get(f"/service/{service_name}/deployments").json()
    assert [d["state"] for d in deployments[:4]] == ["running", "failed", "failed", "failed"]  # superseded
    assert "superseded" in deployments[1]["reason"]
    assert step_until_settled(service_name, deployments[0]["id"]) == "succeeded"
    assert service_versions(docker_client, service_name) == [(slot, "5") for slot in range(4)]


def test_limits_are_part_of_a_version_and_its_containers_get_them(web, service_name, docker_client):
    changed = put(web, service_name, memory="64m", cpus=0.5, update={"parallelism": 4, "min_healthy_time": "0s"})
    assert changed.status_code == 200, changed.json()
    assert changed.json()["version"] == 2 and changed.json()["deployment"]["to_version"] == 2
    assert web.get(f"/service/{service_name}/versions").json()[0]["definition"]["memory"] == "64m"
    assert step_until_settled(service_name, changed.json()["deployment"]["id"]) == "succeeded"
    assert service_versions(docker_client, service_name) == [(slot, "2") for slot in range(4)]
    for container in docker_client.containers.list(filters={"label": f"boatload.service={service_name}"}):
        assert (container.attrs["HostConfig"]["Memory"], container.attrs["HostConfig"]["NanoCpus"]) == (
            64 * 1024 * 1024, 500_000_000)
    same = put(web, service_name, memory="64m", cpus=0.5)
    assert same.status_code == 200 and same.json()["deployment"] is None  # nothing that runs changed


def test_a_good_version_rolls_out_in_batches_with_the_rest_serving(web, service_name, docker_client):
    changed = put(web, service_name, environment={"RELEASE": "2"},
                  update={"parallelism": 2, "min_healthy_time": "500ms", "order": "stop-first"})
    deployment = changed.json()["deployment"]
    census = Census(docker_client, service_name)
    try:
        state = step_until_settled(service_name, deployment["id"])
    finally:
        census.stop()
    assert state == "succeeded"
    assert census.minimum() >= 4 - 2  # stop-first: never more than a batch (parallelism) down at once
    assert census.twins == 1
    assert service_versions(docker_client, service_name) == [(slot, "2") for slot in range(4)]
    shown = web.get(deployment["url"]).json()
    assert shown["computes"]["gen-a"] == {"desired": 4, "updated": 4, "healthy": 4, "failed": 0,
                                          "versions": {"2": 4}}
    assert shown["started_by"] == "staff" and shown["finished"] is not None


def test_a_version_that_never_gets_healthy_rolls_back_and_the_old_ones_serve_throughout(web, service_name,
                                                                                          docker_client, images):
    changed = put(web, service_name, image=images["bad"],
                  update={"parallelism": 1, "min_healthy_time": "500ms", "order": "start-first",
                          "healthy_deadline": "30s"})
    deployment = changed.json()["deployment"]
    census = Census(docker_client, service_name)
    try:
        state = step_until_settled(service_name, deployment["id"])
    finally:
        census.stop()
    assert state == "rolled_back"
    assert census.minimum(version=1) == 4  # start-first: the old containers kept serving, all four
    shown = web.get(deployment["url"]).json()
    assert "unhealthy" in shown["reason"] and shown["rolling_back"] is True and shown["target_version"] == 1
    assert service_versions(docker_client, service_name) == [(slot, "1") for slot in range(4)]
    service = web.get(f"/service/{service_name}").json()
    assert service["image"] == images["good"] and service["version"] == 1


def test_pause_stops_after_the_current_batch_and_resume_goes_on(web, service_name, docker_client):
    changed = put(web, service_name, environment={"RELEASE": "2"},
                  update={"parallelism": 1, "min_healthy_time": "500ms"})
    deployment = changed.json()["deployment"]
    Reconciler().process_one_service(Service.objects.get(name=service_name))  # batch 1: slot 0
    paused = web.post(f"{deployment['url']}/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused"
    wait_until(lambda: Reconciler().process_one_service(Service.objects.get(name=service_name)).progress[
        "gen-a"]["healthy"] == 1, timeout=30, message="the paused batch becoming healthy")
    for _ in range(10):  # more steps, well past min_healthy_time: no new batch
        Reconciler().process_one_service(Service.objects.get(name=service_name))
        time.sleep(0.1)
    assert service_versions(docker_client, service_name) == [(0, "2"), (1, "1"), (2, "1"), (3, "1")]
    assert Deployment.objects.get(pk=deployment["id"]).state == "paused"
    assert web.post(f"{deployment['url']}/pause").status_code == 409  # paused already
    resumed = web.post(f"{deployment['url']}/resume")
    assert resumed.status_code == 200 and resumed.json()["state"] == "running"
    assert step_until_settled(service_name, deployment["id"]) == "succeeded"
    assert service_versions(docker_client, service_name) == [(slot, "2") for slot in range(4)]


def test_a_manual_rollback_restores_the_version_before(web, service_name, docker_client):
    changed = put(web, service_name, environment={"RELEASE": "2"}, update={"min_healthy_time": "0s"})
    deployment = changed.json()["deployment"]
    Reconciler().process_one_service(Service.objects.get(name=service_name))
    rolled = web.post(f"{deployment['url']}/rollback")
    assert rolled.status_code == 200 and rolled.json()["rolling_back"] is True
    assert step_until_settled(service_name, deployment["id"]) == "rolled_back"
    assert service_versions(docker_client, service_name) == [(slot, "1") for slot in range(4)]
    again = web.post(f"{deployment['url']}/rollback")
    assert again.status_code == 409 and again.json()["error"]["detail"]["field"] == "state"


@pytest.mark.parametrize(("body", "field"), [
    ({"healthcheck": {"test": "true", "interval": "soon"}}, "healthcheck.interval"),
    ({"healthcheck": {"test": ["RUN", "true"]}}, "healthcheck.test"),
    ({"healthcheck": {"test": "true", "every": "1s"}}, "healthcheck.every"),
    ({"healthcheck": "test -f /healthy"}, "healthcheck"),
    ({"update": {"parallelism": 0}}, "update.parallelism"),
    ({"update": {"order": "random"}}, "update.order"),
    ({"update": {"failure_action": "continue"}}, "update.failure_action"),
    ({"update": {"min_healthy_time": "-1s"}}, "update.min_healthy_time"),
    ({"update": {"batch": 2}}, "update.batch"),
    ({"update": []}, "update"),
    ({"memory": "lots"}, "memory"),
    ({"memory": "1k"}, "memory"),
    ({"cpus": 0}, "cpus"),
])
def test_a_bad_healthcheck_or_policy_is_400_naming_it_and_changes_nothing(api, users, service_name, body, field):
    staff = api("staff")
    assert staff.post("/service", {"name": service_name, "image": "boatload-test/busybox:latest"},
                      format="json").status_code == 201
    for request in (lambda: staff.post("/service", {"name": f"{service_name}x", "image": "a:b", **body},
                                       format="json"),
                    lambda: staff.put(f"/service/{service_name}", {"image": "a:b", **body}, format="json")):
        answer = request()
        assert answer.status_code == 400, answer.json()
        assert answer.json()["error"]["detail"]["field"] == field
    assert not Service.objects.filter(name=f"{service_name}x").exists()
    assert Service.objects.get(name=service_name).image == "boatload-test/busybox:latest"
    assert ServiceVersion.objects.filter(service__name=service_name).count() == 1
    assert not Deployment.objects.filter(service__name=service_name).exists()


@pytest.mark.parametrize("wait", ["forever", "-1s", "3h"])
def test_a_bad_wait_is_400_naming_it_and_changes_nothing(api, users, service_name, wait):
    staff = api("staff")
    staff.post("/service", {"name": service_name, "image": "boatload-test/busybox:latest"}, format="json")
    answer = staff.put(f"/service/{service_name}?wait={wait}", {"image": "a:b"}, format="json")
    assert answer.status_code == 400 and answer.json()["error"]["detail"]["field"] == "wait"
    assert Service.objects.get(name=service_name).image == "boatload-test/busybox:latest"
    scale = staff.post(f"/service/{service_name}/scale?wait={wait}", {"number": 1}, format="json")
    assert scale.status_code == 400 and scale.json()["error"]["detail"]["field"] == "wait"
    assert not service_has_desired(service_name)


def service_has_desired(name):
    return Service.objects.get(name=name).desired.exists()


class ReconcilerProcess:
    """`manage.py genisys` against the test database, in a subprocess that can be SIGKILLed."""

    def __init__(self, log_path, interval="0.2", **env):
        from django.db import connection

        db = connection.settings_dict
        self.env = {**os.environ, "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:"
                                                  f"{db['PORT']}/{db['NAME']}",
                    "GENISYS_DEPLOY_CLAIM": "1s", "GENISYS_COMPUTE_FILE": "", "GENISYS_CONSUL_HOST": "", **env}
        self.log_path, self.interval = Path(log_path), interval
        self.process = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "manage.py", "genisys", "--interval", self.interval],
                                        cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        return self

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.log.close()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(20)
            self.log.close()


@pytest.fixture
def reconciler(transactional_db, tmp_path):
    processes = []

    def start(**options):
        processes.append(ReconcilerProcess(tmp_path / f"genisys-{len(processes)}.log", **options).start())
        return processes[-1]

    yield start
    for process in processes:
        if process.process.poll() is None:
            process.stop()


@pytest.fixture
def web_live(reconciler, api, users, hosts, connectors, images, service_name):
    """The `web` service (4 healthy slots of version 1), with a reconciler process at work."""
    staff = api("staff")
    staff.post("/compute", {"name": "gen-a", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": service_name, "image": images["good"], "command": "sleep 3600",
                            "healthcheck": HEALTHCHECK, "update": {"min_healthy_time": "500ms"}}, format="json")
    process = reconciler()
    scaled = staff.post(f"/service/{service_name}/scale?wait=5m", {"number": 4}, format="json")
    assert scaled.status_code == 200 and scaled.json()["deployment"]["state"] == "succeeded", scaled.json()
    return staff, process


def test_deployments_are_stepped_between_the_reconcilers_passes(reconciler, api, users, hosts, connectors, images,
                                                               service_name):
    """With passes an hour apart, a scale's and a rollout's steps still follow every GENISYS_DEPLOY_INTERVAL:
    the batches of a rollout never wait for the poll interval."""
    staff = api("staff")
    staff.post("/compute", {"name": "gen-a", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": service_name, "image": images["good"], "command": "sleep 3600",
                            "healthcheck": HEALTHCHECK, "update": {"min_healthy_time": "200ms"}}, format="json")
    reconciler(interval="3600", GENISYS_DEPLOY_INTERVAL="200ms")
    scaled = staff.post(f"/service/{service_name}/scale?wait=90s", {"number": 2}, format="json")
    assert scaled.status_code == 200 and scaled.json()["deployment"]["state"] == "succeeded", scaled.json()
    rolled = put(staff, service_name, wait="90s", environment={"RELEASE": "2"})  # two batches of one
    assert rolled.status_code == 200 and rolled.json()["deployment"]["state"] == "succeeded", rolled.json()
    assert rolled.json()["deployment"]["computes"]["gen-a"]["versions"] == {"2": 2}


def test_a_pause_while_a_first_step_holds_the_service_is_refused_until_it_ends(api, users, hosts, connectors, images,
                                                                              service_name):
    """A first step may be giving a Swarm compute the version, which no pause could stop: while one holds the
    service, a pause is a 409 to try again; once it ends, the pause is made."""
    staff = api("staff")
    staff.post("/compute", {"name": "gen-a", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": service_name, "image": images["good"], "command": "sleep 3600"}, format="json")
    assert staff.post(f"/service/{service_name}/scale", {"number": 1}, format="json").status_code == 200
    deployment = put(staff, service_name, environment={"RELEASE": "2"}).json()["deployment"]
    service = Service.objects.get(name=service_name)
    assert loop.claim(Service, service.pk)  # as a reconciler's first step holds it
    refused = staff.post(f"{deployment['url']}/pause")
    assert refused.status_code == 409, refused.json()
    assert refused.json()["error"]["detail"]["field"] == "state" and "first step" in refused.json()["error"]["message"]
    assert Deployment.objects.get(pk=deployment["id"]).state == "running"
    loop.release(Service, service.pk)
    paused = staff.post(f"{deployment['url']}/pause")
    assert paused.status_code == 200 and paused.json()["state"] == "paused", paused.json()


def test_wait_answers_the_terminal_state_so_a_ci_step_is_one_call(web_live, service_name, images):
    staff, _ = web_live
    good = put(staff, service_name, wait="5m", environment={"RELEASE": "2"})
    assert good.status_code == 200, good.json()
    assert good.json()["deployment"]["state"] == "succeeded" and good.json()["version"] == 2
    bad = put(staff, service_name, wait="5m", image=images["bad"], update={"healthy_deadline": "30s"})
    assert bad.status_code == 409, bad.json()
    error = bad.json()["error"]
    assert error["code"] == "deployment_rolled_back" and "unhealthy" in error["message"]
    assert error["detail"]["deployment"]["state"] == "rolled_back" and bad["Location"] == error["detail"]["url"]
    early = put(staff, service_name, wait="0s", environment={"RELEASE": "3"})
    assert early.status_code == 202 and early.json()["deployment"]["state"] == "running"
    assert early["Location"] == early.json()["deployment"]["url"]
    rolled = staff.post(f"{early['Location']}/rollback?wait=5m")
    assert rolled.status_code == 200, rolled.json()  # for a rollback, rolled_back is the success
    assert rolled.json()["state"] == "rolled_back"
    assert staff.get(f"/service/{service_name}").json()["version"] == 2


def test_a_sigkilled_reconciler_mid_rollout_is_resumed_by_the_next_without_twins(web_live, reconciler,
                                                                                 service_name, docker_client):
    staff, first = web_live
    changed = put(staff, service_name, environment={"RELEASE": "2"},
                  update={"parallelism": 1, "min_healthy_time": "1s", "order": "stop-first"})
    deployment_id = changed.json()["deployment"]["id"]
    census = Census(docker_client, service_name)
    try:
        wait_until(lambda: Deployment.objects.get(pk=deployment_id).progress.get("gen-a", {}).get("healthy", 0)
                   >= 1, timeout=300, message="one slot of version 2 healthy")
        first.kill()
        stopped = Deployment.objects.get(pk=deployment_id)
        assert stopped.state == "running" and stopped.progress["gen-a"]["healthy"] < 4
        reconciler()
        wait_until(lambda: Deployment.objects.get(pk=deployment_id).state != "running", timeout=300,
                   message="the deployment ending after the restart")
    finally:
        census.stop()
    assert Deployment.objects.get(pk=deployment_id).state == "succeeded"
    assert census.twins == 1  # never two containers of one version in one slot
    assert census.minimum() >= 3  # stop-first, parallelism 1: one slot down at a time at most
    assert service_versions(docker_client, service_name) == [(slot, "2") for slot in range(4)]


def test_the_hook_redeploys_after_a_retag_and_refuses_a_wrong_secret(api, hosts, connectors, service_name,
                                                                     docker_client, made_images):
    tag = f"boatload-test/deploy-{RUN_ID}:hooked-{service_name}"
    build_image(docker_client, tag, healthy=True, release=b"1")
    made_images.append(docker_client.images.get(tag).id)
    staff, anonymous = api("staff"), api()
    staff.post("/compute", {"name": "gen-a", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": service_name, "image": tag, "command": "sleep 3600",
                            "healthcheck": HEALTHCHECK, "update": {"min_healthy_time": "300ms"}}, format="json")
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 2}, format="json")
    assert step_until_settled(service_name, scaled.json()["deployment"]["id"]) == "succeeded"
    made = staff.post(f"/service/{service_name}/hook")
    assert made.status_code == 201 and "/hooks/blrh_" in made.json()["url"]
    assert api("other").post(f"/service/{service_name}/hook").status_code == 404  # not theirs
    wrong = anonymous.post("/hooks/blrh_" + "x" * 43)
    assert wrong.status_code == 404 and wrong.json()["error"]["code"] == "not_found"
    assert Deployment.objects.filter(service__name=service_name).count() == 1
    first = anonymous.post(made.json()["url"])  # records the image the tag names now: version 2
    assert first.status_code == 202, first.json()
    assert first["Location"] == first.json()["url"] and first.json()["deployment"]["to_version"] == 2
    assert step_until_settled(service_name, first.json()["deployment"]["id"]) == "succeeded"
    same = anonymous.post(made.json()["url"])  # the same image: no new version
    assert same.status_code == 202 and same.json()["deployment"]["to_version"] == 2
    assert step_until_settled(service_name, same.json()["deployment"]["id"]) == "succeeded"
    build_image(docker_client, tag, healthy=True, release=b"2")  # a new image under the same tag
    new_id = docker_client.images.get(tag).id
    made_images.append(new_id)
    assert new_id != made_images[0]
    again = anonymous.post(made.json()["url"])
    assert again.status_code == 202 and again.json()["deployment"]["to_version"] == 3
    assert step_until_settled(service_name, again.json()["deployment"]["id"]) == "succeeded"
    assert service_versions(docker_client, service_name) == [(0, "3"), (1, "3")]
    rows = docker_client.api.containers(filters={"label": f"boatload.service={service_name}"})
    assert {row["ImageID"] for row in rows} == {new_id}
    assert staff.delete(f"/service/{service_name}/hook").status_code == 204
    assert anonymous.post(made.json()["url"]).status_code == 404  # revoked
    assert Deployment.objects.filter(service__name=service_name).count() == 4


def test_a_hook_redeploy_of_a_bad_image_rolls_back_to_the_image_id_before_not_the_tag(api, hosts, connectors,
                                                                                       service_name, docker_client,
                                                                                       made_images):
    tag = f"boatload-test/deploy-{RUN_ID}:revert-{service_name}"
    build_image(docker_client, tag, healthy=True)
    made_images.append(docker_client.images.get(tag).id)
    staff, anonymous = api("staff"), api()
    staff.post("/compute", {"name": "gen-a", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": service_name, "image": tag, "command": "sleep 3600",
                            "healthcheck": HEALTHCHECK, "update": {"min_healthy_time": "300ms",
                                                                   "order": "start-first"}}, format="json")
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 2}, format="json")
    assert step_until_settled(service_name, scaled.json()["deployment"]["id"]) == "succeeded"
    url = staff.post(f"/service/{service_name}/hook").json()["url"]
    first = anonymous.post(url)  # version 2: the good image's id, as the tag names it now
    assert step_until_settled(service_name, first.json()["deployment"]["id"]) == "succeeded"
    build_image(docker_client, tag, healthy=False)  # a bad image pushed under the same tag
    made_images.append(docker_client.images.get(tag).id)
    bad = anonymous.post(url)
    assert bad.status_code == 202 and bad.json()["deployment"]["to_version"] == 3
    assert step_until_settled(service_name, bad.json()["deployment"]["id"]) == "rolled_back", \
        Deployment.objects.get(pk=bad.json()["deployment"]["id"]).reason
    assert service_versions(docker_client, service_name) == [(0, "2"), (1, "2")]
    rows = docker_client.api.containers(filters={"label": f"boatload.service={service_name}"})
    assert {row["ImageID"] for row in rows} == {made_images[0]}  # the image version 2 had, not the tag's now


def test_a_scale_starts_new_slots_from_the_image_id_the_version_ran_not_what_the_tag_names_now(
        api, hosts, connectors, service_name, docker_client, made_images):
    tag = f"boatload-test/deploy-{RUN_ID}:scaled-{service_name}"
    build_image(docker_client, tag, healthy=True, release=b"1")
    made_images.append(docker_client.images.get(tag).id)
    staff = api("staff")
    staff.post("/compute", {"name": "gen-a", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": service_name, "image": tag, "command": "sleep 3600",
                            "healthcheck": HEALTHCHECK, "update": {"min_healthy_time": "300ms"}}, format="json")
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 1}, format="json")
    assert step_until_settled(service_name, scaled.json()["deployment"]["id"]) == "succeeded"
    build_image(docker_client, tag, healthy=True, release=b"2")  # another image under the same tag
    made_images.append(docker_client.images.get(tag).id)
    assert made_images[1] != made_images[0]
    more = staff.post(f"/service/{service_name}/scale", {"number": 3}, format="json")
    assert more.status_code == 200, more.json()
    assert more.json()["deployment"]["to_version"] == 1  # no new version: nothing that runs changed
    assert step_until_settled(service_name, more.json()["deployment"]["id"]) == "succeeded"
    assert service_versions(docker_client, service_name) == [(0, "1"), (1, "1"), (2, "1")]
    rows = docker_client.api.containers(filters={"label": f"boatload.service={service_name}"})
    assert [row["ImageID"] for row in rows] == [made_images[0]] * 3  # the image version 1 ran, not the tag's
