"""/metrics: read with prometheus_client's own text parser, against real satellites and a real engine,
and under gunicorn with two workers (multiprocess mode)."""
import subprocess

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from boatload.management.commands.reconcile import Command as Reconcile
from tests.conftest import IMAGE_NAME, IMAGE_TAG
from tests.live import ApiServer

TOKEN = "metrics-token-for-tests"


def scrape(_client=None):
    """One scrape as Prometheus does it: no user, the metrics token."""
    from django.test import Client

    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    return series_of(response.content.decode())


def series_of(text):
    """{(name, frozenset(labels)): value} of every sample on the page."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(series, name, **labels):
    wanted = set(labels.items())
    return sum(v for (n, got), v in series.items() if n == name and wanted <= got)


def labelled(series, name, **labels):
    wanted = set(labels.items())
    return [dict(got) for (n, got), _ in series.items() if n == name and wanted <= got]


@pytest.fixture
def metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOW = []


def test_named_series_move_when_containers_are_made_and_stopped(api, fleet_hosts, metrics_on):
    owner = api("owner")
    made = owner.post("/v1/container/", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "host": "host-b",
                                         "command": ["sleep", "300"]}, format="json")
    assert made.status_code == 201, made.json()
    container = made.json()["id"]
    before = scrape(owner)
    assert value(before, "boatload_containers", host="host-b", state="running") == 1
    assert value(before, "boatload_hosts", state="active") == 3
    assert value(before, "boatload_remote_request_duration_seconds_count", kind="satellite", remote="host-b",
                 operation="POST /containers") >= 1
    assert not labelled(before, "boatload_container_memory_usage_bytes", container=container)  # not collected yet

    assert Reconcile().process_fleet() >= 1  # one GET /stats per host, in the background loop
    collected = scrape(owner)
    [labels] = labelled(collected, "boatload_container_memory_usage_bytes", container=container)
    assert labels == {"host": "host-b", "container": container, "service": "", "owner": "owner"}
    assert value(collected, "boatload_container_memory_usage_bytes", container=container) > 0
    assert value(collected, "boatload_container_pids", container=container) >= 1
    assert labelled(collected, "boatload_container_cpu_seconds_total", container=container)
    assert value(collected, "boatload_reconcile_passes_total", loop="fleet") == 1

    assert owner.post(f"/v1/container/{container}/stop?timeout=0").status_code == 200
    Reconcile().process_fleet()
    stopped = scrape(owner)
    assert value(stopped, "boatload_containers", host="host-b", state="running") == 0
    assert value(stopped, "boatload_containers", host="host-b", state="exited") == 1
    assert not labelled(stopped, "boatload_container_memory_usage_bytes", container=container)
    assert value(stopped, "boatload_reconcile_passes_total", loop="fleet") == 2
    assert value(stopped, "boatload_http_requests_total", view="container-stop", status="200") >= 1


def test_a_failing_satellite_call_is_counted_by_host_and_operation(api, fleet, fleet_hosts, metrics_on):
    errors = ("boatload_remote_request_errors_total",
              {"kind": "satellite", "remote": "host-c", "operation": "POST /containers"})
    before = value(scrape(api("owner")), errors[0], **errors[1])
    fleet["host-c"].satellite.stop()
    answer = api("owner").post("/v1/container/", {"image_name": IMAGE_NAME, "host": "host-c"}, format="json")
    assert answer.status_code == 502
    after = scrape(api("owner"))
    assert value(after, errors[0], **errors[1]) == before + 1


def test_reconciler_passes_are_counted(db, fleet_hosts, api, metrics_on):
    Reconcile().counted_pass()  # what the loop runs each pass
    Reconcile().counted_pass()  # what the loop runs each pass
    series = scrape(api())
    assert value(series, "boatload_reconcile_passes_total", loop="reconcile") == 2
    assert value(series, "boatload_reconcile_pass_failures_total", loop="reconcile") == 0
    assert value(series, "boatload_reconcile_pass_duration_seconds_count", loop="reconcile") == 2


def test_metrics_are_refused_until_configured(api, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOW = "", []
    answer = api("staff").get("/metrics")  # not even staff: it is not an API operation
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "metrics_not_configured"


def test_metrics_need_the_token_and_an_allowed_address(api, settings):
    import ipaddress

    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOW = [ipaddress.ip_network("10.0.0.0/8")]
    client = api()
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 403  # 127.0.0.1
    settings.METRICS_ALLOW = [ipaddress.ip_network("127.0.0.0/8")]
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer not-it")
    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200  # the allow-list alone


def test_metrics_are_not_an_operation_of_the_schema(api):
    paths = api("staff").get("/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    assert not [path for path in paths if "metrics" in path and "container" not in path
                and not path.endswith("/metrics/history/")]  # the history is a v1 operation of hosts, services


def test_a_bad_allow_list_stops_the_start(tmp_path):
    import os
    import sys

    from tests.conftest import ROOT

    run = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "BOATLOAD_METRICS_ALLOW": "127.0.0.0/8,not-a-network"})
    assert run.returncode != 0 and "BOATLOAD_METRICS_ALLOW" in run.stderr


@pytest.fixture
def gunicorn_api(django_db_setup, django_db_blocker, tmp_path):
    from django.conf import settings

    server = ApiServer(tmp_path / "api.log", settings.DATABASES["default"]["NAME"])
    server.env.update({"BOATLOAD_METRICS_TOKEN": TOKEN, "BOATLOAD_WORKERS": "2"})
    server.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with django_db_blocker.unblock():
        server.start()
    yield server
    server.stop()


def test_the_workers_of_gunicorn_are_counted_together(gunicorn_api):
    """Each request opens its own connection, so the two workers share them; every scrape, whichever
    worker answers it, counts all of them."""
    def unauthenticated_lists():  # a view nothing else calls here, not even the start-up health checks
        page = requests.get(f"{gunicorn_api.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}",
                                                                     "Connection": "close"}, timeout=10)
        assert page.status_code == 200, page.text
        return value(series_of(page.text), "boatload_http_requests_total", view="container-list", status="401")

    assert unauthenticated_lists() == 0
    for _ in range(40):
        answer = requests.get(f"{gunicorn_api.url}/v1/container/", headers={"Connection": "close"}, timeout=10)
        assert answer.status_code == 401
    assert [unauthenticated_lists() for _ in range(6)] == [40] * 6


def test_a_scrape_reads_the_same_rows_whatever_the_number_of_containers(db, fleet_hosts, api, metrics_on):
    """The per-container series are rendered by the collection that wrote them, not on each scrape: a scrape
    of 300 collected containers fetches no more rows from Postgres than one of 3, yet serves all 300."""
    from django.db import connection
    from django.utils import timezone

    from observe import metrics
    from observe.models import ContainerSample

    def scrape_counting_rows(containers):
        metrics.store_samples([ContainerSample(host="host-a", docker_id=f"{n:064x}", container=f"c{n}", owner="owner",
                                               memory_bytes=n + 1, pids=1, collected=timezone.now())
                               for n in range(containers)], now=timezone.now())
        fetched = []

        def count_rows(execute, sql, params, many, context):
            result = execute(sql, params, many, context)
            if context["cursor"].description is not None:  # a SELECT: how many rows it answered
                fetched.append(context["cursor"].rowcount)
            return result

        with connection.execute_wrapper(count_rows):
            series = scrape()
        return sum(fetched), series

    few, few_series = scrape_counting_rows(3)
    many, many_series = scrape_counting_rows(300)
    assert len(labelled(few_series, "boatload_container_memory_usage_bytes")) == 3
    assert len(labelled(many_series, "boatload_container_memory_usage_bytes")) == 300
    assert value(many_series, "boatload_container_memory_usage_bytes", container="c299") == 300
    assert many == few


def test_deployments_are_counted_by_kind_and_state(db, api, metrics_on):
    from django.utils import timezone

    from genisys.models import Deployment, Service

    assert value(scrape(), "boatload_deployments", kind="definition", state="running") == 0
    service = Service.objects.create(name="web", image="boatload-test/busybox:latest")
    made = Deployment.objects.create(service=service, kind="definition", to_version=1, target_version=1, policy={},
                                     progressed=timezone.now())
    series = scrape()
    assert value(series, "boatload_deployments", kind="definition", state="running") == 1
    assert value(series, "boatload_deployments", kind="definition", state="succeeded") == 0
    Deployment.objects.filter(pk=made.pk).update(state=Deployment.State.ROLLED_BACK, finished=timezone.now())
    series = scrape()
    assert value(series, "boatload_deployments", kind="definition", state="running") == 0
    assert value(series, "boatload_deployments", kind="definition", state="rolled_back") == 1
