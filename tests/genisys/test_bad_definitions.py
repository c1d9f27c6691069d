"""A bad service definition (open quote in command, odd digits in ports) is a 400 naming the field when
it is saved, on the API and on the satellite connector alike: never a 500."""
import pytest

from genisys.models import Service
from tests.conftest import IMAGE_NAME, IMAGE_TAG

pytestmark = pytest.mark.slow
IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"
BAD_DEFINITIONS = [
    ({"command": 'sh -c "echo unclosed'}, "command"),
    ({"command": "echo trailing\\"}, "command"),
    ({"ports": ["²"]}, "ports[0]"),
    ({"ports": ["8080", "①"]}, "ports[1]"),
    ({"ports": ["٣"]}, "ports[0]"),  # an Arabic-Indic digit
    ({"ports": ["70000"]}, "ports[0]"),
    ({"ports": ["http"]}, "ports[0]"),
]


def running(docker_client, name):
    return docker_client.containers.list(filters={"label": f"boatload.service={name}", "status": "running"})


@pytest.mark.parametrize("bad, field", BAD_DEFINITIONS)
def test_a_bad_definition_is_refused_when_saved_naming_the_field(api, db, service_name, bad, field):
    staff = api("staff")
    created = staff.post("/service", {"name": service_name, "image": IMAGE, **bad}, format="json")
    assert created.status_code == 400 and created.json()["error"]["detail"]["field"] == field
    assert not Service.objects.filter(name=service_name).exists()
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 1"}, format="json")
    updated = staff.put(f"/service/{service_name}", {"image": IMAGE, **bad}, format="json")
    assert updated.status_code == 400 and updated.json()["error"]["detail"]["field"] == field
    assert Service.objects.get(name=service_name).command == "sleep 1"


def test_the_satellite_connector_refuses_a_bad_definition_naming_the_field(connectors, service_name):
    session, base = connectors["gen-a"].signed(), connectors["gen-a"].url
    for bad, field in BAD_DEFINITIONS:
        answer = session.post(f"{base}/service", json={"name": service_name, "image": IMAGE, **bad})
        assert answer.status_code == 400 and answer.json()["error"]["detail"]["field"] == field, bad
        answer = session.put(f"{base}/service/{service_name}", json={"image": IMAGE, **bad})
        assert answer.status_code == 400 and answer.json()["error"]["detail"]["field"] == field, bad
    assert session.get(f"{base}/service/{service_name}").status_code == 404


def test_ports_with_a_protocol_are_published_with_it(api, hosts, connectors, docker_client, service_name):
    staff = api("staff")
    staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300",
                            "ports": ["8080", "5353/udp"]}, format="json")
    assert staff.post(f"/service/{service_name}/scale", {"number": 1}, format="json").status_code == 200
    [container] = running(docker_client, service_name)
    assert set(container.attrs["Config"]["ExposedPorts"]) == {"8080/tcp", "5353/udp"}
