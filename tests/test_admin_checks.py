"""The admin saves only what the API would: its forms run the API's serializers (boatload.adminforms)."""
import json

import pytest

from boatload.models import Template
from genisys.models import Compute, Service

NO_DESIRED = {"desired-TOTAL_FORMS": "0", "desired-INITIAL_FORMS": "0", "desired-MIN_NUM_FORMS": "0",
              "desired-MAX_NUM_FORMS": "1000"}


@pytest.fixture
def staff_client(client, users):
    users["staff"].is_superuser = True
    users["staff"].save()
    client.force_login(users["staff"])
    return client


def service_form(**fields):
    return {"name": "admin-svc", "image": "boatload-test/busybox:latest", "command": "sleep 60",
            "environment": "null", "ports": "null", "healthcheck": "null", "update": "null",
            "managed_by": "api", "defined_by": "boatload", **NO_DESIRED, **fields}


def test_a_definition_the_api_refuses_is_refused_in_the_admin_and_nothing_is_saved(staff_client):
    answer = staff_client.post("/admin/genisys/service/add/", service_form(
        healthcheck=json.dumps({"test": "true", "interval": "soon"})))
    assert answer.status_code == 200  # the form again, with the error next to its field
    assert "interval" in answer.context["adminform"].form.errors.get("healthcheck", [""])[0]
    assert not Service.objects.filter(name="admin-svc").exists()

    answer = staff_client.post("/admin/genisys/service/add/", service_form(update=json.dumps({"parallelism": 0})))
    assert "update" in answer.context["adminform"].form.errors
    assert not Service.objects.filter(name="admin-svc").exists()


def test_a_good_definition_is_saved_as_the_api_saves_it(staff_client):
    answer = staff_client.post("/admin/genisys/service/add/", service_form(
        healthcheck=json.dumps({"test": "test -f /ok", "interval": "2s"})))
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    service = Service.objects.get(name="admin-svc")
    assert service.healthcheck["test"] == ["CMD-SHELL", "test -f /ok"]  # as the API stores it
    assert service.version == 1


def test_a_template_body_is_checked_and_stored_canonical(staff_client):
    answer = staff_client.post("/admin/boatload/template/add/", {
        "name": "bad-tpl", "description": "", "body": json.dumps({"HostConfig": {"Privileged": "yes"}})})
    assert answer.status_code == 200 and "body" in answer.context["adminform"].form.errors
    assert not Template.objects.filter(name="bad-tpl").exists()
    answer = staff_client.post("/admin/boatload/template/add/", {
        "name": "good-tpl", "description": "", "body": json.dumps({"image": "boatload-test/busybox:latest",
                                                                   "cmd": ["sleep", "5"]})})
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    assert Template.objects.get(name="good-tpl").body == {"Image": "boatload-test/busybox:latest",
                                                          "Cmd": ["sleep", "5"]}


def test_a_compute_made_in_the_admin_is_linked_to_the_satellite_it_names(staff_client, host):
    port = host.satellite_url.rsplit(":", 1)[1]
    answer = staff_client.post("/admin/genisys/compute/add/", {
        "name": "admin-compute", "connector": f"http://localhost:{port}", "host": "", "token": "",
        "position": "0"})
    assert answer.status_code == 302, answer.context["adminform"].form.errors
    assert Compute.objects.get(name="admin-compute").host == host  # signed, not a silent unsigned call


def test_a_change_in_the_admin_is_checked_too_and_a_good_one_is_a_new_version(staff_client):
    staff_client.post("/admin/genisys/service/add/", service_form())
    service = Service.objects.get(name="admin-svc")
    url = f"/admin/genisys/service/{service.pk}/change/"
    answer = staff_client.post(url, service_form(ports=json.dumps([{"port": "eighty"}])))
    assert answer.status_code == 200 and "ports" in answer.context["adminform"].form.errors
    assert Service.objects.get(pk=service.pk).ports is None
    assert staff_client.post(url, service_form(command="sleep 61")).status_code == 302
    assert Service.objects.get(pk=service.pk).version == 2
