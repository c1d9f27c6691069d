"""Streams stay streams: follow logs end with their client, big files pass in bounded memory."""
import hashlib
import io
import tarfile

import pytest

from tests.conftest import PeakMemory, wait_until
from tests.satellite.helpers import b64, create, wait_exit

MiB = 1024 * 1024


def satellite_facts(sat):
    return sat.get(f"{sat.base}/info").json()["satellite"]


def test_a_follow_stream_whose_client_leaves_is_closed(sat, satellite):
    container_id = create(sat, script=b64("echo started; sleep 300")).json()["container"]
    wait_until(lambda: sat.get(f"{sat.base}/containers/{container_id}/logs").text == "started\n",
               message="the first line")
    worker = __import__("psutil").Process(satellite.process.pid).children()[0]
    fds_before = worker.num_fds()
    stream = sat.get(f"{sat.base}/containers/{container_id}/logs", params={"follow": 1}, stream=True)
    chunks = stream.iter_content(64)  # keep it: dropping the generator closes the connection
    assert next(chunks) == b"started\n"
    facts = satellite_facts(sat)
    assert facts["open_streams"] == 1 and facts["stream_watchers"] == 1
    stream.close()  # the client goes away while the container prints nothing
    wait_until(lambda: satellite_facts(sat)["open_streams"] == 0, timeout=10, message="the stream to close")
    assert satellite_facts(sat)["stream_watchers"] == 0
    wait_until(lambda: worker.num_fds() <= fds_before, timeout=10, message="the Docker connection to close")


def test_a_follow_stream_ends_when_the_container_ends(sat, docker_client):
    container_id = create(sat, script=b64("for i in 1 2 3; do echo line$i; sleep 0.3; done")).json()["container"]
    answer = sat.get(f"{sat.base}/containers/{container_id}/logs", params={"follow": 1}, timeout=30)
    assert answer.text == "line1\nline2\nline3\n"


@pytest.fixture(scope="module")
def big_file_container(satellite, docker_client):
    sat = satellite.signed()
    sat.base = satellite.url
    answer = create(sat, script=b64("mkdir -p /out && dd if=/dev/urandom of=/out/big bs=1048576 count=200 "
                                    "2>/dev/null && sha256sum /out/big"))
    assert answer.status_code == 201, answer.text
    assert wait_exit(docker_client, answer.json()["id"], timeout=120) == 0
    container_id = answer.json()["container"]
    digest = sat.get(f"{sat.base}/containers/{container_id}/logs").text.split()[0]
    return container_id, digest


@pytest.mark.slow
@pytest.mark.parametrize("what", ["file", "archive"])
def test_200_mib_downloads_add_under_20_mib_to_the_satellite(sat, satellite, big_file_container, what):
    container_id, digest = big_file_container
    url = f"{sat.base}/containers/{container_id}/" + ("files/out/big" if what == "file" else "archive")
    before = satellite.memory()
    memory = PeakMemory(satellite.memory)
    hasher, size = hashlib.sha256(), 0
    with sat.get(url, stream=True) as answer:
        assert answer.status_code == 200
        for chunk in answer.iter_content(1024 * 1024):
            size += len(chunk)
            if what == "file":
                hasher.update(chunk)
    peak = memory.stop()
    print(f"satellite memory (PSS) while streaming a 200 MiB {what}: {before / MiB:.1f} MiB before, "
          f"peak {peak / MiB:.1f} MiB")
    # What the stream adds, not what the process weighs idle (gevent, TLS and the rest are there
    # before any stream): a 200 MiB body held whole, or a tenth of it, would show here.
    assert peak - before < 20 * MiB
    if what == "file":
        assert size == 200 * MiB and hasher.hexdigest() == digest
    else:
        assert size > 200 * MiB


def test_metrics_of_one_container_and_of_all(sat):
    busy_made = create(sat, command=["sh", "-c", "while :; do :; done"]).json()
    idle_made = create(sat, command=["sleep", "300"]).json()
    busy, idle = busy_made["container"], idle_made["id"]  # /stats of all is keyed by Docker id
    first = sat.get(f"{sat.base}/containers/{busy}/stats").json()
    assert first["running"] is True  # cpu_percent may still be null: one sample only
    # The stream opened as the container started, so its first rate spans the idle one's create too
    # (contended on a loaded machine): a later sample must show it busy.
    one = wait_until(lambda: (lambda m: m if (m["cpu_percent"] or 0) > 20 else None)(
        sat.get(f"{sat.base}/containers/{busy}/stats").json()), timeout=10, message="a CPU sample over 20%")
    assert one["memory_usage"] > 0 and one["memory_limit"] > 0 and one["pids"] >= 1
    assert {"network_rx_bytes", "network_tx_bytes", "block_read_bytes", "block_write_bytes"} <= set(one)
    every = wait_until(lambda: (lambda m: m if m.get(idle, {}).get("cpu_percent") is not None else None)(
        sat.get(f"{sat.base}/stats").json()), timeout=5, message="a CPU sample of the idle container")
    assert {busy_made["id"], idle} <= set(every)
    assert every[idle]["cpu_percent"] < 5 and every[idle]["running"] is True
    sat.post(f"{sat.base}/containers/{busy}/stop", params={"timeout": 0})
    assert sat.get(f"{sat.base}/containers/{busy}/stats").json() == {"running": False}


# A name over tar's 100 bytes (the engine writes a pax or GNU long-name header for it) and a
# name that is not ASCII: the satellite reads the engine's headers and passes the data on.
LONG_NAME = "d" * 120 + "/" + "f" * 150 + ".bin"
ODD_NAME = "grüße ünd spaß.txt"


@pytest.fixture(scope="module")
def passed_on_container(satellite, docker_client):
    sat = satellite.signed()
    sat.base = satellite.url
    answer = create(sat, script=b64(f"mkdir -p /out/{LONG_NAME.rsplit('/', 1)[0]} && "
                                    "dd if=/dev/urandom of=/out/big bs=1048576 count=8 2>/dev/null && "
                                    f"dd if=/dev/urandom of='/out/{LONG_NAME}' bs=1000 count=3 2>/dev/null && "
                                    f"printf 'odd\\n' > '/out/{ODD_NAME}' && "
                                    f"sha256sum /out/big '/out/{LONG_NAME}'"))
    assert answer.status_code == 201, answer.text
    assert wait_exit(docker_client, answer.json()["id"], timeout=60) == 0
    container_id = answer.json()["container"]
    log = sat.get(f"{sat.base}/containers/{container_id}/logs").text.split("\n")
    digests = {line.split(None, 1)[1]: line.split()[0] for line in log if line}
    return container_id, digests


def chunked_body(answer):
    """(the HTTP chunks of a chunked answer as they came, their sizes)."""
    assert answer.headers.get("Transfer-Encoding") == "chunked", answer.headers
    chunks = [chunk for chunk in answer.raw.read_chunked() if chunk]
    return b"".join(chunks), [len(chunk) for chunk in chunks]


def test_the_engines_archive_is_passed_on_as_it_came_in_mib_chunks(sat, passed_on_container):
    container_id, digests = passed_on_container
    with sat.get(f"{sat.base}/containers/{container_id}/archive", stream=True) as answer:
        assert answer.status_code == 200
        data, sizes = chunked_body(answer)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        contents = {member.name: archive.extractfile(member).read() for member in archive.getmembers()}
    assert set(contents) == {"boatload/script", "out/big", f"out/{LONG_NAME}", f"out/{ODD_NAME}"}
    assert hashlib.sha256(contents["out/big"]).hexdigest() == digests["/out/big"]
    assert hashlib.sha256(contents[f"out/{LONG_NAME}"]).hexdigest() == digests[f"/out/{LONG_NAME}"]
    assert contents[f"out/{ODD_NAME}"] == b"odd\n"
    # The 8 MiB file's data leaves in whole MiB reads of the engine's stream (64 KiB reads and
    # tarfile's 10 KiB buffer before made 128 chunks of it, and archives 2x slower than docker cp).
    assert sizes.count(MiB) >= 8, sizes
    assert len(sizes) <= 8 + 2 * len(contents) + 2, sizes
    # One file is the same read of the engine's stream, cut exactly at the file's size.
    for name, expected in (("big", digests["/out/big"]), (LONG_NAME, digests[f"/out/{LONG_NAME}"]),
                           (ODD_NAME, hashlib.sha256(b"odd\n").hexdigest())):
        answer = sat.get(f"{sat.base}/containers/{container_id}/files/out/{name}")
        assert answer.status_code == 200 and hashlib.sha256(answer.content).hexdigest() == expected, name
        assert answer.headers["Content-Length"] == str(len(answer.content))

