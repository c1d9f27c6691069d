"""The raw-create policy on a real satellite and a real engine: an allow-list read the way Docker reads keys.

Every refused body is checked twice: the satellite answers 400 naming the key path, and
the engine holds no container carrying the body's marker label afterwards. The victim is a
non-BoatLoad container made with the docker SDK, checked untouched at the end.
"""
import uuid

import pytest

from tests.conftest import RUN_LABEL, TEST_IMAGE, SatelliteProcess
from tests.satellite.helpers import wait_exit

RUN_KEY, RUN_VALUE = RUN_LABEL.split("=", 1)
MIB = 1024 * 1024
ALL_GATES = ("HOST_NAMESPACES", "DEVICES", "CAPABILITIES", "SHARING", "SECURITY_OPTIONS", "SYSCTLS")


def raw(sat, body):
    return sat.post(f"{sat.base}/containers/raw", json={"body": body, "as_staff": True,
                                                        "identity": {"container": str(uuid.uuid4())}}, timeout=60)


def marked(marker, **fields):
    return {"Image": TEST_IMAGE, "Cmd": ["sleep", "30"], "Labels": {"marker": marker}, **fields}


@pytest.fixture
def victim(docker_client):
    """Another tenant's container, not made by BoatLoad."""
    container = docker_client.containers.run(TEST_IMAGE, ["sleep", "300"], detach=True,
                                             labels={RUN_KEY: RUN_VALUE, "role": "victim"},
                                             ipc_mode="shareable")
    yield container
    container.remove(force=True, v=True)


@pytest.fixture(scope="module")
def permissive(tmp_path_factory):
    """A satellite whose operator opened every raw-create gate."""
    env = {f"SATELLITE_RAW_ALLOW_{gate}": "1" for gate in ALL_GATES}
    process = SatelliteProcess(tmp_path_factory.mktemp("permissive"), name="sat-permissive", env=env).start()
    yield process
    process.stop()


@pytest.fixture
def open_sat(permissive):
    session = permissive.signed()
    session.base = permissive.url
    yield session
    session.close()


def outside_bind_volume(_victim):
    return {"HostConfig": {"Mounts": [{"Type": "volume", "Target": "/host-etc", "VolumeOptions": {"DriverConfig": {
        "Name": "local", "Options": {"type": "none", "o": "bind", "device": "/etc"}}}}]}}


# (what, HostConfig or top-level fields given the victim, field named, setting named in the message)
GATED = [
    ("lowercase capabilities", lambda v: {"hostconfig": {"capadd": ["NET_ADMIN"]}}, "body.HostConfig.CapAdd",
     "SATELLITE_RAW_ALLOW_CAPABILITIES"),
    ("long-s folded key", lambda v: {"HostConfig": {"\u017fecurityOpt": ["seccomp=unconfined"]}},
     "body.HostConfig.SecurityOpt[0]", "SATELLITE_RAW_ALLOW_SECURITY_OPTIONS"),
    ("volumes of another container", lambda v: {"HostConfig": {"VolumesFrom": [v.id]}},
     "body.HostConfig.VolumesFrom", "SATELLITE_RAW_ALLOW_SHARING"),
    ("pid namespace of another container", lambda v: {"HostConfig": {"PidMode": f"container:{v.id}"}},
     "body.HostConfig.PidMode", "SATELLITE_RAW_ALLOW_SHARING"),
    ("network namespace of another container", lambda v: {"HostConfig": {"NetworkMode": f"container:{v.id}"}},
     "body.HostConfig.NetworkMode", "SATELLITE_RAW_ALLOW_SHARING"),
    ("ipc namespace of another container", lambda v: {"HostConfig": {"IpcMode": f"container:{v.id}"}},
     "body.HostConfig.IpcMode", "SATELLITE_RAW_ALLOW_SHARING"),
    ("seccomp unconfined", lambda v: {"HostConfig": {"SecurityOpt": ["seccomp=unconfined"]}},
     "body.HostConfig.SecurityOpt[0]", "SATELLITE_RAW_ALLOW_SECURITY_OPTIONS"),
    ("apparmor unconfined", lambda v: {"HostConfig": {"SecurityOpt": ["no-new-privileges", "apparmor=unconfined"]}},
     "body.HostConfig.SecurityOpt[1]", "SATELLITE_RAW_ALLOW_SECURITY_OPTIONS"),
    ("unmasked /proc paths", lambda v: {"HostConfig": {"MaskedPaths": []}},
     "body.HostConfig.MaskedPaths", "SATELLITE_RAW_ALLOW_SECURITY_OPTIONS"),
    ("sysctls", lambda v: {"HostConfig": {"Sysctls": {"net.ipv4.ip_forward": "1"}}},
     "body.HostConfig.Sysctls", "SATELLITE_RAW_ALLOW_SYSCTLS"),
    ("device cgroup rules", lambda v: {"HostConfig": {"DeviceCgroupRules": ["b 7:* rmw"]}},
     "body.HostConfig.DeviceCgroupRules", "SATELLITE_RAW_ALLOW_DEVICES"),
    ("named volume", lambda v: {"HostConfig": {"Mounts": [{"Type": "volume", "Source": f"bl-{uuid.uuid4().hex}",
                                                             "Target": "/shared"}]}},
     "body.HostConfig.Mounts[0].Source", "SATELLITE_RAW_ALLOW_SHARING"),
]

# Refused whatever the settings say: unknown keys, two spellings of one key, wrong types,
# and host folders outside SATELLITE_HOST_PATHS.
ALWAYS_REFUSED = [
    ("top-level privileged (Docker's deprecated HostConfig fields)", lambda v: {"Privileged": True},
     "body.Privileged"),
    ("cgroup parent", lambda v: {"HostConfig": {"CgroupParent": "/"}}, "body.HostConfig.CgroupParent"),
    ("two spellings of one key", lambda v: {"HostConfig": {"Memory": 64 * MIB, "memory": 128 * MIB}},
     "body.HostConfig.Memory"),
    ("volume driver binding a host folder", outside_bind_volume,
     "body.HostConfig.Mounts[0].VolumeOptions.DriverConfig.Options.device"),
    ("bind mount outside the host paths", lambda v: {"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/etc",
                                                                                  "Target": "/x"}]}},
     "body.HostConfig.Mounts[0].Source"),
    ("lowercase bind outside the host paths", lambda v: {"HostConfig": {"binds": ["/etc:/x"]}},
     "body.HostConfig.Binds[0]"),
    ("a Cmd that is a number", lambda v: {"Cmd": 5}, "body.Cmd"),
    ("a memory that is a word", lambda v: {"HostConfig": {"Memory": "lots"}}, "body.HostConfig.Memory"),
    ("a port that is not a number", lambda v: {"ExposedPorts": {"abc/tcp": {}}}, "body.ExposedPorts.abc/tcp"),
    ("a restart policy that is a string", lambda v: {"HostConfig": {"RestartPolicy": "always"}},
     "body.HostConfig.RestartPolicy"),
]


def assert_refused(sat, docker_client, fields, field, marker):
    answer = raw(sat, marked(marker, **fields))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["detail"]["field"] == field, error
    assert docker_client.containers.list(all=True, filters={"label": f"marker={marker}"}) == []
    return error


@pytest.mark.parametrize("what, fields, field, setting", GATED, ids=[case[0] for case in GATED])
def test_a_dangerous_key_is_refused_unless_its_setting_allows_it(sat, open_sat, docker_client, victim,
                                                                 what, fields, field, setting):
    marker = f"raw-{uuid.uuid4().hex[:8]}"
    error = assert_refused(sat, docker_client, fields(victim), field, marker)
    assert setting in error["message"]
    opened = raw(open_sat, marked(marker, **fields(victim)))
    assert opened.status_code == 201, opened.text
    docker_client.api.remove_container(opened.json()["id"], force=True, v=True)
    victim.reload()
    assert victim.status == "running"


@pytest.mark.parametrize("what, fields, field", ALWAYS_REFUSED, ids=[case[0] for case in ALWAYS_REFUSED])
def test_unknown_keys_wrong_types_and_outside_host_folders_are_refused_everywhere(sat, open_sat, docker_client,
                                                                                  victim, what, fields, field):
    marker = f"raw-{uuid.uuid4().hex[:8]}"
    assert_refused(sat, docker_client, fields(victim), field, marker)
    assert_refused(open_sat, docker_client, fields(victim), field, marker)


def test_privileged_in_any_spelling_needs_three_settings(sat, docker_client):
    # Only refused here: the permissive satellite would pass it on, and the test engine can not
    # grant every capability (runc fails at start), which proves Docker honours the lowercase key.
    for fields in ({"hostconfig": {"privileged": True}}, {"HostConfig": {"PRIVILEGED": True}}):
        error = assert_refused(sat, docker_client, fields, "body.HostConfig.Privileged", "raw-privileged")
        assert "SATELLITE_RAW_ALLOW_DEVICES" in error["message"]
        assert "SATELLITE_RAW_ALLOW_SECURITY_OPTIONS" in error["message"]


def test_a_normal_raw_body_runs_with_what_it_asked_for(sat, satellite, docker_client):
    allowed = satellite.state_dir / "allowed" / "raw-input"
    allowed.mkdir(parents=True, exist_ok=True)
    (allowed / "hello.txt").write_text("from the host\n")
    body = {
        "Image": TEST_IMAGE, "Cmd": ["sh", "-c", "cat /in/hello.txt /bound/hello.txt; echo $GREETING; "
                                                  "touch /scratch/ok && echo tmpfs-ok"],
        "Env": ["GREETING=hi"], "Labels": {"marker": "raw-normal"}, "WorkingDir": "/", "User": "0",
        "ExposedPorts": {"80/tcp": {}}, "StopTimeout": 5,
        "HostConfig": {
            "Memory": 64 * MIB, "NanoCpus": 500_000_000, "RestartPolicy": {"Name": "no"},
            "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
            "Binds": [f"{allowed}:/in:ro"], "SecurityOpt": ["no-new-privileges"], "CapDrop": ["NET_RAW"],
            "Mounts": [{"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": MIB}},
                       {"Type": "volume", "Target": "/bound", "VolumeOptions": {"DriverConfig": {
                           "Name": "local", "Options": {"type": "none", "o": "bind", "device": str(allowed)}}}}],
        },
    }
    answer = raw(sat, body)
    assert answer.status_code == 201, answer.text
    container_id = answer.json()["id"]
    assert wait_exit(docker_client, container_id) == 0
    output = docker_client.api.logs(container_id)
    assert output == b"from the host\nfrom the host\nhi\ntmpfs-ok\n"
    attrs = docker_client.api.inspect_container(container_id)
    assert attrs["HostConfig"]["Memory"] == 64 * MIB and attrs["HostConfig"]["CapDrop"] == ["NET_RAW"]
    assert attrs["Config"]["Labels"]["marker"] == "raw-normal"


def test_keys_in_any_spelling_reach_docker_as_the_canonical_key(sat, docker_client):
    body = {"image": TEST_IMAGE, "cmd": ["true"], "labels": {"marker": "raw-spelling"},
            "hostConfig": {"MEMORY": 32 * MIB, "restartpolicy": {"name": "no"}}}
    answer = raw(sat, body)
    assert answer.status_code == 201, answer.text
    attrs = docker_client.api.inspect_container(answer.json()["id"])
    assert attrs["HostConfig"]["Memory"] == 32 * MIB
    assert attrs["Config"]["Labels"]["marker"] == "raw-spelling"
    assert attrs["Config"]["Labels"]["boatload.spec-hash"]
