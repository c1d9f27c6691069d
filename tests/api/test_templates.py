"""Templates are checked whole when saved: key types, the raw-create key tables, the spec they make."""
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from boatload.models import Template
from boatload.template_spec import check_template_body
from tests.conftest import ROOT, TEST_IMAGE

MIB = 1024 * 1024

BAD_BODIES = [  # (the body's fields besides Image, the key the 400 names)
    ({"Env": 5}, "body.Env"),
    ({"Cmd": 5}, "body.Cmd"),
    ({"Labels": "x"}, "body.Labels"),
    ({"ExposedPorts": {"abc/tcp": {}}}, "body.ExposedPorts.abc/tcp"),
    ({"ExposedPorts": {"\u00b2/tcp": {}}}, "body.ExposedPorts.\u00b2/tcp"),
    ({"HostConfig": {"RestartPolicy": "always"}}, "body.HostConfig.RestartPolicy"),
    ({"HostConfig": {"NanoCpus": "x"}}, "body.HostConfig.NanoCpus"),
    ({"HostConfig": {"Memory": 1}}, "body.HostConfig.Memory"),  # under Docker's 6m: the spec refuses it
    ({"Env": ["1BAD=x"]}, "body.Env"),
    ({"Labels": {"boatload.owner": "someone-else"}}, "body.Labels.boatload.owner"),
    ({"HostConfig": {"Binds": ["relative:/x"]}}, "body.HostConfig.Binds[0]"),
    ({"ExposedPorts": {"80/sctp": {}}}, "body.ExposedPorts"),
]


@pytest.mark.parametrize("fields, field", BAD_BODIES, ids=[key for _, key in BAD_BODIES])
def test_a_template_with_a_wrong_value_is_refused_when_saved_naming_the_key(api, fields, field):
    answer = api("staff").post("/v1/template/", {"name": "bad", "body": {"Image": TEST_IMAGE, **fields}},
                               format="json")
    assert answer.status_code == 400, answer.json()
    assert answer.json()["error"]["detail"]["field"] == field
    assert not Template.objects.exists()


def test_another_users_create_from_a_bad_stored_template_is_400_not_500(api):
    Template.objects.create(name="legacy", body={"Image": TEST_IMAGE, "Env": 5})  # saved before the check
    answer = api("owner").post("/v1/container/", {"template": "legacy"}, format="json")
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["detail"]["field"] == "template" and "body.Env" in error["message"]


def test_template_keys_are_read_as_docker_reads_them_and_staff_only_parts_stay_staff_only(api):
    staff, owner = api("staff"), api("owner")
    body = {"image": TEST_IMAGE, "cmd": "true", "hostconfig": {"privileged": True, "MEMORY": 64 * MIB}}
    saved = staff.post("/v1/template/", {"name": "root", "body": body}, format="json")
    assert saved.status_code == 201, saved.json()
    assert Template.objects.get(name="root").body == {
        "Image": TEST_IMAGE, "Cmd": ["true"], "HostConfig": {"Privileged": True, "Memory": 64 * MIB}}
    used = owner.post("/v1/container/", {"template": "root"}, format="json")
    assert used.status_code == 403 and "privileged" in used.json()["error"]["message"]
    for bad, field in (({"Cmd": ["a"], "cmd": ["b"]}, "body.Cmd"),
                       ({"HostConfig": {"PidMode": "host"}}, "body.HostConfig.PidMode")):
        answer = staff.post("/v1/template/", {"name": "bad", "body": {"Image": TEST_IMAGE, **bad}}, format="json")
        assert answer.status_code == 400 and answer.json()["error"]["detail"]["field"] == field
    assert list(Template.objects.values_list("name", flat=True)) == ["root"]


def test_loadtemplates_refuses_an_invalid_file_naming_it_and_the_key(db, tmp_path):
    (tmp_path / "broken.json").write_text(json.dumps({"name": "broken", "body": {"Image": TEST_IMAGE, "Env": 5}}))
    with pytest.raises(CommandError) as raised:
        call_command("loadtemplates", str(tmp_path))
    assert "broken.json" in str(raised.value) and "body.Env" in str(raised.value)
    assert not Template.objects.filter(name="broken").exists()


def test_the_shipped_templates_and_fixture_stay_valid():
    # A guard, not a fix: these loaded before and must still load under the stricter check.
    bodies = [json.loads(path.read_text())["body"] for path in sorted((ROOT / "templates").glob("*.json"))]
    bodies += [item["fields"]["body"] for item in json.loads((ROOT / "fixtures" / "templates.json").read_text())]
    assert bodies
    for body in bodies:
        assert check_template_body(body) == body
