"""Genisys services have owners: a user reaches only their own (others' are 404), staff reach all;
computes are staff-only to write, and a user reads only those their own services use."""
import pytest

from genisys.models import Desired, ScaleOrder, Service
from tests.conftest import IMAGE_NAME, IMAGE_TAG

pytestmark = pytest.mark.slow
IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"


@pytest.fixture
def computes(api, hosts, connectors):
    staff = api("staff")
    for name, satellite in (("localdc", "gen-a"), ("unused", "gen-b")):
        assert staff.post("/compute", {"name": name, "connector": connectors[satellite].url},
                          format="json").status_code == 201
    return ["localdc", "unused"]


def calls_on(name):
    return [("get", f"/service/{name}", None),
            ("put", f"/service/{name}", {"image": IMAGE, "command": "sleep 1", "environment": {"X": "stolen"}}),
            ("post", f"/service/{name}/scale", {"number": 0}),
            ("post", f"/service/{name}/scale", {"number": 2, "compute": "*"}),
            ("get", f"/service/{name}/status", None),
            ("get", f"/service/{name}/orders", None)]


def test_another_users_service_is_404_like_a_missing_one_and_left_untouched(api, computes, service_name):
    owner, other, staff = api("owner"), api("other"), api("staff")
    definition = {"name": service_name, "image": IMAGE, "command": "sleep 300", "environment": {"TOKEN": "s3cret"}}
    created = owner.post("/service", definition, format="json")
    assert created.status_code == 201 and created.json()["owner"] == "owner"
    assert owner.get("/service").json()[service_name]["environment"] == {"TOKEN": "s3cret"}
    assert other.get("/service").json() == {}
    for (method, path, body), (_, missing_path, _) in zip(calls_on(service_name), calls_on("no-such-service")):
        answer = getattr(other, method)(path, body, format="json")
        missing = getattr(other, method)(missing_path, body, format="json")
        assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found"), (method, path)
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "not_found"), (method, path)
        assert "s3cret" not in answer.content.decode()
    row = Service.objects.get(name=service_name)
    assert (row.command, row.environment) == ("sleep 300", {"TOKEN": "s3cret"})
    assert not Desired.objects.filter(service=row).exists() and not ScaleOrder.objects.filter(service=row).exists()
    # Staff see and change every service; the owner stays who made it.
    assert staff.get("/service").json()[service_name]["owner"] == "owner"
    assert staff.put(f"/service/{service_name}", {"image": IMAGE, "command": "sleep 301"},
                     format="json").status_code == 200
    assert owner.get(f"/service/{service_name}").json()["command"] == "sleep 301"
    assert owner.post(f"/service/{service_name}/scale", {"number": 0}, format="json").status_code == 200
    assert owner.get(f"/service/{service_name}/orders").json()[0]["requested_by"] == "owner"


def test_a_service_without_owner_is_staff_only(api, computes, service_name):
    Service.objects.create(name=service_name, image=IMAGE, environment={"TOKEN": "s3cret"})
    assert api("owner").get("/service").json() == {}
    assert api("owner").get(f"/service/{service_name}").status_code == 404
    assert api("staff").get(f"/service/{service_name}").json()["owner"] is None


def test_a_user_reads_only_the_computes_their_own_services_use(api, computes, service_name):
    owner, other, staff = api("owner"), api("other"), api("staff")
    assert set(staff.get("/compute").json()) == {"localdc", "unused"}
    assert owner.get("/compute").json() == {}
    assert owner.get("/compute/localdc").status_code == 404
    owner.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"}, format="json")
    assert owner.post(f"/service/{service_name}/scale", {"number": 1}, format="json").status_code == 200
    assert set(owner.get("/compute").json()) == {"localdc"}
    assert owner.get("/compute/localdc").json()["name"] == "localdc"
    assert owner.get("/compute/unused").status_code == 404
    assert other.get("/compute").json() == {} and other.get("/compute/localdc").status_code == 404
    # Writing computes stays staff only, also for a compute the user may read.
    assert owner.put("/compute/localdc", {"connector": "http://127.0.0.1:1"}, format="json").status_code == 403
    assert owner.post(f"/service/{service_name}/scale", {"number": 0}, format="json").status_code == 200
    assert set(owner.get("/compute").json()) == {"localdc"}  # its orders still name it


def test_a_taken_service_name_is_refused_without_showing_the_service(api, computes, service_name):
    api("owner").post("/service", {"name": service_name, "image": IMAGE, "environment": {"TOKEN": "s3cret"}},
                      format="json")
    answer = api("other").post("/service", {"name": service_name, "image": IMAGE}, format="json")
    assert answer.status_code == 400 and answer.json()["error"]["detail"]["field"] == "name"
    assert "s3cret" not in answer.content.decode()
    assert Service.objects.get(name=service_name).owner.username == "owner"
