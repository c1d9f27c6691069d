"""Logs that outlive their container: real containers on real satellites, their output kept in Postgres
large objects when deleted or exited, served by GET /v1/container/<id>/stdout once they are gone."""
import pytest
from django.db import connection

from boatload.management.commands.reconcile import Command as Reconcile
from boatload.models import Container
from common import ring as ring_buffer
from observe import logs
from observe.models import LogArchive
from tests.conftest import IMAGE_NAME, IMAGE_TAG, wait_until

CHATTY = "i=1; while [ $i -le 300 ]; do echo out $i; echo err $i >&2; i=$((i+1)); done; sleep 300"


def make(client, command, host="host-b"):
    made = client.post("/v1/container/", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "host": host,
                                          "command": ["sh", "-c", command]}, format="json")
    assert made.status_code == 201, made.json()
    return made.json()["id"]


def live_output(client, container, *wanted):
    """The whole output (stdout and stderr) as the satellite serves it now, once all of `wanted` is in it."""
    def read():
        answer = client.get(f"/v1/container/{container}/stdout", {"stderr": "true"})
        assert answer.status_code == 200
        return b"".join(answer.streaming_content)

    wait_until(lambda: all(part in read() for part in wanted), message=f"{wanted!r} in the output")
    return read()


def large_object_exists(oid):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_largeobject_metadata WHERE oid = %s", [oid])
        return cursor.fetchone()[0] == 1


def test_a_deleted_containers_output_is_still_served_and_its_bytes_match(api, fleet, fleet_hosts):
    owner = api("owner")
    container = make(owner, CHATTY)
    before = live_output(owner, container, b"err 300\n")
    assert owner.delete(f"/v1/container/{container}/").status_code == 204
    assert not fleet["host-b"].docker.containers.list(all=True, filters={"label": f"boatload.container={container}"})

    answer = owner.get(f"/v1/container/{container}/stdout")
    assert answer.status_code == 200
    assert answer["X-BoatLoad-Archived"] == "deleted" and answer["X-BoatLoad-Archive-Truncated"] == "false"
    assert b"".join(answer.streaming_content) == before
    assert int(answer["Content-Length"]) == len(before)
    assert api("other").get(f"/v1/container/{container}/stdout").status_code == 404  # not theirs


def test_only_the_last_log_keep_bytes_are_kept(api, fleet_hosts, settings):
    settings.LOG_KEEP = 1000  # smaller than one chunk of the stream: the ring wraps within a chunk
    owner = api("owner")
    container = make(owner, CHATTY)
    before = live_output(owner, container, b"err 300\n")
    assert len(before) > 3000
    assert owner.delete(f"/v1/container/{container}/").status_code == 204
    answer = owner.get(f"/v1/container/{container}/stdout")
    assert answer["X-BoatLoad-Archive-Truncated"] == "true"
    assert b"".join(answer.streaming_content) == before[-1000:]


@pytest.mark.parametrize("keep", [7, 4096, 10**6])
def test_the_ring_keeps_the_end_of_any_chunking(tmp_path, keep):
    data = bytes(range(256)) * 40
    chunks = [data[:1], data[1:5001], data[5001:5004], data[5004:]]
    with open(tmp_path / "ring", "w+b") as ring:
        total, start = ring_buffer.keep_last(iter(chunks), keep, ring)
        assert total == len(data)
        assert b"".join(ring_buffer.pieces(ring, total, start, keep)) == data[-keep:]


def test_an_exited_container_that_vanishes_keeps_its_output(api, fleet, fleet_hosts):
    owner = api("owner")
    container = make(owner, "echo bye; echo oops >&2")
    before = live_output(owner, container, b"oops\n", b"bye\n")
    host = fleet_hosts["host-b"]
    wait_until(lambda: Reconcile().process_one_host(host)
               and Container.objects.get(uuid=container).state == Container.State.EXITED, message="exited")
    assert LogArchive.objects.get(container__uuid=container).reason == "exited"
    fleet["host-b"].docker.containers.get(Container.objects.get(uuid=container).docker_id).remove(force=True)
    Reconcile().process_one_host(host)
    assert Container.objects.get(uuid=container).state == Container.State.LOST

    answer = owner.get(f"/v1/container/{container}/stdout")
    assert answer.status_code == 200 and answer["X-BoatLoad-Archived"] == "exited"
    assert b"".join(answer.streaming_content) == before
    assert sorted(before.splitlines()) == [b"bye", b"oops"]  # both streams (in the order the engine read them)


def test_archives_are_pruned_after_their_retention_with_their_large_objects(api, fleet_hosts, settings):
    owner = api("owner")
    container = make(owner, "echo kept; sleep 300")
    live_output(owner, container, b"kept\n")
    assert owner.delete(f"/v1/container/{container}/").status_code == 204
    oid = LogArchive.objects.get(container__uuid=container).oid
    assert large_object_exists(oid)
    settings.LOG_RETENTION = 3600
    assert logs.prune() == 0
    settings.LOG_RETENTION = 0
    assert logs.prune() == 1
    assert not large_object_exists(oid) and not LogArchive.objects.exists()
    answer = owner.get(f"/v1/container/{container}/stdout")
    assert answer.status_code == 409  # deleted, and nothing kept any more


def test_a_container_row_that_goes_takes_its_large_object(api, users, fleet_hosts):
    owner = api("owner")
    container = make(owner, "echo kept; sleep 300")
    live_output(owner, container, b"kept\n")
    assert owner.delete(f"/v1/container/{container}/").status_code == 204
    oid = LogArchive.objects.get(container__uuid=container).oid
    users["owner"].delete()  # cascades to the row and its archive
    assert not large_object_exists(oid)


def test_a_running_container_that_vanishes_keeps_its_output_up_to_the_last_snapshot(api, fleet, fleet_hosts,
                                                                                      settings):
    settings.LOG_SNAPSHOT_INTERVAL = 0.001  # every pass, once it has run that long
    owner = api("owner")
    container = make(owner, CHATTY)
    before = live_output(owner, container, b"err 300\n")
    host = fleet_hosts["host-b"]
    Reconcile().process_one_host(host)
    assert LogArchive.objects.get(container__uuid=container).reason == "snapshot"
    row = Container.objects.get(uuid=container)
    assert row.state == Container.State.RUNNING
    assert owner.get(f"/v1/container/{container}/stdout").get("X-BoatLoad-Archived") is None  # still live
    fleet["host-b"].docker.containers.get(row.docker_id).remove(force=True)  # gone while it ran
    Reconcile().process_one_host(host)
    assert Container.objects.get(uuid=container).state == Container.State.LOST

    answer = owner.get(f"/v1/container/{container}/stdout")
    assert answer.status_code == 200 and answer["X-BoatLoad-Archived"] == "lost"
    assert b"".join(answer.streaming_content) == before


def test_running_containers_are_not_snapshot_before_they_ran_the_interval(api, fleet_hosts, settings):
    settings.LOG_SNAPSHOT_INTERVAL = 3600
    owner = api("owner")
    container = make(owner, "echo kept; sleep 300")
    live_output(owner, container, b"kept\n")
    Reconcile().process_one_host(fleet_hosts["host-b"])
    assert not LogArchive.objects.filter(container__uuid=container).exists()


def test_unregistering_a_host_keeps_its_containers_output(api, fleet, fleet_hosts):
    owner = api("owner")
    container = make(owner, CHATTY)
    before = live_output(owner, container, b"err 300\n")
    assert api("staff").post("/v1/host/host-b/unregister/").status_code == 204
    row = Container.objects.get(uuid=container)
    assert row.state == Container.State.LOST and row.host is None

    answer = owner.get(f"/v1/container/{container}/stdout")
    assert answer.status_code == 200 and answer["X-BoatLoad-Archived"] == "unregistered"
    assert b"".join(answer.streaming_content) == before


def test_a_snapshot_never_replaces_output_kept_as_the_container_went(api, fleet_hosts):
    """A reconciler's snapshot, read before a delete or a loss, may land after it: it is dropped."""
    owner = api("owner")
    container = make(owner, "echo kept; sleep 300")
    live_output(owner, container, b"kept\n")
    row = Container.objects.select_related("host").get(uuid=container)
    final = logs.archive(row=row, reason="lost")  # as the reconciler keeps it when the container vanished
    again = logs.archive(row=row, reason="snapshot")
    assert again.pk == final.pk and again.oid == final.oid
    assert LogArchive.objects.get(container=row).reason == "lost" and large_object_exists(final.oid)
    assert logs.archive(row=row, reason="exited").oid != final.oid  # any other archive replaces it
    assert not large_object_exists(final.oid)
