"""What a connector answers: any 2xx to a push or a scale is success (the original connector answers
empty bodies), a status that is not a running number is a 502 naming the compute, and one failing
compute never stops a reconciler pass."""
import pytest

from genisys.management.commands.genisys import Command as Reconciler
from genisys.models import Compute, Desired, ScaleOrder, Service
from tests.conftest import IMAGE_NAME, IMAGE_TAG

pytestmark = pytest.mark.slow
IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"


def running(docker_client, name):
    return docker_client.containers.list(filters={"label": f"boatload.service={name}", "status": "running"})


def test_the_original_connector_as_a_compute_empty_2xx_bodies_are_success(api, db, original_connector,
                                                                         service_name):
    staff = api("staff")
    staff.post("/compute", {"name": "original", "connector": original_connector.url}, format="json")
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 3}, format="json")
    assert scaled.status_code == 200, scaled.json()
    assert scaled.json()["computes"]["original"] == {"desired": 3, "running": 3}  # asked status after the scale
    assert ("PUT", f"/service/{service_name}") in original_connector.calls
    assert original_connector.running[service_name] == 3
    assert staff.get(f"/service/{service_name}/status").json()["running_resources"] == 3
    # The reconciler takes the same empty answers.
    original_connector.running[service_name] = 1
    orders = Reconciler().process_one_service(Service.objects.get(name=service_name))
    assert [(o.from_number, o.to_number, o.result) for o in orders] == [(1, 3, "ok")]
    assert original_connector.running[service_name] == 3


@pytest.mark.parametrize("content_type, body", [
    ("text/html; charset=UTF-8", b"<html><body>It works!</body></html>"),
    ("application/json", b""),
    ("application/json", b'{"running_resources": -1}'),
    ("application/json", b'{"running_resources": "3"}'),
    ("application/json", b'{"running_resources": true}'),
    ("application/json", b'{"running_resources": 1.5}'),
    ("application/json", b'{"running": 3}'),
    ("application/json", b"[3]"),
    ("application/json", b"null"),
])
def test_a_status_that_is_not_a_running_number_is_a_502_naming_the_compute(api, db, original_connector,
                                                                           service_name, content_type, body):
    staff = api("staff")
    staff.post("/compute", {"name": "original", "connector": original_connector.url}, format="json")
    staff.post("/service", {"name": service_name, "image": IMAGE}, format="json")
    assert staff.post(f"/service/{service_name}/scale", {"number": 2}, format="json").status_code == 200
    original_connector.status_answer = (content_type, body)
    answer = staff.get(f"/service/{service_name}/status")
    assert answer.status_code == 502, answer.content
    assert answer.json()["error"]["detail"]["remote"] == "original" and "original" in answer.json()["error"][
        "message"]
    # A scale still succeeds (any 2xx is), though the running number is then unknown.
    scaled = staff.post(f"/service/{service_name}/scale", {"number": 1}, format="json")
    assert scaled.status_code == 200 and scaled.json()["computes"]["original"] == {"desired": 1, "running": None}


def test_one_failing_compute_never_stops_a_reconciler_pass(api, hosts, connectors, original_connector,
                                                           docker_client, service_name):
    staff = api("staff")
    staff.post("/compute", {"name": "original", "connector": original_connector.url}, format="json")
    staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    service = Service.objects.get(name=service_name)
    for name, number in (("original", 2), ("localdc", 1)):
        Desired.objects.create(service=service, compute=Compute.objects.get(name=name), number=number)
    original_connector.definitions[service_name] = service.definition()
    original_connector.status_answer = ("text/html", b"<html>Welcome to nginx!</html>")
    orders = Reconciler().process_one_service(service)
    assert {(o.compute.name, o.result) for o in orders} == {("original", "failed"), ("localdc", "ok")}
    assert "original" in ScaleOrder.objects.get(compute__name="original").message
    assert len(running(docker_client, service_name)) == 1
    Reconciler().process_one_pass()  # the whole pass, too, goes on
