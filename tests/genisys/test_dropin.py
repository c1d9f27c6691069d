"""BoatLoad as a drop-in Genisys (issue 14, items 2-6): the original connector's behaviour (its
stand-in, tests/genisys/connector_standin.py) and real satellites as the original Genisys calls them."""
import base64
import json

import pytest
import requests
from django.core.management import CommandError, call_command
from django.utils import timezone

from boatload.models import Host
from genisys.management.commands.genisys import Command as Reconciler
from genisys.models import Compute, ScaleOrder, Service
from tests.conftest import IMAGE_NAME, IMAGE_TAG, SatelliteProcess

pytestmark = pytest.mark.slow
IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"
TOKEN = "s3cret-connector-token"


def running(docker_client, name):
    return docker_client.containers.list(filters={"label": f"boatload.service={name}", "status": "running"})


def enrol(satellite):
    return Host.objects.create(name=satellite.name, satellite_url=satellite.url, key_id=satellite.key_id,
                               secret=satellite.secret, last_seen=timezone.now())


@pytest.fixture
def local_satellite(tmp_path):
    """A satellite on 127.0.0.1 (reached as `localhost` by the originals' docs)."""
    satellite = SatelliteProcess(tmp_path / "local", name="local-sat", address="127.0.0.1").start()
    yield satellite
    satellite.stop()


@pytest.fixture
def token_satellite(tmp_path):
    """A satellite with SATELLITE_CONNECTOR_AUTH=token, as a connector of the original Genisys."""
    satellite = SatelliteProcess(tmp_path / "token", name="token-sat", address="127.0.0.1",
                                 env={"SATELLITE_CONNECTOR_AUTH": "token", "SATELLITE_CONNECTOR_TOKEN": TOKEN}).start()
    yield satellite
    satellite.stop()


def with_credentials(url, user, password):
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


# Item 2: a connector that lost its definitions is repaired within one poll interval.

@pytest.mark.parametrize("put_creates", [True, False])
def test_a_connector_that_lost_its_definitions_is_repaired_by_one_pass(api, db, original_connector, service_name,
                                                                       put_creates):
    staff = api("staff")
    staff.post("/compute", {"name": "original", "connector": original_connector.url}, format="json")
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    original_connector.put_creates = put_creates
    assert staff.post(f"/service/{service_name}/scale", {"number": 2}, format="json").status_code == 200
    original_connector.restart()  # its definitions were in memory; its containers (running numbers) stay
    original_connector.running[service_name] = 0
    assert service_name not in original_connector.definitions
    seen = len(original_connector.calls)
    Reconciler().process_one_pass()  # one poll interval's pass
    orders = ScaleOrder.objects.filter(source="reconciler")
    assert [(o.from_number, o.to_number, o.result) for o in orders] == [(None, 2, "ok")], [o.message for o in orders]
    assert original_connector.definitions[service_name]["image"] == IMAGE
    assert original_connector.running[service_name] == 2
    pushed = ("PUT", f"/service/{service_name}") if put_creates else ("POST", "/service")
    assert pushed in original_connector.calls[seen:]
    assert staff.get(f"/service/{service_name}/status").json()["running_resources"] == 2


# Item 3: a service only the connector knows is scaled by forwarding the order.

def test_a_service_only_the_connector_knows_is_forwarded_and_recorded(api, db, original_connector, service_name):
    staff = api("staff")
    staff.post("/compute", {"name": "original", "connector": original_connector.url}, format="json")
    original_connector.definitions[service_name] = {"name": service_name, "image": "skynet-backend:latest",
                                                    "command": "java -jar /tmp/backend.jar", "environment": None,
                                                    "ports": ["8080"]}
    # A user can not act on a definition nobody in BoatLoad owns: 404 as before, nothing made.
    assert api("owner").post(f"/service/{service_name}/scale", {"number": 3}, format="json").status_code == 404
    assert not Service.objects.filter(name=service_name).exists()
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 3}, format="json")
    assert scaled.status_code == 200, scaled.json()
    assert scaled.json()["definition"] == "connector"
    assert scaled.json()["computes"]["original"] == {"desired": 3, "running": 3}
    assert original_connector.running[service_name] == 3
    assert not any(method == "PUT" for method, _ in original_connector.calls)  # its own definition ran
    service = Service.objects.get(name=service_name)
    assert (service.defined_by, service.owner, service.image) == ("connector", None, "skynet-backend:latest")
    [order] = staff.get(f"/service/{service_name}/orders").json()
    assert (order["compute"], order["to_number"], order["result"], order["requested_by"]) == (
        "original", 3, "ok", "staff")
    assert staff.get(f"/service/{service_name}").json()["defined_by"] == "connector"
    # A definition BoatLoad's own scale pushes says so.
    staff.post("/service", {"name": f"{service_name}b", "image": IMAGE}, format="json")
    assert staff.post(f"/service/{service_name}b/scale", {"number": 1}, format="json").json()["definition"] == (
        "boatload")


def test_a_service_no_connector_knows_is_still_404_and_makes_nothing(api, db, original_connector, service_name):
    staff = api("staff")
    staff.post("/compute", {"name": "original", "connector": original_connector.url}, format="json")
    answer = staff.post(f"/service/{service_name}/scale", {"number": 1}, format="json")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert "original" in answer.json()["error"]["message"]
    assert not Service.objects.filter(name=service_name).exists() and not ScaleOrder.objects.exists()
    bad = staff.post(f"/service/{service_name}/scale", {"number": "many"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["detail"]["field"] == "number"
    assert not Service.objects.filter(name=service_name).exists()


def test_a_service_defined_on_a_satellite_only_is_forwarded(api, hosts, connectors, docker_client, service_name):
    staff = api("staff")
    staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
    session = connectors["gen-a"].signed()
    assert session.post(f"{connectors['gen-a'].url}/service", json={
        "name": service_name, "image": IMAGE, "command": "sleep 300"}).status_code == 201
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 2, "compute": "localdc"}, format="json")
    assert scaled.status_code == 200, scaled.json()
    assert scaled.json()["definition"] == "connector" and scaled.json()["computes"]["localdc"]["running"] == 2
    assert len(running(docker_client, service_name)) == 2
    assert Service.objects.get(name=service_name).command == "sleep 300"


# Item 4: a compute finds its host by address and port, and shows it.

def test_a_compute_written_as_the_docs_write_it_is_the_satellite_it_is(api, db, local_satellite, docker_client,
                                                                       service_name):
    enrol(local_satellite)
    staff = api("staff")
    as_documented = f"http://localhost:{local_satellite.port}"  # enrolled as http://127.0.0.1:<port>
    created = staff.post("/compute", {"name": "localdc", "connector": as_documented}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json() == {"name": "localdc", "connector": as_documented, "host": "local-sat", "signed": True}
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 1}, format="json")
    assert scaled.status_code == 200, scaled.json()
    assert len(running(docker_client, service_name)) == 1


def test_a_compute_defined_before_its_satellite_enrolled_is_linked_not_called_unsigned(
        api, db, local_satellite, docker_client, service_name):
    staff = api("staff")
    staff.post("/compute", {"name": "localdc", "connector": f"http://localhost:{local_satellite.port}"},
               format="json")
    assert staff.get("/compute/localdc").json()["host"] is None
    enrol(local_satellite)
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 1}, format="json")
    assert scaled.status_code == 200, scaled.json()
    assert staff.get("/compute/localdc").json()["host"] == "local-sat"
    assert Compute.objects.get(name="localdc").host.name == "local-sat"


def test_a_compute_linked_by_name_must_reach_that_satellite(api, db, local_satellite, original_connector):
    enrol(local_satellite)
    staff = api("staff")
    elsewhere = staff.post("/compute", {"name": "wrong", "connector": original_connector.url, "host": "local-sat"},
                           format="json")
    assert elsewhere.status_code == 400 and elsewhere.json()["error"]["detail"]["field"] == "host"
    assert not Compute.objects.filter(name="wrong").exists()
    unknown = staff.post("/compute", {"name": "wrong", "connector": original_connector.url, "host": "nope"},
                         format="json")
    assert unknown.status_code == 400 and unknown.json()["error"]["detail"]["field"] == "host"
    chosen = staff.post("/compute", {"name": "right", "connector": f"http://localhost:{local_satellite.port}/",
                                     "host": "local-sat"}, format="json")
    assert chosen.status_code == 201 and chosen.json()["host"] == "local-sat"
    # Moving the connector elsewhere unlinks it (it is no longer that satellite).
    moved = staff.put("/compute/right", {"connector": original_connector.url}, format="json")
    assert moved.status_code == 200 and moved.json()["host"] is None and moved.json()["signed"] is False


# Item 5: the token as the HTTP Basic password (credentials in the connector URL).

def test_the_connector_token_is_accepted_as_the_basic_password(token_satellite, service_name):
    base = token_satellite.url
    as_genisys_sends_it = with_credentials(base, "genisys", TOKEN)
    created = requests.post(f"{as_genisys_sends_it}/service", json={"name": service_name, "image": IMAGE},
                            timeout=10)
    assert created.status_code == 201, created.text
    assert requests.get(f"{as_genisys_sends_it}/service/{service_name}/status", timeout=10).json() == {
        "running_resources": 0}
    assert requests.get(f"{base}/service", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).ok
    for wrong in (with_credentials(base, "genisys", "nope"), with_credentials(base, TOKEN, "")):
        assert requests.get(f"{wrong}/service", timeout=10).status_code == 401
    garbled = requests.get(f"{base}/service", headers={"Authorization": "Basic %%%"}, timeout=10)
    assert garbled.status_code == 401 and garbled.json()["error"]["code"]
    # The container endpoints stay signed, whatever the token.
    assert requests.get(f"{as_genisys_sends_it}/containers", timeout=10).status_code == 401


def test_a_compute_with_credentials_in_its_url_scales_and_hides_them(api, db, token_satellite, docker_client,
                                                                     service_name):
    staff = api("staff")
    url = with_credentials(token_satellite.url, "genisys", TOKEN)
    created = staff.post("/compute", {"name": "ext", "connector": url}, format="json")
    assert created.status_code == 201 and TOKEN not in json.dumps(created.json())
    assert created.json()["connector"] == with_credentials(token_satellite.url, "genisys", "***")
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 1}, format="json")
    assert scaled.status_code == 200, scaled.json()
    assert len(running(docker_client, service_name)) == 1
    assert TOKEN not in json.dumps(staff.get("/compute").json())


# Item 6: compute_file.

def test_a_missing_compute_file_is_a_warning(db, tmp_path, settings, capsys):
    (tmp_path / "genisys.yml").write_text("genisys:\n  bind: 127.0.0.1\n  port: 7001\n  compute_file: "
                                          f"{tmp_path / 'computes.py'}\nconnector:\n  poll_interval: 15s\n")
    settings.GENISYS_CONFIG = str(tmp_path / "genisys.yml")
    settings.GENISYS_OVERRIDES = {}
    call_command("genisys", once=True)
    assert "computes.py does not exist" in capsys.readouterr().err
    assert not Compute.objects.exists()


@pytest.mark.parametrize("text, line", [
    ('local = {\n    "name": "local",\n    "connector": "http://localhost:7051",\n}\nbad = {\n', 5),
    ('local = {\n    "name": "local",\n    "connector": "http://localhost:7051"\n}\n\n'
     'other = {"name": "other", "connector": "not a url"}\n', 6),
    ('local = {"name": "local", "connector": "http://localhost:7051"}\nimport os\n', 2),
    ('local = {"name": "local", "connector": "http://localhost:7051"}\nother = dict(name="x")\n', 2),
])
def test_a_malformed_compute_file_is_an_error_naming_the_line_and_loads_nothing(db, tmp_path, text, line):
    path = tmp_path / "computes.py"
    path.write_text(text)
    with pytest.raises(CommandError) as error:
        call_command("loadcomputes", str(path))
    assert f"computes.py, line {line}:" in str(error.value)
    assert not Compute.objects.exists()


def test_a_compute_named_by_its_variable_as_the_original_keys_it(db, tmp_path):
    path = tmp_path / "computes.py"
    path.write_text('"""Computes."""\nlocal = {\n    "connector": "http://localhost:7051"\n}\n')
    call_command("loadcomputes", str(path))
    assert Compute.objects.get(name="local").connector == "http://localhost:7051"


# The originals' documented httpie calls, against real satellites.

def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_connectors_documented_calls_on_a_satellite(token_satellite, docker_client):
    """genisys-connector-docker's README, `http` lines in order (httpie sends `key=value` as JSON strings)."""
    base = with_credentials(token_satellite.url, "genisys", TOKEN)
    name = f"helloworld-{token_satellite.port}"
    # $ http POST :7051/service name="helloworld" image="tutum/hello-world:latest" ports:='["8080", "8081"]' \
    #        environment:='{"VAR_A":"value", "VAR_B": "value"}'
    created = requests.post(f"{base}/service", json={"name": name, "image": IMAGE, "ports": ["8080", "8081"],
                                                     "environment": {"VAR_A": "value", "VAR_B": "value"}}, timeout=10)
    assert created.status_code == 201, created.text
    listed = requests.get(f"{base}/service", timeout=10).json()
    assert listed[name] == {"name": name, "image": IMAGE, "command": None, "ports": ["8080", "8081"],
                            "environment": {"VAR_A": "value", "VAR_B": "value"}}
    # $ http PUT :7051/service/helloworld image="panamax/hello-world-php:latest" command="/run.sh" \
    #        ports:='["8080", "8082"]' environment:='{"VAR_A":"value", "VAR_B": "value"}'
    updated = requests.put(f"{base}/service/{name}", json={"image": IMAGE, "command": "sleep 300",
                                                          "ports": ["8080", "8082"],
                                                          "environment": {"VAR_A": "value", "VAR_B": "value"}},
                           timeout=10)
    assert updated.status_code == 200 and updated.json()["ports"] == ["8080", "8082"]
    assert requests.get(f"{base}/service/{name}", timeout=10).json()["command"] == "sleep 300"
    # $ http POST :7051/service/helloworld/scale number=3
    scaled = requests.post(f"{base}/service/{name}/scale", json={"number": "3"}, timeout=120)
    assert scaled.status_code == 200 and scaled.json() == {"running_resources": 3}
    assert requests.get(f"{base}/service/{name}/status", timeout=10).json() == {"running_resources": 3}
    assert len(running(docker_client, name)) == 3
    [one] = [c for c in running(docker_client, name) if c.name.endswith("-0")]
    assert "VAR_A=value" in one.attrs["Config"]["Env"]
    assert requests.post(f"{base}/service/{name}/scale", json={"number": "0"}, timeout=60).json() == {
        "running_resources": 0}


def test_genisys_documented_calls_against_boatload(api, db, tmp_path, settings, local_satellite, connectors,
                                                   hosts, docker_client, service_name):
    """Genisys' docs, in order: genisys.yml with its compute_file, `http POST :7001/compute …`,
    `http PUT :7001/compute/local …`, then `http POST :7001/service/myService/scale number=3 compute="local"`
    for a service defined on the connector only (as Genisys leaves definitions to connectors)."""
    enrol(local_satellite)
    (tmp_path / "computes.py").write_text(f"local = {{\n    'name': 'local',\n"
                                          f"    'connector': 'http://localhost:{local_satellite.port}'\n}}\n")
    (tmp_path / "genisys.yml").write_text(
        "genisys:\n  # Server address to bind to.\n  bind: 127.0.0.1\n\n  # Application port\n  port: 7001\n\n"
        f"  # Path to compute definitions\n  compute_file: {tmp_path / 'computes.py'}\n\n"
        "consul:\n  host: localhost\n  port: 8500\n  service_prefix: 'skynet_'\n"
        "  resources_key_prefix: 'skynet/resources/'\n\nconnector:\n  poll_interval: 15s\n")
    settings.GENISYS_CONFIG, settings.GENISYS_OVERRIDES = str(tmp_path / "genisys.yml"), {"consul": {"host": None}}
    call_command("genisys", once=True)
    staff = api("staff")
    assert staff.get("/compute/local").json() == {"name": "local", "connector": f"http://localhost:"
                                                  f"{local_satellite.port}", "host": "local-sat", "signed": True}
    # $ http POST :7001/compute name="localdc" connector="http://localhost:7051"
    created = staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
    assert created.status_code == 201 and created.json()["host"] == "gen-a"
    assert set(staff.get("/compute").json()) == {"local", "localdc"}
    # $ http PUT :7001/compute/local connector="http://localhost:7052"
    moved = staff.put("/compute/local", {"connector": connectors["gen-b"].url}, format="json")
    assert moved.status_code == 200 and moved.json()["host"] == "gen-b"
    staff.put("/compute/local", {"connector": f"http://localhost:{local_satellite.port}"}, format="json")
    # The service is defined on the connector (its POST /service), not on Genisys.
    assert local_satellite.signed().post(f"{local_satellite.url}/service", json={
        "name": service_name, "image": IMAGE, "command": "sleep 300"}).status_code == 201
    # $ http POST :7001/service/myService/scale number=3 compute="local"   (httpie: "3" is a string)
    scaled = staff.post(f"/service/{service_name}/scale", {"number": "3", "compute": "local"}, format="json")
    assert scaled.status_code == 200, scaled.json()
    assert scaled.json()["definition"] == "connector" and scaled.json()["computes"]["local"] == {
        "desired": 3, "running": 3}
    assert len(running(docker_client, service_name)) == 3
    assert staff.get(f"/service/{service_name}/status").json()["running_resources"] == 3
