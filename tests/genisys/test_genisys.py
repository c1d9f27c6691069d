"""Genisys end to end: the documented httpie examples, in order, with a bearer token, on real satellites."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from boatload.models import Host
from genisys.management.commands.genisys import Command as Reconciler
from genisys.models import Desired, ScaleOrder, Service
from tests.conftest import IMAGE_NAME, IMAGE_TAG, SatelliteProcess, wait_until

pytestmark = pytest.mark.slow
IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"


def service_containers(docker_client, name, running_only=True):
    filters = {"label": f"boatload.service={name}"}
    if running_only:
        filters["status"] = "running"
    return docker_client.containers.list(all=not running_only, filters=filters)


def test_the_documented_flow(api, hosts, connectors, docker_client, service_name):
    staff = api("staff")
    # $ http POST :7001/compute name="localdc" connector="http://localhost:7051"
    created = staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
    assert created.status_code == 201 and created.json()["signed"] is True
    assert set(staff.get("/compute").json()) == {"localdc"}
    assert staff.get("/compute").json()["localdc"]["connector"] == connectors["gen-a"].url
    # $ http PUT :7001/compute/local connector="http://localhost:7052"
    moved = staff.put("/compute/localdc", {"connector": "http://127.0.0.1:7052"}, format="json")
    assert moved.status_code == 200 and moved.json()["signed"] is False
    staff.put("/compute/localdc", {"connector": connectors["gen-a"].url}, format="json")
    assert staff.get("/compute/localdc").json()["signed"] is True
    # $ http POST :7051/service name="helloworld" image=… command=… environment:=…
    definition = {"name": service_name, "image": IMAGE, "command": "sleep 300", "environment": {"VAR_A": "value"}}
    assert staff.post("/service", definition, format="json").status_code == 201
    assert staff.get("/service").json()[service_name]["image"] == IMAGE
    # $ http POST :7001/service/myService/scale number=3 compute="local"
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 3, "compute": "localdc"}, format="json")
    assert scaled.status_code == 200, scaled.json()
    assert scaled.json()["computes"]["localdc"] == {"desired": 3, "running": 3}
    status = staff.get(f"/service/{service_name}/status").json()
    assert status["running_resources"] == 3 and status["computes"]["localdc"]["running_resources"] == 3
    names = sorted(c.name for c in service_containers(docker_client, service_name))
    assert names == [f"bl-{service_name}-{slot}" for slot in range(3)]
    # Down to one: extras go from the highest slot.
    assert staff.post(f"/service/{service_name}/scale", {"number": 1}, format="json").status_code == 200
    assert [c.name for c in service_containers(docker_client, service_name, running_only=False)] == [
        f"bl-{service_name}-0"]
    old_id = service_containers(docker_client, service_name)[0].id
    # A new image or command: a new version, whose deployment the reconciler rolls out.
    changed = staff.put(f"/service/{service_name}", {"image": IMAGE, "command": "sleep 301",
                                                     "update": {"min_healthy_time": "0s"}}, format="json")
    assert changed.status_code == 200 and changed.json()["deployment"]["state"] == "running"
    assert staff.post(f"/service/{service_name}/scale", {"number": 1}, format="json").json()["computes"][
        "localdc"]["running"] == 1
    for _ in range(20):
        Reconciler().process_one_service(Service.objects.get(name=service_name))
        if staff.get(changed.json()["deployment"]["url"]).json()["state"] != "running":
            break
    assert staff.get(changed.json()["deployment"]["url"]).json()["state"] == "succeeded"
    [replaced] = service_containers(docker_client, service_name)
    assert replaced.id != old_id and replaced.attrs["Config"]["Cmd"] == ["sleep", "301"]
    orders = staff.get(f"/service/{service_name}/orders").json()
    assert [o["to_number"] for o in orders] == [1, 1, 3] and orders[0]["requested_by"] == "staff"


def test_a_killed_container_is_brought_back_by_the_reconciler(api, hosts, connectors, docker_client, service_name):
    staff = api("staff")
    staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    staff.post(f"/service/{service_name}/scale", {"number": 2}, format="json")
    victim = service_containers(docker_client, service_name)[0]
    victim.kill()
    assert len(service_containers(docker_client, service_name)) == 1
    orders = Reconciler().process_one_service(Service.objects.get(name=service_name))
    assert [(o.from_number, o.to_number, o.result) for o in orders] == [(1, 2, "ok")]
    assert len(service_containers(docker_client, service_name)) == 2
    assert Reconciler().process_one_service(Service.objects.get(name=service_name)) == []


def test_spreading_over_every_compute(api, hosts, connectors, engines, docker_client, service_name):
    staff = api("staff")
    for name in ("gen-a", "gen-b"):
        staff.post("/compute", {"name": name, "connector": connectors[name].url}, format="json")
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    answer = staff.post(f"/service/{service_name}/scale", {"number": 6, "compute": "*"}, format="json")
    assert answer.status_code == 200, answer.json()
    assert {k: v["running"] for k, v in answer.json()["computes"].items()} == {"gen-a": 3, "gen-b": 3}
    assert len(service_containers(docker_client, service_name)) == 3
    assert len(service_containers(engines(1).client(), service_name)) == 3
    assert staff.get(f"/service/{service_name}/status").json()["running_resources"] == 6


def test_a_stopped_satellite_gives_502_keeps_desired_and_converges_later(api, hosts, connectors, docker_client,
                                                                         service_name):
    staff = api("staff")
    staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    connectors["gen-a"].stop()
    try:
        answer = staff.post(f"/service/{service_name}/scale", {"number": 2}, format="json")
        assert answer.status_code == 502
        assert "localdc" in answer.json()["error"]["message"]
        assert answer.json()["error"]["detail"]["desired_kept"] is True
        assert Desired.objects.get(service__name=service_name).number == 2
        assert ScaleOrder.objects.get(service__name=service_name).result == "failed"
    finally:
        connectors["gen-a"].start()
    Reconciler().process_one_pass()
    assert len(service_containers(docker_client, service_name)) == 2


def test_swarm_backend_scales_0_3_1(api, db, swarm_satellite, service_name):
    satellite, engine = swarm_satellite
    Host.objects.create(name="swarm-mgr", satellite_url=satellite.url, key_id=satellite.key_id,
                        secret=satellite.secret)
    staff = api("staff")
    staff.post("/compute", {"name": "swarm", "connector": satellite.url}, format="json")
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    for number in (0, 3, 1):
        answer = staff.post(f"/service/{service_name}/scale", {"number": number}, format="json")
        assert answer.status_code == 200, answer.json()
        assert answer.json()["computes"]["swarm"]["running"] == number
        assert staff.get(f"/service/{service_name}/status").json()["running_resources"] == number
    [swarm_service] = engine.client().services.list(filters={"name": f"bl-{service_name}"})
    assert swarm_service.attrs["Spec"]["Mode"]["Replicated"]["Replicas"] == 1


def test_a_consul_managed_service_converges_to_the_kv_number(api, hosts, connectors, docker_client, consul_server,
                                                            settings, service_name):
    import consul

    name = f"skynet_{service_name}"
    staff = api("staff")
    staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": name, "image": IMAGE, "command": "sleep 300"}, format="json")
    client = consul.Consul(host=consul_server.host, port=consul_server.port)
    client.agent.service.register(name)
    client.agent.service.register("unmanaged_other")
    client.kv.put(f"resources/{name}", "2")
    settings.GENISYS_OVERRIDES = {**settings.GENISYS_OVERRIDES, "connector": {},
                                  "consul": {"host": consul_server.host, "port": consul_server.port,
                                             "service_prefix": "skynet_", "resources_key_prefix": "resources/"}}
    Reconciler().process_one_pass()
    assert len(service_containers(docker_client, name)) == 2
    assert Service.objects.get(name=name).managed_by == "consul"
    client.kv.put(f"resources/{name}", "1")
    Reconciler().process_one_pass()
    assert len(service_containers(docker_client, name)) == 1


@pytest.mark.parametrize("auth", ["token", "none"])
def test_an_external_compute_that_is_not_an_enrolled_satellite(api, db, tmp_path, docker_client, service_name,
                                                               auth):
    env = {"SATELLITE_CONNECTOR_AUTH": auth, "SATELLITE_CONNECTOR_TOKEN": "s3cret-token"}
    external = SatelliteProcess(tmp_path, name="external", address="127.0.0.34", env=env).start()
    try:
        staff = api("staff")
        compute = {"name": "ext", "connector": external.url}
        if auth == "token":
            compute["token"] = "s3cret-token"
        answer = staff.post("/compute", compute, format="json")
        assert answer.json()["signed"] is False and "token" not in answer.json()
        staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
        scaled = staff.post(f"/service/{service_name}/scale", {"number": 2}, format="json")
        assert scaled.status_code == 200, scaled.json()
        assert len(service_containers(docker_client, service_name)) == 2
        # Only the connector endpoints are open to it; containers stay signed.
        import requests

        headers = {"Authorization": "Bearer s3cret-token"}
        assert requests.get(f"{external.url}/containers", headers=headers, timeout=10).status_code == 401
        for path in (f"service/{service_name}/logs", f"service/{service_name}/logs/{'0' * 64}"):  # output: signed
            assert requests.get(f"{external.url}/{path}", headers=headers, timeout=10).status_code == 401
        if auth == "token":
            assert requests.get(f"{external.url}/service", timeout=10).status_code == 401
            assert requests.get(f"{external.url}/service", headers={"Authorization": "Bearer nope"},
                                timeout=10).status_code == 401
        else:
            assert "SATELLITE_CONNECTOR_AUTH=none" in external.read_log()
    finally:
        external.stop()


def test_connector_auth_none_refuses_a_public_bind(tmp_path):
    refused = SatelliteProcess(tmp_path, name="wide", env={"SATELLITE_CONNECTOR_AUTH": "none",
                                                            "SATELLITE_BIND": "0.0.0.0"})
    refused.start(wait=False)
    assert refused.process.wait(30) != 0
    assert "only allowed on a loopback" in refused.read_log()


def test_bad_input_names_the_field(api, hosts, connectors, service_name):
    staff = api("staff")
    assert staff.post("/compute", {"name": "nope"}, format="json").json()["error"]["detail"]["field"] == "connector"
    staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
    assert staff.post("/service", {"name": service_name}, format="json").json()["error"]["detail"]["field"] == "image"
    bad_image = staff.post("/service", {"name": service_name, "image": "Bad Image!"}, format="json")
    assert bad_image.status_code == 400 and bad_image.json()["error"]["detail"]["field"] == "image"
    staff.post("/service", {"name": service_name, "image": IMAGE}, format="json")
    for body, field in [({}, "number"), ({"number": "many"}, "number"), ({"number": -1}, "number"),
                        ({"number": 2, "compute": "elsewhere"}, "compute")]:
        answer = staff.post(f"/service/{service_name}/scale", body, format="json")
        assert answer.status_code == 400, body
        assert answer.json()["error"]["detail"]["field"] == field
    assert staff.post("/service/no-such/scale", {"number": 1}, format="json").status_code == 404
    assert api().get("/compute").status_code == 401
    assert api("owner").post("/compute", {"name": "x", "connector": "http://127.0.0.1:1"}, format="json"
                             ).status_code == 403


def test_the_connector_protocol_on_the_satellite(connectors, service_name):
    session = connectors["gen-a"].signed()
    base = connectors["gen-a"].url
    created = session.post(f"{base}/service", json={"name": service_name, "image": IMAGE, "ports": ["8080"]})
    assert created.status_code == 201
    assert session.get(f"{base}/service").json()[service_name]["ports"] == ["8080"]
    assert session.put(f"{base}/service/{service_name}", json={"image": IMAGE, "command": "sleep 60"}).json()[
        "command"] == "sleep 60"
    for body in ({}, {"number": "x"}, {"number": -1}, {"number": 101}):
        answer = session.post(f"{base}/service/{service_name}/scale", json=body)
        assert answer.status_code == 400 and answer.json()["error"]["detail"]["field"] == "number", body
    assert session.post(f"{base}/service/unknown/scale", json={"number": 1}).status_code == 404
    assert session.get(f"{base}/service/unknown/status").status_code == 404
    assert session.post(f"{base}/service/{service_name}/scale", json={"number": 2}).json() == {
        "running_resources": 2}
    assert session.get(f"{base}/service/{service_name}/status").json() == {"running_resources": 2}
    assert session.post(f"{base}/service/{service_name}/scale", json={"number": 0}).json() == {
        "running_resources": 0}
    stored = connectors["gen-a"].state_dir / "services.json"
    assert service_name in stored.read_text()


def test_services_py_is_loaded_at_start_up(tmp_path):
    services_py = tmp_path / "services.py"
    services_py.write_text('myService = {\n    "name": "myService",\n    "image": "docker_image:tag",\n'
                           '    "command": "command",\n    "environment": {"ENV_VARIABLE_A": "value"},\n'
                           '    "ports": ["8080"],\n}\n')
    satellite = SatelliteProcess(tmp_path / "state", name="seeded",
                                 env={"SATELLITE_SERVICES_FILE": str(services_py)}).start()
    try:
        listed = satellite.signed().get(f"{satellite.url}/service").json()
        assert listed["myService"] == {"name": "myService", "image": "docker_image:tag", "command": "command",
                                       "environment": {"ENV_VARIABLE_A": "value"}, "ports": ["8080"]}
    finally:
        satellite.stop()


def test_compute_file_and_genisys_yml(db, tmp_path, monkeypatch):
    from genisys.config import load
    from genisys.models import Compute

    (tmp_path / "computes.py").write_text('localdc = {\n    "name": "localdc",\n'
                                          '    "connector": "http://localhost:7051"\n}\n')
    call_command("loadcomputes", str(tmp_path / "computes.py"))
    assert Compute.objects.get(name="localdc").connector == "http://localhost:7051"
    (tmp_path / "genisys.yml").write_text(
        "genisys:\n  bind: 127.0.0.1\n  port: 7001\n  compute_file: ./computes.py\n"
        "consul:\n  host: localhost\n  port: 8500\n  service_prefix: 'skynet_'\n"
        "connector:\n  poll_interval: 1m\n")
    config = load(tmp_path / "genisys.yml")
    assert config["poll_interval"] == 60 and config["service_prefix"] == "skynet_"
    assert config["consul_host"] == "localhost" and config["compute_file"] == "./computes.py"
    # The environment overrides the file: settings read it, genisys.config reads settings.
    monkeypatch.setenv("GENISYS_CONFIG", str(tmp_path / "genisys.yml"))
    monkeypatch.setenv("GENISYS_POLL_INTERVAL", "15s")
    monkeypatch.setenv("GENISYS_CONSUL_PORT", "8600")
    shown = subprocess.run([sys.executable, "-c", "import json, django; django.setup(); "
                            "from genisys.config import current; print(json.dumps(current()))"],
                           capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2])
    assert shown.returncode == 0, shown.stderr
    config = json.loads(shown.stdout.strip().splitlines()[-1])
    assert config["poll_interval"] == 15 and config["consul_port"] == 8600


@pytest.mark.django_db(transaction=True)
def test_two_reconcilers_never_act_on_one_service_at_once(api, hosts, connectors, service_name):
    import threading

    from genisys import services
    from genisys.models import Compute

    staff = api("staff")
    staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    service = Service.objects.get(name=service_name)
    Desired.objects.create(service=service, compute=Compute.objects.get(name="localdc"), number=1)
    held, release = threading.Event(), threading.Event()
    outcome = {}

    def other_reconciler():  # another reconciler claims the service (a conditional UPDATE) for its step
        from django.db import connection

        assert services.service_claim(service)
        held.set()
        release.wait(10)
        services.service_release(service)
        connection.close()

    thread = threading.Thread(target=other_reconciler)
    thread.start()
    held.wait(10)
    outcome["skipped"] = services.service_reconcile(service=service)
    release.set()
    thread.join()
    assert outcome["skipped"] is None
    wait_until(lambda: services.service_reconcile(service=service) is not None, message="the lock to free")


def test_the_example_fixture_loads(db):
    from genisys.models import Compute

    call_command("loaddata", "fixtures/genisys.json", verbosity=0)
    assert Compute.objects.get(name="localdc").connector == "http://127.0.0.1:7051"
    assert Service.objects.get(name="helloworld").definition()["ports"] == ["8080"]
