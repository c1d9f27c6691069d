"""An order the connector refuses as bad input (a number over its maximum, a definition it can not run)
is a 400 naming the field (`number` by default), and no desired number that can never be met is kept."""
import pytest

from genisys.management.commands.genisys import Command as Reconciler
from genisys.models import Desired, Service
from tests.conftest import IMAGE_NAME, IMAGE_TAG, SatelliteProcess

pytestmark = pytest.mark.slow
IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"


def running(docker_client, name):
    return docker_client.containers.list(filters={"label": f"boatload.service={name}", "status": "running"})


def test_a_number_over_the_connectors_maximum_is_400_and_no_desired_is_kept(api, hosts, connectors,
                                                                           docker_client, service_name):
    staff = api("staff")
    staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
    staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    over = staff.post(f"/service/{service_name}/scale", {"number": 101}, format="json")  # SATELLITE_MAX_SCALE 100
    assert over.status_code == 400, over.json()
    assert over.json()["error"]["detail"]["field"] == "number" and "localdc" in over.json()["error"]["message"]
    assert not Desired.objects.filter(service__name=service_name).exists()
    assert staff.post(f"/service/{service_name}/scale", {"number": 1}, format="json").status_code == 200
    assert staff.post(f"/service/{service_name}/scale", {"number": 101}, format="json").status_code == 400
    assert Desired.objects.get(service__name=service_name).number == 1
    assert len(running(docker_client, service_name)) == 1
    assert Reconciler().process_one_service(Service.objects.get(name=service_name)) == []


def test_a_spread_refused_by_one_compute_is_taken_back_on_every_compute(api, hosts, connectors, docker_client,
                                                                       tmp_path, service_name):
    from django.utils import timezone

    from boatload.models import Host

    small = SatelliteProcess(tmp_path, name="gen-small", address="127.0.0.36",
                             env={"SATELLITE_MAX_SCALE": "2"}).start()
    try:
        Host.objects.create(name="gen-small", satellite_url=small.url, key_id=small.key_id, secret=small.secret,
                            last_seen=timezone.now())
        staff = api("staff")
        staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
        staff.post("/compute", {"name": "small", "connector": small.url}, format="json")
        staff.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
        assert staff.post(f"/service/{service_name}/scale", {"number": 1, "compute": "localdc"},
                          format="json").status_code == 200
        answer = staff.post(f"/service/{service_name}/scale", {"number": 6, "compute": "*"}, format="json")
        assert answer.status_code == 400, answer.json()
        assert answer.json()["error"]["detail"]["field"] == "number"
        assert set(answer.json()["error"]["detail"]["computes"]) == {"small"}
        assert dict(Desired.objects.filter(service__name=service_name).values_list("compute__name", "number")) == {
            "localdc": 1}
        assert len(running(docker_client, service_name)) == 1  # localdc had taken 3, and went back to 1
        orders = staff.get(f"/service/{service_name}/orders").json()
        assert [(o["compute"], o["to_number"], o["result"]) for o in orders[:3]] == [
            ("localdc", 1, "ok"), ("small", 3, "failed"), ("localdc", 3, "ok")]
    finally:
        small.stop()


def test_a_definition_stored_before_validation_gets_400_not_500(api, hosts, connectors, service_name):
    staff = api("staff")
    staff.post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url}, format="json")
    Service.objects.create(name=service_name, image=IMAGE, command='echo "open')
    answer = staff.post(f"/service/{service_name}/scale", {"number": 1}, format="json")
    assert answer.status_code == 400 and answer.json()["error"]["detail"]["field"] == "command", answer.json()
    assert not Desired.objects.filter(service__name=service_name).exists()
