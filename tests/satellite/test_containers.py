"""Satellite container operations against the real Docker engine."""
import http.client
import io
import json
import tarfile
import time
import uuid
from urllib.parse import unquote

import pytest
import requests

from common.signing import sign_headers
from tests.conftest import RUN_LABEL
from tests.satellite.helpers import b64, create, wait_exit

SCRIPT = "echo out-$1-$2; echo err-line >&2; mkdir -p /out/sub; echo alpha > /out/a.txt; " \
         "echo beta > /out/sub/b.bin; echo \"$GREETING\" > /out/env.txt"


@pytest.fixture
def finished(sat, docker_client):
    """A container that ran the script above and exited."""
    answer = create(sat, script=b64(SCRIPT), container_args="one two", env={"GREETING": "hi there"},
                    identity={"container": str(uuid.uuid4()), "owner": "owner"})
    assert answer.status_code == 201, answer.text
    assert wait_exit(docker_client, answer.json()["id"]) == 0
    return answer.json()["container"]  # the row uuid: how the satellite's paths find a container


def test_create_runs_the_script_with_args_env_and_boatload_labels(sat, finished, docker_client):
    [made] = docker_client.containers.list(all=True, filters={"label": f"boatload.container={finished}"})
    attrs = made.attrs
    labels = attrs["Config"]["Labels"]
    assert {"boatload.container", "boatload.service", "boatload.owner", "boatload.spec-hash"} <= set(labels)
    assert labels["boatload.owner"] == "owner" and RUN_LABEL.split("=")[0] in labels
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] in ("", "no")
    logs = sat.get(f"{sat.base}/containers/{finished}/logs").text
    assert logs == "out-one-two\n"


def test_logs_include_stderr_and_honour_tail(sat, finished):
    both = sat.get(f"{sat.base}/containers/{finished}/logs", params={"stderr": 1}).text
    assert sorted(both.splitlines()) == ["err-line", "out-one-two"]
    assert sat.get(f"{sat.base}/containers/{finished}/logs", params={"tail": 0}).text == ""
    future = int(time.time()) + 3600
    assert sat.get(f"{sat.base}/containers/{finished}/logs", params={"since": future}).text == ""


def test_state_script_and_changes(sat, finished):
    state = sat.get(f"{sat.base}/containers/{finished}/state").json()
    assert state["Status"] == "exited" and state["ExitCode"] == 0
    script = sat.get(f"{sat.base}/containers/{finished}/script").json()
    assert script["scriptname"] == "script" and "echo out-$1-$2" in script["script"]
    changes = {c["Path"]: c["Kind"] for c in sat.get(f"{sat.base}/containers/{finished}/changes").json()}
    assert changes["/out/a.txt"] == 1 and changes["/out/sub/b.bin"] == 1


def test_changed_files_are_numbered_in_path_order_and_downloadable(sat, finished):
    listed = sat.get(f"{sat.base}/containers/{finished}/files").json()
    paths = [entry["path"] for entry in listed]
    assert paths == sorted(paths) == ["/boatload/script", "/out/a.txt", "/out/env.txt", "/out/sub/b.bin"]
    assert [entry["number"] for entry in listed] == [0, 1, 2, 3]
    by_path = sat.get(f"{sat.base}/containers/{finished}/files/out/a.txt")
    assert by_path.content == b"alpha\n"
    assert by_path.headers["Content-Type"] == "text/plain" and by_path.headers["Content-Length"] == "6"
    by_number = sat.get(f"{sat.base}/containers/{finished}/filebynum/2")
    assert by_number.content == b"hi there\n"
    assert sat.get(f"{sat.base}/containers/{finished}/filebynum/4").status_code == 404


def identity():
    return {"container": str(uuid.uuid4())}


def raw_get(satellite, path):
    """GET with the path exactly as given: requests would resolve the dot segments itself."""
    connection = http.client.HTTPConnection("127.0.0.1", satellite.port, timeout=30)
    headers = sign_headers(satellite.secret, satellite.key_id, "GET", unquote(path), "", b"")
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def test_a_path_that_escapes_is_never_served(satellite, finished):
    for path in ("../../etc/passwd", "out/../../etc/passwd", "etc/passwd", "%2e%2e/%2e%2e/etc/passwd",
                 "..%2f..%2fetc/passwd"):
        status, body = raw_get(satellite, f"/containers/{finished}/files/{path}")
        assert status in (400, 404), (path, status, body)
        assert b"root:" not in body
        assert json.loads(body)["error"]["code"] in ("invalid", "not_found")


@pytest.mark.parametrize("compression,mode", [("", "r:"), ("gzip", "r:gz")])
def test_the_archive_holds_every_changed_file(sat, finished, compression, mode):
    answer = sat.get(f"{sat.base}/containers/{finished}/archive", params={"compression": compression})
    assert answer.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(answer.content), mode=mode) as archive:
        contents = {m.name: archive.extractfile(m).read() for m in archive.getmembers()}
    assert contents["out/a.txt"] == b"alpha\n" and contents["out/sub/b.bin"] == b"beta\n"
    assert set(contents) == {"boatload/script", "out/a.txt", "out/env.txt", "out/sub/b.bin"}


def test_lifecycle_is_idempotent(sat, docker_client):
    answer = create(sat, command=["sleep", "300"])
    container_id = answer.json()["container"]
    assert sat.post(f"{sat.base}/containers/{container_id}/start").json()["state"]["Running"] is True
    for _ in range(2):
        stopped = sat.post(f"{sat.base}/containers/{container_id}/stop", params={"timeout": 0})
        assert stopped.status_code == 200 and stopped.json()["state"]["Running"] is False
    assert sat.post(f"{sat.base}/containers/{container_id}/restart", params={"timeout": 0}).json()["state"]["Running"]
    assert sat.get(f"{sat.base}/containers/{container_id}").json()["Id"] == answer.json()["id"]
    assert sat.delete(f"{sat.base}/containers/{container_id}").status_code == 204
    assert sat.delete(f"{sat.base}/containers/{container_id}").status_code == 204
    missing = sat.get(f"{sat.base}/containers/{container_id}")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert sat.post(f"{sat.base}/containers/{container_id}/start").status_code == 404


def test_ports_restart_memory_and_cpu_are_applied(sat, docker_client):
    answer = create(sat, command=["sleep", "300"], ports=[{"port": 80, "protocol": "TCP", "scope": "host"},
                                                          {"port": 53, "protocol": "UDP"}],
                    restart="permanent", memory="64m", cpus=0.5, labels={"team": "blue"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    published = {(p["port"], p["protocol"]): p for p in body["ports"]}
    assert published[(80, "TCP")]["host_ip"] == "127.0.0.1" and published[(80, "TCP")]["host_port"] > 0
    assert (53, "UDP") in published
    host_config = docker_client.api.inspect_container(body["id"])["HostConfig"]
    assert host_config["RestartPolicy"]["Name"] == "always"
    assert host_config["Memory"] == 64 * 1024 * 1024 and host_config["NanoCpus"] == 500_000_000


def test_containers_are_listed_by_label(sat):
    owner = f"lister-{uuid.uuid4().hex[:6]}"
    ids = {create(sat, command=["true"], identity={"owner": owner}).json()["id"] for _ in range(3)}
    listed = sat.get(f"{sat.base}/containers", params={"label": f"boatload.owner={owner}"}).json()
    assert {row["id"] for row in listed} == ids
    assert all(row["labels"]["boatload.owner"] == owner for row in listed)


def test_images_and_engine_info(sat):
    tags = [tag for image in sat.get(f"{sat.base}/images").json() for tag in image["tags"]]
    assert "boatload-test/busybox:latest" in tags
    info = sat.get(f"{sat.base}/info").json()
    assert info["ServerVersion"] and info["NCPU"] >= 1


def test_privileged_without_the_staff_mark_is_refused_before_docker(sat, docker_client):
    marker = uuid.uuid4().hex
    answer = create(sat, command=["true"], privileged=True, labels={"marker": marker})
    assert answer.status_code == 400
    assert answer.json()["error"]["detail"]["field"] == "privileged"
    assert docker_client.containers.list(all=True, filters={"label": f"marker={marker}"}) == []


def test_host_volumes_must_be_staff_and_under_the_allow_list(sat, satellite, docker_client, tmp_path):
    marker = uuid.uuid4().hex
    outside = create(sat, command=["true"], as_staff=True, labels={"marker": marker},
                     volumes=[{"type": "host", "source": str(tmp_path), "target": "/mnt"}])
    assert outside.status_code == 400 and outside.json()["error"]["detail"]["field"] == "volumes"
    allowed = satellite.state_dir / "allowed" / "share"
    allowed.mkdir(parents=True, exist_ok=True)
    (allowed / "hello.txt").write_text("from host")
    not_staff = create(sat, command=["true"], labels={"marker": marker},
                       volumes=[{"type": "host", "source": str(allowed), "target": "/mnt"}])
    assert not_staff.status_code == 400
    assert docker_client.containers.list(all=True, filters={"label": f"marker={marker}"}) == []
    inside = create(sat, command=["cat", "/mnt/hello.txt"], as_staff=True,
                    volumes=[{"type": "host", "source": str(allowed), "target": "/mnt", "read_only": True},
                             {"type": "temp", "target": "/scratch"}])
    assert inside.status_code == 201, inside.text
    wait_exit(docker_client, inside.json()["id"])
    assert sat.get(f"{sat.base}/containers/{inside.json()['container']}/logs").text == "from host"


def test_a_failed_start_removes_the_container_and_names_the_step(sat, docker_client):
    marker = uuid.uuid4().hex
    answer = create(sat, command=["/no/such/binary"], labels={"marker": marker})
    assert answer.status_code >= 400
    assert answer.json()["error"]["detail"]["step"] == "start"
    assert docker_client.containers.list(all=True, filters={"label": f"marker={marker}"}) == []


def test_an_unknown_image_is_404_and_leaves_nothing(sat):
    answer = create(sat, image_name="boatload-test/no-such-image", command=["true"])
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "image_not_found"


def test_bad_specs_name_the_field(sat):
    cases = {"memory": {"memory": "lots"}, "ports": {"ports": [{"port": 99999}]},
             "script": {"script": "not base64!"}, "labels": {"labels": {"boatload.owner": "me"}},
             "datapath": {"datapath": "../x"}, "volumes": {"volumes": [{"type": "temp", "target": "/a/../b"}]}}
    for field, fields in cases.items():
        answer = create(sat, **fields)
        assert answer.status_code == 400, field
        assert field in answer.json()["error"]["message"], answer.json()


def test_a_script_over_the_limit_is_refused(sat):
    answer = create(sat, script=b64("#" * 5000))
    assert answer.status_code == 413 and answer.json()["error"]["detail"]["field"] == "script"


def test_a_name_conflict_adopts_the_same_container_and_refuses_another(sat):
    name = f"conflict-{uuid.uuid4().hex[:8]}"
    row = str(uuid.uuid4())
    first = create(sat, name=name, command=["sleep", "60"], identity={"container": row})
    again = create(sat, name=name, command=["sleep", "60"], identity={"container": row})
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    other = create(sat, name=name, command=["sleep", "60"], identity={"container": str(uuid.uuid4())})
    assert other.status_code == 409


def test_raw_create_refuses_host_namespaces_devices_and_capabilities(sat, docker_client):
    bodies = {
        "HostConfig.NetworkMode": {"NetworkMode": "host"}, "HostConfig.PidMode": {"PidMode": "host"},
        "HostConfig.Devices": {"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/x",
                                            "CgroupPermissions": "r"}]},
        "HostConfig.CapAdd": {"CapAdd": ["SYS_ADMIN"]}, "HostConfig.Privileged": {"Privileged": True},
    }
    for field, host_config in bodies.items():
        body = {"Image": "boatload-test/busybox:latest", "Cmd": ["true"], "HostConfig": host_config,
                "Labels": {"marker": "raw-refused"}}
        answer = sat.post(f"{sat.base}/containers/raw", json={"body": body, "as_staff": True, "identity": identity()})
        assert answer.status_code == 400 and answer.json()["error"]["detail"]["field"] == f"body.{field}"
    assert docker_client.containers.list(all=True, filters={"label": "marker=raw-refused"}) == []
    body = {"Image": "boatload-test/busybox:latest", "Cmd": ["echo", "raw"]}
    assert sat.post(f"{sat.base}/containers/raw", json={"body": body, "identity": identity()}).status_code == 400
    made = sat.post(f"{sat.base}/containers/raw", json={"body": body, "as_staff": True, "identity": identity()})
    assert made.status_code == 201 and made.json()["labels"]["boatload.spec-hash"]


def test_an_engine_that_is_down_answers_502_naming_the_host(tmp_path):
    from tests.conftest import SatelliteProcess

    dead = SatelliteProcess(tmp_path, name="dead-engine", env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    dead.start(wait=False)
    try:
        session = dead.signed()
        from tests.conftest import wait_until

        def answered():  # a Response of an error is falsy, so wrap it
            try:
                return [session.get(f"{dead.url}/info", timeout=5)]
            except requests.ConnectionError:
                return None
        [answer] = wait_until(answered, message="the satellite")
        assert answer.status_code == 502
        assert answer.json()["error"]["code"] == "engine_unavailable"
        assert answer.json()["error"]["detail"]["remote"] == "dead-engine"
        assert requests.get(f"{dead.url}/healthz", timeout=5).status_code == 503
        for path, body in (("/containers", {"image_name": "boatload-test/busybox", "command": ["true"],
                                            "identity": identity()}),
                           (f"/containers/{uuid.uuid4()}/stop", None)):
            answer = session.post(f"{dead.url}{path}", json=body, timeout=5)
            assert answer.status_code == 502, (path, answer.text)
            assert answer.json()["error"]["code"] == "engine_unavailable", path
            assert answer.json()["error"]["detail"]["remote"] == "dead-engine", path
    finally:
        dead.stop()
