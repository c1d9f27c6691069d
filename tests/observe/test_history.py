"""Metrics history: samples of real containers collected by the reconciler from real satellites, rolled
up and pruned by its loop, read through /v1/{container,host,service}/<id>/metrics/history."""
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from boatload import loop
from boatload.management.commands.reconcile import Command as Reconcile
from boatload.models import Host
from genisys.models import Service
from observe import history
from observe.models import HistoryState, MetricPoint
from tests.conftest import IMAGE_NAME, IMAGE_TAG


@pytest.fixture
def every_collection(settings):
    """Each fleet collection writes its samples (the default writes one collection per interval)."""
    settings.FLEET_INTERVAL = 0
    settings.HISTORY = True


def sleeper(client, host="host-b"):
    made = client.post("/v1/container/", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "host": host,
                                          "command": ["sleep", "300"]}, format="json")
    assert made.status_code == 201, made.json()
    return made.json()["id"]


def point(t, *, container, host="host-x", service="", owner=None, rolled=0, **values):
    return MetricPoint(rolled=rolled, t=t, host=host, container=container, service=service, owner=owner,
                       **{"memory_bytes": 0, "cpu_percent": 0.0, **values})


def test_history_rows_appear_when_the_reconciler_collects_and_a_request_writes_none(api, fleet_hosts,
                                                                                   every_collection):
    owner = api("owner")
    container = sleeper(owner)
    assert not MetricPoint.objects.exists()  # the create wrote no history: only the loop does
    for _ in range(3):
        Reconcile().process_fleet()
    raw = list(MetricPoint.objects.filter(container=container, rolled=0).order_by("t", "id"))
    assert len(raw) == 3
    assert {(p.host, p.owner.username, p.service) for p in raw} == {("host-b", "owner", "")}
    assert all(p.memory_bytes > 0 and p.pids >= 1 for p in raw)

    answer = owner.get(f"/v1/container/{container}/metrics/history", {"since": "10m", "step": "1s"})
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["resolution"] == "raw" and body["step"] == 1
    assert sum(1 for _ in body["points"]) == len({p.t for p in raw})
    assert body["points"][-1]["memory_bytes"] == round(sum(p.memory_bytes for p in raw if p.t == raw[-1].t)
                                                       / sum(1 for p in raw if p.t == raw[-1].t))


def test_raw_samples_roll_up_into_buckets_and_are_pruned_after_their_retention(db, settings):
    settings.HISTORY_ROLLUP_STEP, settings.HISTORY_RAW_RETENTION, settings.HISTORY_RETENTION = 300, 3600, 86400
    base = 1_800_000_000  # a bucket boundary (a multiple of 300)
    MetricPoint.objects.bulk_create(
        [point(base + 15 * i, container="c1", memory_bytes=100 + i, cpu_seconds=float(i), cpu_percent=2.0 * i)
         for i in range(40)]  # 20 in the first bucket, 20 in the second
        + [point(base + 15 * i, container="c2", memory_bytes=7, cpu_seconds=1.0) for i in range(20)])
    now = datetime.fromtimestamp(base + 630, tz=UTC)  # both buckets complete, a third not

    assert history.roll_up(now) == 3
    rolled = {(p.container, p.t): p for p in MetricPoint.objects.filter(rolled=300)}
    assert sorted(rolled) == [("c1", base), ("c1", base + 300), ("c2", base)]
    first = rolled[("c1", base)]
    assert first.memory_bytes == round(sum(100 + i for i in range(20)) / 20)  # gauges: their mean
    assert first.cpu_seconds == 19.0  # counters: their last (largest) value
    assert first.cpu_percent == pytest.approx(sum(2.0 * i for i in range(20)) / 20)
    assert HistoryState.objects.get().rolled_until == base + 600
    assert history.roll_up(now) == 0  # nothing new is complete: no bucket twice

    later = datetime.fromtimestamp(base + 600 + 3600, tz=UTC)
    history.prune(later)  # past the raw retention: raw samples already rolled up go
    assert not MetricPoint.objects.filter(rolled=0, t__lt=base + 600).exists()
    assert MetricPoint.objects.filter(rolled=300).count() == 3
    history.prune(later + timedelta(days=1))  # past the roll-ups' retention
    assert not MetricPoint.objects.exists()


def test_raw_samples_are_kept_until_rolled_up_whatever_their_age(db, settings):
    settings.HISTORY_RAW_RETENTION = 60
    MetricPoint.objects.bulk_create([point(1_800_000_000, container="c1")])
    history.prune(datetime.fromtimestamp(1_800_000_000 + 3600, tz=UTC))
    assert MetricPoint.objects.count() == 1


def test_a_roll_up_claimed_by_another_reconciler_is_left_to_it(db, settings):
    MetricPoint.objects.bulk_create([point(1_800_000_000 + i, container="c1") for i in range(5)])
    HistoryState.objects.get_or_create(pk=1)
    assert loop.claim(HistoryState, 1)  # another reconciler holds it
    now = datetime.fromtimestamp(1_800_000_000 + 900, tz=UTC)
    assert history.roll_up(now) == 0
    assert not MetricPoint.objects.filter(rolled__gt=0).exists()
    loop.release(HistoryState, 1)
    assert history.roll_up(now) == 1


def test_a_roll_up_whose_cursor_moved_meanwhile_commits_nothing(db, settings, monkeypatch):
    """Two reconcilers that both started from the same cursor (a claim that ran out): the second commits
    no bucket the first rolled up."""
    MetricPoint.objects.bulk_create([point(1_800_000_000 + i, container="c1") for i in range(5)])
    now = datetime.fromtimestamp(1_800_000_000 + 900, tz=UTC)
    stale = HistoryState.objects.create(pk=1)  # what the second one read
    assert history.roll_up(now) == 1  # the first
    monkeypatch.setattr(history, "_state", lambda: stale)
    monkeypatch.setattr(loop, "claim", lambda *args, **kwargs: True)
    assert history.roll_up(now) == 0
    assert MetricPoint.objects.filter(rolled__gt=0).count() == 1


def test_one_collection_per_interval_writes_history_with_several_reconcilers(api, fleet_hosts, settings):
    settings.FLEET_INTERVAL, settings.HISTORY = 60, True
    container = sleeper(api("owner"))
    Reconcile().process_fleet()
    Reconcile().process_fleet()  # a second reconciler, within the same interval
    assert MetricPoint.objects.filter(container=container).count() == 1


def test_history_can_be_switched_off(api, fleet_hosts, settings):
    settings.FLEET_INTERVAL, settings.HISTORY = 0, False
    sleeper(api("owner"))
    assert Reconcile().process_fleet() >= 1
    assert not MetricPoint.objects.exists()


def test_a_user_reads_only_their_own_history(api, users, fleet_hosts, every_collection):
    mine, theirs = sleeper(api("owner")), sleeper(api("other"))
    Reconcile().process_fleet()
    assert api("owner").get(f"/v1/container/{mine}/metrics/history").status_code == 200
    refused = api("owner").get(f"/v1/container/{theirs}/metrics/history")
    assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    assert api("staff").get(f"/v1/container/{theirs}/metrics/history").json()["points"]
    assert api().get(f"/v1/container/{mine}/metrics/history").status_code == 401

    own = api("owner").get("/v1/host/host-b/metrics/history", {"step": "1h", "since": "1h"}).json()["points"]
    every = api("staff").get("/v1/host/host-b/metrics/history", {"step": "1h", "since": "1h"}).json()["points"]
    assert [p["containers"] for p in own] == [1] and [p["containers"] for p in every] == [2]
    assert api("owner").get("/v1/host/no-such-host/metrics/history").status_code == 404
    malformed = api("owner").get("/v1/container/000000000000000000000000000000000000/metrics/history")
    assert malformed.status_code == 404 and malformed.json()["error"]["code"] == "not_found"  # schemathesis found a 500


def test_host_and_service_totals_sum_their_containers_at_each_instant(api, users, db, settings):
    settings.HISTORY_ROLLUP_STEP = 300
    now = int(timezone.now().timestamp())
    t1, t2 = now - 60, now - 30
    Service.objects.create(name="web", image="x", owner=users["owner"])
    Service.objects.create(name="db", image="x", owner=users["other"])
    MetricPoint.objects.bulk_create([
        point(t1, container="bl-web-0", service="web", owner=users["owner"], memory_bytes=10, cpu_percent=1.0),
        point(t1, container="bl-web-1", service="web", owner=users["owner"], memory_bytes=20, cpu_percent=2.0),
        point(t2, container="bl-web-0", service="web", owner=users["owner"], memory_bytes=30, cpu_percent=3.0),
        point(t2, container="bl-web-1", service="web", owner=users["owner"], memory_bytes=40, cpu_percent=4.0),
        point(t1, container="bl-db-0", service="db", owner=users["other"], memory_bytes=1000)])
    by_second = api("owner").get("/v1/service/web/metrics/history", {"since": "5m", "step": "1s"}).json()
    assert [(p["t"], p["memory_bytes"], p["cpu_percent"], p["containers"]) for p in by_second["points"]] == [
        (t1, 30, 3.0, 2), (t2, 70, 7.0, 2)]
    fine = api("owner").get("/v1/service/web/metrics/history", {"since": "5m", "step": "4m"}).json()
    assert fine["resolution"] == "raw" and fine["step"] == 240  # finer than a roll-up: raw samples
    whole = api("owner").get("/v1/service/web/metrics/history", {"since": "5m", "step": "7m"}).json()
    assert whole["resolution"] == "rollup" and whole["step"] == 600  # whole roll-up buckets
    assert sum(p["memory_bytes"] for p in whole["points"]) in (50, 100)  # one bucket (mean of 30 and 70), or two
    assert api("owner").get("/v1/service/db/metrics/history").status_code == 404
    assert api("other").get("/v1/service/db/metrics/history").json()["points"][0]["memory_bytes"] == 1000
    Host.objects.create(name="host-x", satellite_url="http://127.0.0.1:9", key_id="hk_history", secret="s")
    staff_host = api("staff").get("/v1/host/host-x/metrics/history", {"since": "5m", "step": "1s"}).json()
    assert [p["memory_bytes"] for p in staff_host["points"]] == [1030, 70]


@pytest.mark.parametrize("query, field", [
    ({"since": "yesterday"}, "since"), ({"since": "2026-01-01T00:00:00"}, "since"), ({"step": "0"}, "step"),
    ({"step": "fast"}, "step"), ({"since": "23h", "step": "1s"}, "step")])
def test_bad_history_queries_answer_400_naming_the_field(api, users, db, query, field):
    from boatload.models import Container

    row = Container.objects.create(owner=users["owner"], image_name=IMAGE_NAME)
    answer = api("owner").get(f"/v1/container/{row.uuid}/metrics/history", query)
    assert answer.status_code == 400, answer.json()
    assert answer.json()["error"]["detail"]["field"] == field


def test_a_deleted_containers_history_is_still_served(api, users, db):
    from boatload.models import Container

    row = Container.objects.create(owner=users["owner"], image_name=IMAGE_NAME, state=Container.State.DELETED)
    MetricPoint.objects.bulk_create([point(int(timezone.now().timestamp()) - 10, container=str(row.uuid),
                                           owner=users["owner"], memory_bytes=5)])
    assert api("owner").get(f"/v1/container/{row.uuid}/metrics/history").json()["points"][0]["memory_bytes"] == 5


def test_history_operations_are_in_the_schema_with_their_statuses(api):
    paths = api("staff").get("/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    for path in ("/v1/container/{uuid}/metrics/history/", "/v1/host/{name}/metrics/history/",
                 "/v1/service/{name}/metrics/history/"):
        assert {"200", "400", "401", "404"} <= set(paths[path]["get"]["responses"]), path
