"""Audit entries of scale-hook and redeploy-hook calls (issue 17, item 4): a hook's secret stands for its maker,
so the entry names the maker (who), the change (what) and its result, and it is written in the change's own
transaction: a hook call whose entry can not be written changes nothing, and one whose change fails has one
failed entry, never one claiming success. Real satellites as connectors (tests/genisys/conftest.py)."""
import pytest

from genisys.models import Deployment, Desired, ScaleHook
from observe.models import AuditEntry
from tests.conftest import IMAGE_NAME, IMAGE_TAG
from tests.observe.test_audit import assert_no_secret, refuse_audit_writes, status_of

IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"


@pytest.fixture
def owned(api, hosts, connectors, service_name, docker_client):
    """A service of `owner` on the compute gen-a; its containers removed afterwards."""
    assert api("staff").post("/compute", {"name": "gen-a", "connector": connectors["gen-a"].url},
                             format="json").status_code == 201
    assert api("owner").post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"},
                             format="json").status_code == 201
    yield service_name
    for container in docker_client.containers.list(all=True, filters={"label": f"boatload.service={service_name}"}):
        container.remove(force=True)


def hook_entries(action):
    return list(AuditEntry.objects.filter(action=action).order_by("id"))


def test_a_scale_hook_call_is_audited_as_its_maker_with_what_and_the_result(api, owned):
    made = api("owner").post(f"/service/{owned}/hooks", {"name": "skynet"}, format="json").json()
    path = made["url"].removeprefix("http://testserver")
    anonymous = api()
    assert anonymous.post(path, {"number": 1}, format="json").status_code == 200
    assert anonymous.post(path, {"number": -1}, format="json").status_code == 400  # refused before any change
    refused = anonymous.post(path, {"number": 1000}, format="json")  # over SATELLITE_MAX_SCALE: taken back
    assert refused.status_code == 400, refused.json()
    scaled, bad, over = hook_entries("service.scale")
    hook = ScaleHook.objects.get(prefix=made["id"])
    assert (scaled.actor_name, scaled.actor_id, scaled.target, scaled.result, scaled.status_code) == (
        "owner", hook.created_by_id, owned, "ok", 200)
    assert scaled.detail == {"via": "scale-hook", "hook": made["id"], "number": 1, "computes": ["gen-a"]}
    assert (bad.actor_name, bad.target, bad.result, bad.status_code) == ("owner", owned, "failed", 400)
    assert (over.actor_name, over.result, over.status_code) == ("owner", "failed", 400)  # no row claims success
    assert Desired.objects.get(service__name=owned).number == 1  # the refused order took its number back
    assert_no_secret(path.rsplit("/", 1)[-1].partition(".")[2])
    refuse_audit_writes()  # an entry that can not be written: the order is not made either
    assert status_of(lambda: anonymous.post(path, {"number": 2}, format="json")) == 500
    assert Desired.objects.get(service__name=owned).number == 1


def test_a_redeploy_hook_call_is_audited_as_its_maker_in_the_deployment_transaction(api, owned):
    owner = api("owner")
    assert owner.post(f"/service/{owned}/scale", {"number": 1}, format="json").status_code == 200
    url = owner.post(f"/service/{owned}/hook").json()["url"].removeprefix("http://testserver")
    before = Deployment.objects.filter(service__name=owned).count()
    answer = api().post(url)
    assert answer.status_code == 202, answer.json()
    [entry] = hook_entries("service.redeploy")
    deployment = answer.json()["deployment"]
    assert (entry.actor_name, entry.target, entry.result, entry.status_code) == ("owner", owned, "ok", 202)
    assert entry.detail == {"via": "redeploy-hook", "deployment": deployment["id"],
                            "from_version": deployment["from_version"], "to_version": deployment["to_version"]}
    assert_no_secret(url.rsplit("/", 1)[-1])  # the path holds the secret: masked
    refuse_audit_writes()
    assert status_of(lambda: api().post(url)) == 500
    assert Deployment.objects.filter(service__name=owned).count() == before + 1  # the refused call made none


def test_a_redeploy_hook_call_whose_change_fails_has_one_failed_entry(api, owned):
    owner = api("owner")
    assert owner.post(f"/service/{owned}/scale", {"number": 1}, format="json").status_code == 200
    url = owner.post(f"/service/{owned}/hook").json()["url"].removeprefix("http://testserver")
    current = owner.get(f"/service/{owned}").json()
    moved = owner.put(f"/service/{owned}", {**{k: current[k] for k in ("command", "environment", "ports")},
                                            "image": "boatload-test/not-on-any-host:1"}, format="json")
    assert moved.status_code == 200, moved.json()
    before = Deployment.objects.filter(service__name=owned).count()
    failed = api().post(url)
    assert failed.status_code == 409 and failed.json()["error"]["detail"]["field"] == "image"
    [entry] = hook_entries("service.redeploy")
    assert (entry.actor_name, entry.target, entry.result, entry.status_code, entry.error_code) == (
        "owner", owned, "failed", 409, "image_missing")
    assert Deployment.objects.filter(service__name=owned).count() == before
