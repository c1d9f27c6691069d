"""A container listing answers each row exactly as the container's own answer does, though a page is read as
values and represented without a serializer per row (ContainerSerializer.represent)."""
import pytest
from django.utils import timezone

from boatload.api.serializers import ContainerSerializer
from boatload.models import Container, Host

pytestmark = pytest.mark.django_db


@pytest.fixture
def rows(users):
    host = Host.objects.create(name="page-host", satellite_url="http://127.0.0.1:9", key_id="page",
                               secret="page-secret", state=Host.State.ACTIVE, last_seen=timezone.now(),
                               tls_certificate="x" * 2000)
    made = [
        Container.objects.create(owner=users["owner"], host=host, image_name="img", name="bl-a", docker_id="d" * 64,
                                 state=Container.State.RUNNING, ports=[{"port": 80, "protocol": "TCP"}],
                                 endpoints=[{"address": "127.0.0.1", "port": 32768, "scope": "internal"}],
                                 spec={"environment": {"A": "1"}, "labels": {"k": "v"}}, script="echo hi" * 1000,
                                 script_name="run.sh", service="web"),
        Container.objects.create(owner=users["owner"], host=None, image_name="img", image_tag="2", name="bl-b",
                                 state=Container.State.FAILED, last_error="no host", health=Container.Health.UNKNOWN),
        Container.objects.create(owner=users["owner"], host=host, image_name="img", name="bl-c",
                                 state=Container.State.EXITED, exit_code=0, spec={}),
        Container.objects.create(owner=users["other"], host=host, image_name="img", name="bl-d",
                                 state=Container.State.EXITED, exit_code=137),
    ]
    return made


def test_represent_gives_what_the_serializer_gives_for_every_field(rows):
    columns = [column for _, column, _ in ContainerSerializer.page_plan()]
    values = list(Container.objects.order_by("-created", "-id").values("id", *columns))
    models = list(Container.objects.select_related("owner", "host").order_by("-created", "-id"))
    assert ContainerSerializer.represent(values) == ContainerSerializer(models, many=True).data
    assert {field for field, _, _ in ContainerSerializer.page_plan()} == set(ContainerSerializer.Meta.fields)


def test_the_list_answers_each_row_as_its_own_answer_does_page_after_page(api, rows):
    for name, visible in (("owner", 3), ("staff", 4)):
        client, listed, url = api(name), [], "/v1/container/?limit=2"
        while url:
            page = client.get(url).json()
            listed += page["results"]
            url = page["next"]
        assert len(listed) == visible
        assert listed == [client.get(f"/v1/container/{row['id']}").json() for row in listed]
    mine = api("owner").get("/v1/container/?state=failed").json()["results"]
    assert [row["name"] for row in mine] == ["bl-b"] and mine[0]["host"] is None
    assert "script" not in mine[0]
