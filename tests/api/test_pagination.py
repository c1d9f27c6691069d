"""Every listing pages by cursor (common/pagination.py): `limit` with a default and a maximum, `next`,
stable while rows are inserted, a count only when asked, and bad paging input a 400 naming its field."""
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from boatload.models import Container, Host, JoinToken, Template
from genisys.models import Compute, ScaleOrder, Service
from observe.models import AuditEntry
from tests.api.helpers import create


def _rows(users, n, prefix="bl"):
    return Container.objects.bulk_create([Container(owner=users["owner"], image_name="img", name=f"{prefix}-{i}")
                                          for i in range(n)])


def _relative(url):
    return url.replace("http://testserver", "")


def walk(client, path):
    """Every item of a listing, page after page as `next` leads."""
    seen, url = [], path
    while url:
        answer = client.get(url)
        assert answer.status_code == 200, answer.content
        page = answer.json()
        seen.extend(page["results"])
        url = page["next"] and _relative(page["next"])
    return seen


@pytest.fixture
def orders(users):
    """A service of the owner with five scale orders on one compute (rows only: no connector is asked)."""
    service = Service.objects.create(name="paged-svc", image="img", owner=users["owner"])
    compute = Compute.objects.create(name="paged-dc", connector="http://127.0.0.1:9")
    ScaleOrder.objects.bulk_create([ScaleOrder(service=service, compute=compute, source="api", to_number=n,
                                               result="ok") for n in range(5)])
    return service


def test_paging_containers_while_rows_are_inserted_sees_every_row_once(api, users):
    owner = api("owner")
    before = {str(row.uuid) for row in _rows(users, 25)}
    seen, url = [], "/v1/container/?limit=10"
    while url:
        page = owner.get(url).json()
        seen.extend(item["id"] for item in page["results"])
        _rows(users, 5, prefix=f"new{len(seen)}")  # newer rows arrive between pages
        url = page["next"] and _relative(page["next"])
    assert sorted(item for item in seen if item in before) == sorted(before)
    assert len(seen) == len(set(seen)), "a row came twice"


def test_a_page_counts_only_when_asked(api, users):
    owner = api("owner")
    _rows(users, 12)
    with CaptureQueriesContext(connection) as plain:
        page = owner.get("/v1/container/?limit=5").json()
    assert len(page["results"]) == 5 and page["next"] and "count" not in page
    assert not [q["sql"] for q in plain.captured_queries if "COUNT(" in q["sql"].upper()]
    assert owner.get("/v1/container/?limit=5&count=true").json()["count"] == 12
    assert owner.get("/v1/container/?limit=5&count=false").json().get("count") is None


def test_the_default_page_is_100_and_1000_the_most(api, users):
    owner = api("owner")
    _rows(users, 1001)
    assert len(owner.get("/v1/container/").json()["results"]) == 100
    assert len(owner.get("/v1/container/?limit=1000").json()["results"]) == 1000
    assert owner.get("/v1/container/?limit=1001").status_code == 400


LISTINGS = ["/v1/container/", "/v1/host/", "/v1/template/", "/v1/jointoken/", "/v1/audit/",
            "/v1/container/cluster/", "/v1/image/", "/service/paged-svc/orders"]


@pytest.mark.parametrize("path", LISTINGS)
@pytest.mark.parametrize("query, field", [("limit=abc", "limit"), ("limit=0", "limit"), ("limit=1001", "limit"),
                                          ("cursor=%25%25not-ours", "cursor"), ("cursor=bm90IGEgY3Vyc29y", "cursor"),
                                          ("count=maybe", "count"), ("offset=100", "offset")])
def test_bad_paging_input_is_400_naming_the_field(api, orders, path, query, field):
    answer = api("staff").get(f"{path}?{query}")
    assert answer.status_code == 400, (path, query, answer.content)
    assert answer.json()["error"]["detail"]["field"] == field


def test_hosts_templates_tokens_and_audit_page_by_cursor(api, users):
    staff = api("staff")
    for n in range(3):
        Host.objects.create(name=f"paged-{n}", satellite_url="http://127.0.0.1:9", key_id=f"hk_paged{n}",
                            secret="s", last_seen=timezone.now())
        Template.objects.create(name=f"paged-{n}", body={"Image": "img"})
        JoinToken.issue(user=users["staff"], note=f"paged {n}")
        AuditEntry.objects.create(action="test.paged", actor=users["staff"], actor_name="staff", result="ok")
    for path, key, wanted in [("/v1/host/", "name", {f"paged-{n}" for n in range(3)}),
                              ("/v1/template/", "name", {f"paged-{n}" for n in range(3)}),
                              ("/v1/jointoken/", "note", {f"paged {n}" for n in range(3)}),
                              ("/v1/audit/?action=test.paged", "action", {"test.paged"})]:
        first = staff.get(path + ("&" if "?" in path else "?") + "limit=2").json()
        assert len(first["results"]) == 2 and "cursor=" in first["next"], path
        items = walk(staff, path + ("&" if "?" in path else "?") + "limit=2")
        assert {item[key] for item in items} >= wanted and len(items) >= 3, path


def test_scale_orders_stay_a_list_with_the_next_page_in_headers(api, orders):
    owner = api("owner")
    first = owner.get(f"/service/{orders.name}/orders?limit=2&count=true")
    assert [o["to_number"] for o in first.json()] == [4, 3]
    assert first["X-Total-Count"] == "5" and first["X-Next-Cursor"] and 'rel="next"' in first["Link"]
    numbers, answer = [], first
    while True:
        numbers.extend(o["to_number"] for o in answer.json())
        if "X-Next-Cursor" not in answer:
            break
        answer = owner.get(f"/service/{orders.name}/orders?limit=2&cursor={answer['X-Next-Cursor']}")
    assert numbers == [4, 3, 2, 1, 0]


def test_cluster_listings_page_by_host_and_id(api, fleet_hosts):
    staff = api("staff")
    for name in ("host-a", "host-b", "host-c"):
        assert create(staff, command=["sleep", "60"], host=name).status_code == 201
    whole = staff.get("/v1/container/cluster/?limit=1000&count=true").json()
    assert whole["failures"] == [] and whole["next"] is None and whole["count"] == len(whole["results"]) >= 3
    paged = walk(staff, "/v1/container/cluster/?limit=1")
    assert [(i["host"], i["id"]) for i in paged] == sorted((i["host"], i["id"]) for i in whole["results"])
    images = walk(staff, "/v1/image/?limit=1")
    assert {i["host"] for i in images} == {"host-a", "host-b", "host-c"}
    assert len(images) == len(staff.get("/v1/image/?limit=1000").json()["results"])


def test_the_schema_shows_the_cursor_the_limit_and_the_count(api):
    schema = api("staff").get("/v1/schema/?format=json").json()
    for path in ("/v1/container/", "/v1/host/", "/v1/container/cluster/", "/v1/image/", "/v1/audit/"):
        names = {p["name"] for p in schema["paths"][path]["get"]["parameters"]}
        assert {"cursor", "limit", "count"} <= names, path
    listed = schema["components"]["schemas"]["PaginatedContainerList"]["properties"]
    assert {"next", "results", "count"} <= set(listed)
