"""Data zips and fetched URLs: confined, capped, and never a door into private networks."""
import io
import socket
import stat
import threading
import time
import uuid
import zipfile

import pytest
import requests

from tests.conftest import FILE_SERVER_ADDRESS, SatelliteProcess, wait_until
from tests.satellite.helpers import b64, create, make_zip, wait_exit


def containers_marked(docker_client, marker):
    return docker_client.containers.list(all=True, sparse=True, filters={"label": f"marker={marker}"})


def test_a_data_zip_lands_under_datapath(sat, file_server, docker_client):
    url = file_server.add(f"/{uuid.uuid4().hex}.zip", make_zip({"a.txt": b"A", "deep/b.txt": b"B", "empty/": b""}))
    answer = create(sat, dataurl=url, datapath="/srv/input",
                    script=b64("cat /srv/input/a.txt /srv/input/deep/b.txt; ls -d /srv/input/empty"))
    assert answer.status_code == 201, answer.text
    wait_exit(docker_client, answer.json()["id"])
    assert sat.get(f"{sat.base}/containers/{answer.json()['container']}/logs").text == "AB/srv/input/empty\n"


def symlink_zip():
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return make_zip([(info, "/etc/passwd")])


def many_entries_zip():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number in range(10_000):
            archive.writestr(f"f{number}", b"")
    return buffer.getvalue()


def zeros_bomb_zip():
    """1 GiB of zeros in one deflated entry (about 1 MiB on the wire)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("zeros", "w", force_zip64=True) as entry:
        block = bytes(16 * 1024 * 1024)
        for _ in range(64):
            entry.write(block)
    return buffer.getvalue()


BAD_ZIPS = {
    "parent": lambda: make_zip({"../x": b"escape"}),
    "nested-parent": lambda: make_zip({"ok/../../x": b"escape"}),
    "absolute": lambda: make_zip({"/etc/cron.d/x": b"escape"}),
    "symlink": symlink_zip,
    "entries": many_entries_zip,
    "bomb": zeros_bomb_zip,
    "not-a-zip": lambda: b"plain text",
}


@pytest.mark.parametrize("kind", BAD_ZIPS)
def test_a_dangerous_zip_is_rejected_and_leaves_no_container(sat, file_server, docker_client, kind, tmp_path):
    marker = uuid.uuid4().hex
    url = file_server.add(f"/{marker}.zip", BAD_ZIPS[kind]())
    answer = create(sat, dataurl=url, datapath="/data", command=["true"], labels={"marker": marker})
    assert answer.status_code in (400, 413), answer.text
    assert answer.json()["error"]["detail"]["field"] == "dataurl"
    assert containers_marked(docker_client, marker) == []


REFUSED_TARGETS = [
    "http://127.0.0.1:{port}/x", "http://169.254.169.254/latest/meta-data/", "http://[::1]:{port}/x",
    "http://0x7f000001:{port}/x", "http://localhost:{port}/x", "file:///etc/passwd", "ftp://127.0.0.1:{port}/x",
    "http://10.0.0.1:{port}/x",
]


@pytest.mark.parametrize("field", ["scripturl", "dataurl"])
@pytest.mark.parametrize("target", REFUSED_TARGETS)
def test_private_and_odd_urls_are_refused_without_a_connection(sat, counting_listener, docker_client, field,
                                                               target):
    marker = uuid.uuid4().hex
    answer = create(sat, **{field: target.format(port=counting_listener.port)}, labels={"marker": marker})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["detail"]["field"] == field
    assert counting_listener.connections == 0
    assert containers_marked(docker_client, marker) == []


@pytest.mark.parametrize("field", ["scripturl", "dataurl"])
def test_a_redirect_to_loopback_is_refused(sat, file_server, counting_listener, field):
    url = file_server.add("/unused", b"") and (
        f"http://127.0.0.2:{file_server.port}/redirect?to=http://127.0.0.1:{counting_listener.port}/x")
    answer = create(sat, **{field: url})
    assert answer.status_code == 400, answer.text
    assert counting_listener.connections == 0


def test_a_script_is_fetched_from_an_allowed_url(sat, file_server, docker_client):
    url = file_server.add("/hello.sh", b"#!/bin/sh\necho fetched $1\n")
    answer = create(sat, scripturl=url, scriptname="hello.sh", container_args=["arg"])
    assert answer.status_code == 201, answer.text
    wait_exit(docker_client, answer.json()["id"])
    assert sat.get(f"{sat.base}/containers/{answer.json()['container']}/logs").text == "fetched arg\n"


def test_a_fetched_script_over_the_limit_is_refused(sat, file_server):
    url = file_server.add("/big.sh", b"#" * 5000)
    answer = create(sat, scripturl=url)
    assert answer.status_code == 413


def test_a_missing_url_names_the_field(sat, file_server):
    answer = create(sat, dataurl=f"http://127.0.0.2:{file_server.port}/missing.zip")
    assert answer.status_code == 400 and answer.json()["error"]["detail"]["field"] == "dataurl"


class SlowServer:
    """A TCP server on 127.0.0.2 that answers as slowly as `mode` says, until its client goes away.

    `headers`: the status line at once, then one header byte every 0.3 s; `body`: headers
    with Content-Length 200, then one body byte every 0.3 s; `drip`: one byte of the whole
    answer every second, from the status line on. `gone` is set once the satellite closed
    the connection, i.e. let go of it.
    """

    ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\nX-Pad: " + b"p" * 4000 + b"\r\n\r\n" + b"#" * 200

    def __init__(self, mode):
        self.mode = mode
        self.gone = threading.Event()
        self.connections = 0
        self.socket = socket.socket()
        self.socket.bind((FILE_SERVER_ADDRESS, 0))
        self.socket.listen(8)
        self.url = f"http://{FILE_SERVER_ADDRESS}:{self.socket.getsockname()[1]}/slow.sh"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.socket.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        head, body = self.ANSWER.split(b"\r\n\r\n", 1)
        try:
            conn.recv(65536)
            if self.mode == "headers":
                conn.sendall(b"HTTP/1.1 200 OK\r\n")
                pending, pause = head[len(b"HTTP/1.1 200 OK\r\n"):] + b"\r\n\r\n" + body, 0.3
            elif self.mode == "body":
                conn.sendall(head + b"\r\n\r\n")
                pending, pause = body, 0.3
            else:
                pending, pause = self.ANSWER, 1.0
            for byte in pending:
                conn.sendall(bytes([byte]))
                time.sleep(pause)
            # Everything sent (only when the deadline did not hold): keep the connection open.
            while conn.recv(1):
                pass
        except OSError:
            pass
        finally:
            self.gone.set()
            conn.close()

    def close(self):
        self.socket.close()


@pytest.fixture(scope="module")
def impatient_satellite(tmp_path_factory):
    process = SatelliteProcess(tmp_path_factory.mktemp("impatient"), name="sat-impatient",
                               env={"SATELLITE_FETCH_TIMEOUT": "2s", "SATELLITE_THREADS": "4"}).start()
    yield process
    process.stop()


@pytest.mark.parametrize("field", ["scripturl", "dataurl"])
@pytest.mark.parametrize("mode", ["headers", "body", "drip"])
def test_a_slow_server_is_cut_off_at_the_fetch_deadline(impatient_satellite, docker_client, field, mode):
    """The deadline is wall-clock over connect, headers and body: the answer is a 504 naming the
    field, the satellite lets go of the connection, and nothing is left behind. Each server would
    take over 40 s (drip: over an hour) to finish; the client's 30 s timeout only catches a hang."""
    server = SlowServer(mode)
    session = impatient_satellite.signed()
    marker = uuid.uuid4().hex
    try:
        answer = session.post(f"{impatient_satellite.url}/containers", timeout=30, json={
            "image_name": "boatload-test/busybox", "image_tag": "latest", field: server.url,
            "labels": {"marker": marker}, "identity": {"container": str(uuid.uuid4())}, "as_staff": False,
            "start": True})
        assert answer.status_code == 504, answer.text
        error = answer.json()["error"]
        assert error["code"] == "fetch_timeout" and error["detail"]["field"] == field
        wait_until(server.gone.is_set, timeout=10, message="the satellite to close the slow connection")
        assert containers_marked(docker_client, marker) == []
        assert requests.get(f"{impatient_satellite.url}/healthz", timeout=5).status_code == 200
    finally:
        server.close()
        session.close()
