"""The container API end to end: API (in-process) → real satellites over HTTP → real Docker engines."""
import io
import tarfile
import time
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from boatload.models import Container, Host, Template
from tests.api.helpers import b64, body, create
from tests.conftest import IMAGE_NAME, IMAGE_TAG, RUN_LABEL, long_ago, wait_until
from tests.satellite.helpers import make_zip

pytestmark = pytest.mark.slow

SCRIPT = "echo hello $1; cat /input/data.txt; mkdir -p /out; echo result > /out/r.txt; echo two > /out/z.txt"


def wait_exited(client, container_id):
    def exited():
        state = client.get(f"/v1/container/{container_id}/state").json()
        return state if state["docker_state"].get("Status") == "exited" else None
    return wait_until(exited, timeout=30, message="the container to exit")


def test_the_boatload_flow_with_a_script_and_a_data_zip(api, fleet, fleet_hosts, file_server):
    owner = api("owner")
    url = file_server.add(f"/{uuid.uuid4().hex}.zip", make_zip({"data.txt": b"from the zip\n"}))
    answer = create(owner, script=b64(SCRIPT), scriptname="run.sh", container_args="world", dataurl=url,
                    datapath="/input", host="host-a")
    assert answer.status_code == 201, answer.json()
    container = answer.json()
    cid = container["id"]
    assert container["state"] == "running" and container["host"] == "host-a" and container["docker_id"]
    state = wait_exited(owner, cid)
    assert state["platform_state"] == "exited" and state["docker_state"]["ExitCode"] == 0
    assert body(owner.get(f"/v1/container/{cid}/stdout")) == b"hello world\nfrom the zip\n"
    assert owner.get(f"/v1/container/{cid}/script").json() == {"scriptname": "run.sh", "script": SCRIPT}
    changes = {c["Path"] for c in owner.get(f"/v1/container/{cid}/changes").json()}
    assert {"/out/r.txt", "/input/data.txt"} <= changes
    files = owner.get(f"/v1/container/{cid}/file").json()
    assert [f["path"] for f in files] == ["/boatload/run.sh", "/input/data.txt", "/out/r.txt", "/out/z.txt"]
    assert body(owner.get(f"/v1/container/{cid}/file/out/r.txt")) == b"result\n"
    assert body(owner.get(f"/v1/container/{cid}/filebynum/3")) == b"two\n"
    archive = owner.get(f"/v1/container/{cid}/archive")
    assert archive.streaming and archive["Content-Type"] == "application/x-tar"
    with tarfile.open(fileobj=io.BytesIO(body(archive))) as tar:
        assert tar.extractfile("out/r.txt").read() == b"result\n"
        assert tar.extractfile("input/data.txt").read() == b"from the zip\n"
    with tarfile.open(fileobj=io.BytesIO(body(owner.get(f"/v1/container/{cid}/archive?compression=gzip")))) as tar:
        assert "out/z.txt" in tar.getnames()
    assert owner.get(f"/v1/container/{cid}/metrics").json() == {"running": False}
    assert owner.get(f"/v1/container/{cid}/inspect").json()["Id"] == container["docker_id"]
    assert owner.delete(f"/v1/container/{cid}/").status_code == 204
    assert Container.objects.get(uuid=cid).state == "deleted"
    assert fleet["host-a"].docker.containers.list(all=True, filters={"id": container["docker_id"]}) == []


def test_metrics_of_a_running_container(api, fleet_hosts):
    owner = api("owner")
    cid = create(owner, command=["sleep", "60"], host="host-b").json()["id"]
    metrics = owner.get(f"/v1/container/{cid}/metrics").json()
    assert metrics["running"] is True and metrics["memory_usage"] > 0 and metrics["pids"] >= 1


def test_multipart_upload_of_the_script(api, fleet_hosts):
    owner = api("owner")
    script = io.BytesIO(b"#!/bin/sh\necho uploaded $1 $2\n")
    script.name = "upload.sh"
    answer = owner.post("/v1/container/", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "script": script,
                                           "container_args": "a b", "env": '{"X": "1"}'}, format="multipart")
    assert answer.status_code == 201, answer.json()
    cid = answer.json()["id"]
    wait_exited(owner, cid)
    assert body(owner.get(f"/v1/container/{cid}/stdout")) == b"uploaded a b\n"
    assert owner.get(f"/v1/container/{cid}/script").json()["scriptname"] == "upload.sh"


def test_a_script_upload_over_the_limit_is_413(api, fleet_hosts):
    script = io.BytesIO(b"#" * 5000)
    script.name = "big.sh"
    answer = api("owner").post("/v1/container/", {"image_name": IMAGE_NAME, "script": script}, format="multipart")
    assert answer.status_code == 413
    assert not Container.objects.exists()


def test_stdout_streams_stderr_and_tail(api, fleet_hosts):
    owner = api("owner")
    cid = create(owner, script=b64("echo one; echo two; sleep 0.5; echo oops >&2")).json()["id"]
    wait_exited(owner, cid)
    # Docker's tail counts lines of both streams, then keeps the asked ones: the last two are two, oops.
    assert body(owner.get(f"/v1/container/{cid}/stdout?tail=2")) == b"two\n"
    both = body(owner.get(f"/v1/container/{cid}/stdout?stderr=true")).decode().splitlines()
    assert sorted(both) == ["one", "oops", "two"]
    assert owner.get(f"/v1/container/{cid}/stdout?tail=-3").status_code == 400


def test_instances_spread_evenly_over_three_hosts(api, fleet_hosts):
    answer = create(api("owner"), command=["sleep", "60"], instances=6)
    assert answer.status_code == 201, answer.json()
    hosts = sorted(result["host"] for result in answer.json()["results"])
    assert hosts == ["host-a", "host-a", "host-b", "host-b", "host-c", "host-c"]
    assert Container.objects.filter(state="running").count() == 6


def test_a_host_that_is_down_fails_its_instances_only(api, fleet, fleet_hosts):
    fleet["host-c"].satellite.stop()
    answer = create(api("owner"), command=["sleep", "60"], instances=6)
    assert answer.status_code == 207
    results = answer.json()["results"]
    failed = [r for r in results if "error" in r]
    assert {r["host"] for r in failed} == {"host-c"} and len(failed) == 2
    assert all(r["error"]["code"] == "satellite_unavailable" for r in failed)
    assert answer.json()["created"] == 4
    assert Container.objects.filter(state="failed", host__name="host-c").count() == 2
    images = api("owner").get("/v1/image/").json()
    assert [f["host"] for f in images["failures"]] == ["host-c"]
    assert {item["host"] for item in images["results"]} == {"host-a", "host-b"}


def test_placement_picks_the_least_loaded_host_within_labels(api, fleet_hosts):
    owner = api("owner")
    first = create(owner, command=["sleep", "60"], host_labels={"group": "g1"}).json()
    second = create(owner, command=["sleep", "60"], host_labels={"group": "g1"}).json()
    assert {first["host"], second["host"]} == {"host-a", "host-b"}
    assert create(owner, command=["true"], host_labels={"group": "none"}).status_code == 503


def test_no_active_host_answers_503(api, fleet_hosts):
    Host.objects.update(state="draining")
    answer = create(api("owner"), command=["true"])
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "no_healthy_host"
    assert not Container.objects.exists()


def test_a_failure_on_the_host_marks_the_row_failed_and_leaves_no_container(api, fleet, fleet_hosts):
    answer = create(api("owner"), command=["/not/there"], host="host-b")
    assert answer.status_code == 400
    row = Container.objects.get(uuid=answer.json()["error"]["detail"]["container"])
    assert (row.state == "failed" and "start" in row.last_error) or "executable" in row.last_error
    labelled = fleet["host-b"].docker.containers.list(all=True, filters={"label": f"boatload.container={row.uuid}"})
    assert labelled == []


def test_bad_input_names_the_field_and_creates_nothing(api, fleet_hosts):
    owner = api("owner")
    for fields, field in [({"ports": [{"port": 0}]}, "ports[0].port"), ({"restart": "sometimes"}, "restart"),
                          ({"instances": 0}, "instances"), ({"host": "nope"}, "host"),
                          ({"template": "nope"}, "template"), ({"image_name": ""}, "image_name")]:
        answer = create(owner, **fields)
        assert answer.status_code == 400, fields
        assert answer.json()["error"]["detail"]["field"] == field
    assert not Container.objects.exists()


def test_templates_are_used_and_overridden(api, fleet_hosts):
    staff, owner = api("staff"), api("owner")
    template = {"name": "greeter", "description": "says hello", "body": {
        "Image": f"{IMAGE_NAME}:{IMAGE_TAG}", "Cmd": ["sh", "-c", "echo $GREETING"], "Env": ["GREETING=hi"],
        "HostConfig": {"Memory": 64 * 1024 * 1024}}}
    assert staff.post("/v1/template/", template, format="json").status_code == 201
    assert owner.post("/v1/template/", {**template, "name": "x"}, format="json").status_code == 403
    bad = staff.post("/v1/template/", {**template, "name": "bad", "body": {"Image": "x", "Volumes": {}}}, format="json")
    assert bad.status_code == 400 and "Volumes" in bad.json()["error"]["message"]
    plain = owner.post("/v1/container/", {"template": "greeter"}, format="json").json()
    overridden = owner.post("/v1/container/", {"template": "greeter", "env": {"GREETING": "hello"}},
                            format="json").json()
    for container, expected in ((plain, b"hi\n"), (overridden, b"hello\n")):
        wait_exited(owner, container["id"])
        assert body(owner.get(f"/v1/container/{container['id']}/stdout")) == expected
    assert plain["spec"]["memory"] == 64 * 1024 * 1024
    assert owner.get("/v1/template/greeter/").json()["description"] == "says hello"
    assert staff.delete("/v1/template/greeter/").status_code == 204


def test_load_templates_command_reads_the_templates_folder(db):
    from django.core.management import call_command

    call_command("loadtemplates")
    assert Template.objects.filter(name="busybox-hello").exists()


def test_raw_create_is_staff_only(api, fleet_hosts):
    raw = {"body": {"Image": f"{IMAGE_NAME}:{IMAGE_TAG}", "Cmd": ["echo", "raw"]}, "host": "host-a"}
    assert api("owner").post("/v1/container/raw/", raw, format="json").status_code == 403
    answer = api("staff").post("/v1/container/raw/", raw, format="json")
    assert answer.status_code == 201 and answer.json()["state"] == "running"
    refused = api("staff").post("/v1/container/raw/", {**raw, "body": {**raw["body"], "HostConfig": {
        "PidMode": "host"}}}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["detail"]["field"] == "body.HostConfig.PidMode"
    rows = Container.objects.count()
    unknown = api("staff").post("/v1/container/raw/", {**raw, "body": {**raw["body"], "hostconfig": {
        "Sysctls": 5}}}, format="json")  # no satellite takes this: refused before any row is written
    assert unknown.status_code == 400 and unknown.json()["error"]["detail"]["field"].startswith("body.HostConfig")
    assert Container.objects.count() == rows


def test_privileged_and_host_volumes_are_staff_only(api, fleet_hosts):
    owner = api("owner")
    assert create(owner, command=["true"], privileged=True).status_code == 403
    volume = [{"type": "host", "source": "/etc", "target": "/x"}]
    assert create(owner, command=["true"], volumes=volume).status_code == 403
    assert not Container.objects.exists()
    refused = create(api("staff"), command=["true"], volumes=volume, host="host-a")
    assert refused.status_code == 400  # staff, but /etc is not under the satellite's allow-list
    assert Container.objects.get().state == "failed"


def test_endpoints_and_connections_between_hosts(api, fleet_hosts):
    owner = api("owner")
    ports = [{"port": 80, "protocol": "TCP", "scope": "cloud"}]
    web_a = create(owner, command=["sleep", "60"], ports=ports, host="host-a").json()
    client_a = create(owner, command=["sleep", "60"], host="host-a").json()
    client_b = create(owner, command=["sleep", "60"], host="host-b").json()
    client_c = create(owner, command=["sleep", "60"], host="host-c").json()
    endpoints = owner.get(f"/v1/container/{web_a['id']}/endpoints").json()
    assert [(e["scope"], e["address"]) for e in endpoints] == [
        ("host", "127.0.0.1"), ("internal", "127.0.0.21"), ("cloud", "127.0.0.21")]
    assert all(e["containerPort"] == 80 and e["portScope"] == "cloud" and e["protocol"] == "TCP" for e in endpoints)

    def connect(source, **query):
        return owner.get(f"/v1/container/{source['id']}/connection", {"to": web_a["id"], "port": 80, **query})

    assert connect(client_a).json()["scope"] == "host"
    assert connect(client_b).json()["scope"] == "internal"
    assert connect(client_c).json()["scope"] == "cloud"
    assert connect(client_a, port=81).status_code == 404
    assert connect(client_a, protocol="UDP").status_code == 404
    owner.delete(f"/v1/container/{web_a['id']}/")
    assert connect(client_a).status_code == 409


def test_a_published_endpoint_really_answers(api, fleet_hosts):
    import socket

    owner = api("owner")
    web = create(owner, command=["sh", "-c", "echo pong | nc -l -p 80"], host="host-b",
                 ports=[{"port": 80, "scope": "internal"}]).json()
    internal = next(e for e in web["endpoints"] if e["scope"] == "internal")
    assert internal["address"] == "127.0.0.22"

    def pong():
        try:
            with socket.create_connection((internal["address"], internal["port"]), timeout=2) as conn:
                return conn.recv(16)
        except OSError:
            return None
    assert wait_until(pong, timeout=10, message="the published port") == b"pong\n"


def test_users_can_not_touch_each_others_containers(api, fleet_hosts):
    owner, other, staff = api("owner"), api("other"), api("staff")
    cid = create(owner, command=["sleep", "60"]).json()["id"]
    for method, path in [("get", ""), ("get", "stdout"), ("get", "state"), ("post", "stop"), ("delete", "")]:
        url = f"/v1/container/{cid}/{path}" if path else f"/v1/container/{cid}/"
        assert getattr(other, method)(url).status_code == 404, (method, path)
    assert other.get("/v1/container/?count=true").json()["count"] == 0
    assert staff.get("/v1/container/?count=true").json()["count"] == 1
    assert staff.post(f"/v1/container/{cid}/stop?timeout=0").json()["state"] == "exited"
    assert owner.post(f"/v1/container/{cid}/start").json()["state"] == "running"
    assert owner.post(f"/v1/container/{cid}/restart?timeout=0").json()["state"] == "running"
    mine = owner.get("/v1/container/cluster/").json()
    assert [item["labels"]["boatload.container"] for item in mine["results"]] == [cid]
    assert other.get("/v1/container/cluster/").json()["results"] == []


def test_the_list_filters(api, fleet_hosts):
    owner = api("owner")
    create(owner, command=["sleep", "60"], host="host-a")
    create(owner, command=["sleep", "60"], host="host-b")
    assert owner.get("/v1/container/?host=host-a&count=true").json()["count"] == 1
    assert owner.get("/v1/container/?state=running&count=true").json()["count"] == 2
    assert owner.get(f"/v1/container/?image={IMAGE_NAME}&count=true").json()["count"] == 2
    assert owner.get("/v1/container/?state=bogus").status_code == 400


def test_state_before_the_container_exists_is_empty_not_an_error(api, users, fleet_hosts):
    row = Container.objects.create(owner=users["owner"], host=fleet_hosts["host-a"], image_name=IMAGE_NAME,
                                   name="bl-not-yet")
    answer = api("owner").get(f"/v1/container/{row.uuid}/state")
    assert answer.status_code == 200 and answer.json() == {"platform_state": "pending", "docker_state": {}}


def test_listing_100_of_10000_rows_takes_constant_queries(api, users, fleet_hosts):
    owner = api("owner")
    host = fleet_hosts["host-a"]
    Container.objects.bulk_create([Container(owner=users["owner"], host=host, image_name="img", name=f"bl-{n}")
                                   for n in range(10)])
    with CaptureQueriesContext(connection) as few:
        assert len(owner.get("/v1/container/?limit=10").json()["results"]) == 10
    Container.objects.bulk_create([Container(owner=users["owner"], host=host, image_name="img", name=f"bl-m{n}")
                                   for n in range(9990)])
    with CaptureQueriesContext(connection) as many:
        answer = owner.get("/v1/container/?limit=100").json()
    assert len(answer["results"]) == 100 and answer["next"] and "count" not in answer
    assert len(many) == len(few) <= 3  # the user, the page, and no COUNT(*) unless asked
    assert owner.get("/v1/container/?limit=100&count=true").json()["count"] == 10000


def test_the_reconciler_records_exits_losses_and_reaps_orphans(api, fleet, fleet_hosts, settings):
    from boatload.management.commands.reconcile import Command

    owner = api("owner")
    docker_b = fleet["host-b"].docker
    killed = create(owner, command=["sleep", "300"], host="host-b").json()
    removed = create(owner, command=["sleep", "300"], host="host-b").json()
    docker_b.api.kill(killed["docker_id"])
    docker_b.api.remove_container(removed["docker_id"], force=True)
    orphan = docker_b.containers.create(f"{IMAGE_NAME}:{IMAGE_TAG}", ["sleep", "300"], labels={
        "boatload.container": str(uuid.uuid4()), RUN_LABEL.split("=")[0]: RUN_LABEL.split("=")[1],
        **fleet["host-b"].satellite.own_labels()})
    reconcile = Command()
    assert reconcile.process_one_host(fleet_hosts["host-b"])
    assert Container.objects.get(uuid=killed["id"]).state == "exited"
    assert Container.objects.get(uuid=killed["id"]).exit_code == 137
    assert Container.objects.get(uuid=removed["id"]).state == "lost"
    assert docker_b.containers.list(all=True, filters={"id": orphan.id}), "kept inside the grace period"
    settings.ORPHAN_GRACE = 0
    reconcile.process_one_host(fleet_hosts["host-b"])
    assert docker_b.containers.list(all=True, filters={"id": orphan.id}) == []


def test_a_reconciler_skips_a_host_another_one_holds(fleet_hosts):
    from boatload import services
    from boatload.management.commands.reconcile import Command

    assert services.host_claim(fleet_hosts["host-a"])
    assert Command().process_one_host(fleet_hosts["host-a"]) is False
    services.host_release(fleet_hosts["host-a"])
    assert Command().process_one_host(fleet_hosts["host-a"]) is True


def test_a_down_host_marks_its_containers_unknown_without_deleting(api, fleet_hosts):
    from boatload.management.commands.reconcile import Command

    owner = api("owner")
    cid = create(owner, command=["sleep", "60"], host="host-c").json()["id"]
    Host.objects.filter(name="host-c").update(last_seen=long_ago(120))
    Command().process_one_pass()
    row = Container.objects.get(uuid=cid)
    assert row.health == "unknown" and row.state == "running"
    Host.objects.filter(name="host-c").update(state="active", last_seen=long_ago(0))
    Command().process_one_host(Host.objects.get(name="host-c"))
    assert Container.objects.get(uuid=cid).health == "ok"


def test_cluster_reads_tag_every_item_with_its_host(api, fleet_hosts):
    images = api("owner").get("/v1/image/").json()
    assert images["failures"] == []
    assert {item["host"] for item in images["results"]} == {"host-a", "host-b", "host-c"}
    assert all(f"{IMAGE_NAME}:{IMAGE_TAG}" in [t for i in images["results"] if i["host"] == h for t in i["tags"]]
               for h in ("host-a", "host-b", "host-c"))


def test_actions_on_a_failed_container_are_409(api, users, fleet_hosts):
    row = Container.objects.create(owner=users["owner"], host=fleet_hosts["host-a"], image_name="x", state="failed")
    assert api("owner").post(f"/v1/container/{row.uuid}/start").status_code == 409
    assert api("owner").get(f"/v1/container/{row.uuid}/stdout").status_code == 409


def test_routes_accept_paths_without_a_trailing_slash(api, fleet_hosts):
    owner = api("owner")
    cid = create(owner, command=["sleep", "60"]).json()["id"]
    assert owner.get(f"/v1/container/{cid}").status_code == 200
    assert owner.post(f"/v1/container/{cid}/stop?timeout=0").status_code == 200


def test_admin_lists_and_stops_containers(client, api, users, fleet_hosts):
    cid = create(api("owner"), command=["sh", "-c", "trap 'exit 0' TERM; sleep 60 & wait"]).json()["id"]
    users["staff"].is_superuser = True
    users["staff"].save()
    client.login(username="staff", password="staff-pass-1")
    assert client.get("/admin/boatload/container/?state__exact=running").status_code == 200
    row = Container.objects.get(uuid=cid)
    client.post("/admin/boatload/container/", {"action": "stop", "_selected_action": [row.pk]})
    assert Container.objects.get(uuid=cid).state == "exited"


def test_a_bulk_stop_stops_on_the_hosts_at_once(client, api, users, fleet, fleet_hosts):
    """A stop may take its whole grace: the admin's (and console's) bulk stop asks every host at once, so each
    container is told to stop (Docker's `kill` event) before the first one has died."""
    command = ["sh", "-c", "trap 'sleep 2; exit 0' TERM; sleep 60 & wait"]
    ids = [create(api("owner"), command=command, host="host-a").json()["id"] for _ in range(3)]
    rows = Container.objects.filter(uuid__in=ids)
    docker_ids = set(rows.values_list("docker_id", flat=True))
    users["staff"].is_superuser = True
    users["staff"].save()
    client.login(username="staff", password="staff-pass-1")
    since = int(time.time()) - 1  # the engines run on this machine's clock
    client.post("/admin/boatload/container/", {"action": "stop", "_selected_action": [r.pk for r in rows]})
    assert set(rows.values_list("state", flat=True)) == {"exited"}
    events = fleet["host-a"].docker.events(since=since, until=int(time.time()) + 1, decode=True,
                                           filters={"type": "container", "event": ["kill", "die"]})
    seen = [(e["Action"], e["Actor"]["ID"]) for e in events if e["Actor"]["ID"] in docker_ids]
    first_die = next(i for i, (action, _) in enumerate(seen) if action == "die")
    assert {cid for action, cid in seen[:first_die] if action == "kill"} == docker_ids, seen


def test_the_example_fixture_loads(db):
    from django.core.management import call_command

    call_command("loaddata", "fixtures/templates.json", verbosity=0)
    assert Template.objects.get(name="busybox-sleep").body["Cmd"] == ["sleep", "3600"]


def test_a_given_name_is_the_docker_name_and_a_taken_one_fails_cleanly(api, fleet, fleet_hosts):
    owner = api("owner")
    first = create(owner, name="web-1", command=["sleep", "60"], host="host-a")
    assert first.status_code == 201 and first.json()["name"] == "web-1"
    assert fleet["host-a"].docker.containers.get("web-1").id == first.json()["docker_id"]
    taken = create(owner, name="web-1", command=["sleep", "60"], host="host-a")
    assert taken.status_code == 409
    assert Container.objects.get(uuid=taken.json()["error"]["detail"]["container"]).state == "failed"
    assert fleet["host-a"].docker.containers.get("web-1").id == first.json()["docker_id"]
    many = create(owner, name="batch", command=["sleep", "60"], instances=2, host="host-b").json()
    assert sorted(r["container"]["name"] for r in many["results"]) == ["batch-0", "batch-1"]
