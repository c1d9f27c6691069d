"""Genisys' own callers without a JWT (issue 14, item 7): Skynet's Consul handler posts
`{"number": N}` to `/service/<name>/scale`, with an API key, or to a scale hook's URL with nothing
but the body. Against the API over HTTP (live_server) and real satellites as connectors."""
import io
import logging
from datetime import timedelta

import pytest
import requests
from django.contrib.admin.utils import quote
from django.core.cache import cache
from django.utils import timezone

from genisys.models import ScaleHook, ScaleOrder, Service
from tests.api.test_edge_throttle import assert_throttled
from tests.conftest import IMAGE_NAME, IMAGE_TAG

IMAGE = f"{IMAGE_NAME}:{IMAGE_TAG}"


@pytest.fixture
def compute(api, hosts, connectors):
    assert api("staff").post("/compute", {"name": "localdc", "connector": connectors["gen-a"].url},
                             format="json").status_code == 201
    return "localdc"


@pytest.fixture
def service(api, service_name):
    """A service of `owner`, scaled back to 0 afterwards."""
    owner = api("owner")
    assert owner.post("/service", {"name": service_name, "image": IMAGE, "command": "sleep 300"},
                      format="json").status_code == 201
    yield service_name
    if ScaleOrder.objects.filter(service__name=service_name, to_number__gt=0).exists():
        assert owner.post(f"/service/{service_name}/scale", {"number": 0}, format="json").status_code == 200


def skynet_scale(url, number, **headers):
    """What Skynet's keyprefix handler sends: a JSON body and, here, at most one header."""
    return requests.post(url, json={"number": number}, headers={"Content-Type": "application/json", **headers},
                         timeout=60)


def issue_hook(client, service_name, name="skynet", **fields):
    answer = client.post(f"/service/{service_name}/hooks", {"name": name, **fields}, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def test_skynet_style_scale_with_an_api_key_over_http(live_server, api, compute, service):
    key = api("owner").post("/v1/apikey/", {"name": "skynet"}, format="json").json()["key"]
    other_key = api("other").post("/v1/apikey/", {"name": "skynet"}, format="json").json()["key"]
    url = f"{live_server.url}/service/{service}/scale"
    assert skynet_scale(url, 1).status_code == 401  # no credentials: as before
    refused = skynet_scale(url, 1, Authorization=f"Token {other_key}")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"  # not their service
    assert not ScaleOrder.objects.filter(service__name=service).exists()
    answer = skynet_scale(url, 1, Authorization=f"Token {key}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["computes"][compute] == {"desired": 1, "running": 1}
    order = ScaleOrder.objects.get(service__name=service)
    assert (order.requested_by.username, order.source, order.result) == ("owner", "api", "ok")


def test_a_scale_hook_scales_its_service_with_nothing_but_a_body(live_server, api, compute, service):
    owner = api("owner")
    made = issue_hook(owner, service)
    assert made["url"].startswith("http://testserver/service/") and "/scale/blh_" in made["url"]
    url = f"{live_server.url}{made['url'].removeprefix('http://testserver')}"
    answer = skynet_scale(url, 1)
    assert answer.status_code == 200, answer.text
    assert answer.json()["computes"][compute] == {"desired": 1, "running": 1}
    order = ScaleOrder.objects.get(service__name=service)
    assert (order.requested_by.username, order.source, order.to_number) == ("owner", "hook", 1)
    row = ScaleHook.objects.get(prefix=made["id"])
    assert row.last_used is not None and row.hashed_key.startswith("sha512$$")
    assert made["url"].rpartition(".")[2] not in row.hashed_key + row.id
    listed = owner.get(f"/service/{service}/hooks").json()
    assert [hook["id"] for hook in listed] == [made["id"]] and "url" not in listed[0]
    assert listed[0]["last_used"] is not None
    revoked = owner.post(f"/service/{service}/hooks/{made['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    gone = skynet_scale(url, 0)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert ScaleOrder.objects.filter(service__name=service).count() == 1


@pytest.fixture
def owned(users, service_name):
    """Two services of `owner`, with no compute: nothing here reaches a connector."""
    return [Service.objects.create(name=f"{service_name}{suffix}", image=IMAGE, owner=users["owner"])
            for suffix in ("a", "b")]


def hook_path(made):
    return made["url"].removeprefix("http://testserver")


def test_a_hook_scales_only_its_own_service_and_only_while_its_maker_may(api, users, owned):
    first, second = owned
    made = issue_hook(api("owner"), first.name)
    client = api()
    wrong_service = client.post(hook_path(made).replace(f"/{first.name}/", f"/{second.name}/"), {"number": 1},
                                format="json")
    assert wrong_service.status_code == 404
    assert client.post(hook_path(made) + "x", {"number": 1}, format="json").status_code == 404
    bad = client.post(hook_path(made), {"number": -1}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["detail"]["field"] == "number"
    users["owner"].is_active = False
    users["owner"].save()
    assert client.post(hook_path(made), {"number": 1}, format="json").status_code == 404
    users["owner"].is_active = True
    users["owner"].save()
    ScaleHook.objects.filter(prefix=made["id"]).update(expiry_date=timezone.now() - timedelta(seconds=1))
    assert client.post(hook_path(made), {"number": 1}, format="json").status_code == 404
    assert not ScaleOrder.objects.exists()


def test_hooks_are_managed_by_whoever_reaches_the_service_with_a_password_login(api, owned):
    name = owned[0].name
    made = issue_hook(api("owner"), name)
    other = api("other")
    for answer in (other.get(f"/service/{name}/hooks"), other.post(f"/service/{name}/hooks", {"name": "x"},
                                                                     format="json"),
                   other.post(f"/service/{name}/hooks/{made['id']}/revoke")):
        assert answer.status_code == 404
    assert [hook["id"] for hook in api("staff").get(f"/service/{name}/hooks").json()] == [made["id"]]
    key = api("owner").post("/v1/apikey/", {"name": "ci"}, format="json").json()["key"]
    with_key = api()
    with_key.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert with_key.post(f"/service/{name}/hooks", {"name": "more"}, format="json").status_code == 401
    bad = api("owner").post(f"/service/{name}/hooks", {"name": "x", "expires": "2001-01-01T00:00:00Z"},
                            format="json")
    assert bad.status_code == 400 and bad.json()["error"]["detail"]["field"] == "expires"
    assert ScaleHook.objects.count() == 1 and ScaleHook.objects.get().revoked is False


def test_wrong_hook_secrets_are_throttled_per_address(api, owned, settings):
    cache.clear()
    settings.LOGIN_RATE_ADDRESS = "2/m"
    made = issue_hook(api("owner"), owned[0].name)
    client = api()
    for number in range(2):
        assert client.post(f"/service/{owned[0].name}/scale/blh_wrong{number}.x", {"number": 1},
                           format="json").status_code == 404
    assert_throttled(client.post(f"/service/{owned[0].name}/scale/blh_wrong9.x", {"number": 1}, format="json"))
    assert_throttled(client.post(hook_path(made), {"number": 1}, format="json"))  # the right one waits too
    assert not ScaleOrder.objects.exists()


def test_log_lines_never_carry_a_hook_secret(api, owned):
    made = issue_hook(api("owner"), owned[0].name)
    secret = made["url"].rpartition(".")[2]
    handler = logging.getLogger().handlers[0]  # the one stdout handler of settings.LOGGING
    lines = io.StringIO()
    previous = handler.setStream(lines)
    try:
        assert api().post(hook_path(made), {"number": -1}, format="json").status_code == 400  # Django logs the path
    finally:
        handler.setStream(previous)
    assert f"Bad Request: /service/{owned[0].name}/scale/blh_{made['id']}.***" in lines.getvalue()
    assert secret not in lines.getvalue()


def test_staff_revoke_a_hook_in_the_admin_and_can_not_make_one_there(api, client, django_user_model, owned):
    made = issue_hook(api("owner"), owned[0].name)
    client.force_login(django_user_model.objects.create_superuser("root", password="root-pass-1"))
    assert client.get("/admin/genisys/scalehook/add/").status_code == 403
    row = ScaleHook.objects.get(prefix=made["id"])
    page = f"/admin/genisys/scalehook/{quote(row.pk)}/change/"
    assert client.get(page).status_code == 200
    answer = client.post(page, {"name": row.name, "expiry_date_0": "", "expiry_date_1": "", "revoked": "on"})
    assert answer.status_code == 302, answer.content[:2000]
    assert api().post(hook_path(made), {"number": 1}, format="json").status_code == 404
