"""Fixtures: real satellites on loopback, the real Docker engine, real Postgres, named users.

Every container a test run makes carries the label `boatload.test-run=<id>` (set through
SATELLITE_CONTAINER_LABELS on the satellites the tests start), and all of them are removed
at the end of the session, even when tests fail.
"""
import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest
import requests
from django.utils import timezone

import docker
from common.signing import HmacAuth

ROOT = Path(__file__).resolve().parent.parent
TEST_IMAGE = os.environ.get("BOATLOAD_TEST_IMAGE", "boatload-test/busybox:latest")
IMAGE_NAME, IMAGE_TAG = TEST_IMAGE.rsplit(":", 1)
RUN_ID = uuid.uuid4().hex[:12]
RUN_LABEL = f"boatload.test-run={RUN_ID}"
FILE_SERVER_ADDRESS = "127.0.0.2"  # the one loopback address test satellites may fetch from


def free_port(address="127.0.0.1"):
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def end_process(process, grace=10):
    """SIGTERM, then SIGKILL after `grace` seconds; waits until the process is gone."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until(predicate, timeout=20.0, interval=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {message}")


class SatelliteProcess:
    """A real satellite (`python -m satellite`) in a subprocess, on a loopback address.

    Plain HTTP (loopback) unless `tls=True`: then it serves HTTPS with the certificate it makes
    in its state folder, and `signed()` / `session()` trust exactly that certificate.
    """

    def __init__(self, state_dir, *, name="sat-test", address="127.0.0.1", keys=True, env=None, tls=False):
        self.name = name
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port(address)
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://{address}:{self.port}"
        self.key_id = f"hk_{secrets.token_hex(6)}"
        self.secret = secrets.token_urlsafe(32)
        if keys:
            (self.state_dir / "credentials.json").write_text(json.dumps(
                {"host": name, "api_url": "", "key_id": self.key_id, "keys": {self.key_id: self.secret}}))
        self.env = {
            **os.environ,
            "SATELLITE_NAME": name, "SATELLITE_BIND": address, "SATELLITE_PORT": str(self.port),
            "SATELLITE_URL": self.url,
            "SATELLITE_STATE_DIR": str(self.state_dir), "SATELLITE_CONTAINER_LABELS": RUN_LABEL,
            "SATELLITE_FETCH_ALLOW": f"{FILE_SERVER_ADDRESS}/32", "SATELLITE_PUBLISH_ADDRESS": "127.0.0.1",
            "SATELLITE_HOST_PATHS": str(self.state_dir / "allowed"), "SATELLITE_HEARTBEAT_INTERVAL": "1",
            **(env or {}),
        }
        self.process = None
        self.log_path = self.state_dir / "satellite.log"

    def start(self, wait=True):
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "satellite"], cwd=ROOT, env=self.env,
                                        stdout=self.log, stderr=subprocess.STDOUT)
        if wait:
            wait_until(self.healthy, message=f"satellite {self.name} at {self.url}\n{self.read_log()}")
        return self

    def healthy(self):
        if self.process.poll() is not None:
            raise AssertionError(f"satellite exited with {self.process.returncode}:\n{self.read_log()}")
        try:
            with self.session() as session:
                return session.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except (requests.RequestException, FileNotFoundError):
            return False

    @property
    def certificate(self):
        """The PEM of the certificate this satellite made (tls=True), once it started."""
        return (self.state_dir / "tls" / "cert.pem").read_text()

    def read_log(self):
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self):
        if self.process:
            end_process(self.process)
            self.log.close()

    def freeze(self, frozen=True):
        """SIGSTOP (or SIGCONT) the satellite and its gunicorn worker: it accepts connections and answers none."""
        root = psutil.Process(self.process.pid)
        for process in [root, *root.children(recursive=True)]:
            process.suspend() if frozen else process.resume()

    def memory(self):
        """Memory of the satellite (gunicorn master and worker) in bytes: proportional set size,
        so pages the two processes share are counted once, not twice as summed RSS would."""
        root = psutil.Process(self.process.pid)
        return sum(p.memory_full_info().pss for p in [root, *root.children(recursive=True)])

    def session(self):
        """A requests session to this satellite (for tls=True: pinned to its certificate)."""
        session = requests.Session()
        if self.tls:
            from common.tls import PinnedAdapter

            session.mount("https://", PinnedAdapter(certificate=self.certificate))
        return session

    def own_labels(self):
        """The label that makes a container this satellite's own (it lists and acts on no other)."""
        return {"boatload.satellite": (self.state_dir / "satellite-id").read_text().strip()}

    def signed(self):
        """A requests session that signs every call with this satellite's key."""
        session = self.session()
        session.auth = HmacAuth(self.key_id, self.secret)
        return session


@pytest.fixture(scope="session")
def docker_client():
    client = docker.from_env()
    client.ping()
    return client


@pytest.fixture(scope="session", autouse=True)
def remove_test_containers():
    yield
    client = docker.from_env()
    for container in client.containers.list(all=True, sparse=True, filters={"label": RUN_LABEL}):
        try:
            container.remove(force=True, v=True)
        except docker.errors.APIError:
            pass


@pytest.fixture(scope="session")
def satellite(tmp_path_factory):
    process = SatelliteProcess(tmp_path_factory.mktemp("satellite"), name="sat-local").start()
    yield process
    process.stop()


@pytest.fixture
def sat(satellite):
    """A signed session to the shared satellite, and its base URL as `sat.base`."""
    session = satellite.signed()
    session.base = satellite.url
    yield session
    session.close()


@pytest.fixture
def host(db, satellite):
    """The Host row of the shared test satellite."""
    from boatload.models import Host

    return Host.objects.create(name=satellite.name, satellite_url=satellite.url, key_id=satellite.key_id,
                               secret=satellite.secret, state=Host.State.ACTIVE, last_seen=timezone.now(),
                               address_internal="127.0.0.1")



@contextlib.contextmanager
def started_satellites(tmp_path_factory, names):
    """Satellites named `names`, started on the main engine ({name: SatelliteProcess}); thawed and
    stopped at the end, also when one froze it."""
    started = []
    try:
        for name in names:
            started.append(SatelliteProcess(tmp_path_factory.mktemp(name), name=name).start())
        yield dict(zip(names, started))
    finally:
        for satellite in started:
            satellite.freeze(False)
            satellite.stop()

@pytest.fixture
def users(db):
    """Named test users: an owner, another user and staff."""
    from django.contrib.auth import get_user_model

    model = get_user_model()
    return {
        "owner": model.objects.create_user("owner", password="owner-pass-1"),
        "other": model.objects.create_user("other", password="other-pass-1"),
        "staff": model.objects.create_user("staff", password="staff-pass-1", is_staff=True),
    }


def jwt_for(user):
    from rest_framework_simplejwt.tokens import AccessToken

    return str(AccessToken.for_user(user))


@pytest.fixture
def api(users):
    """A DRF test client factory: api("owner") is authenticated as that user with a JWT."""
    from rest_framework.test import APIClient

    def client_for(name=None):
        client = APIClient()
        if name:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {jwt_for(users[name])}")
        return client

    return client_for


class PeakMemory:
    """Samples `read()` (bytes) every 20 ms in the background; `stop()` returns the peak."""

    def __init__(self, read):
        self.read = read
        self.peak = 0
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.read())
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.peak


class CountingListener:
    """A TCP listener on 127.0.0.1 that counts connections: proof that nothing was fetched."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(16)
        self.port = self.socket.getsockname()[1]
        self.connections = 0
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.socket.settimeout(0.2)
        while self.running:
            try:
                conn, _ = self.socket.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def close(self):
        self.running = False
        self.socket.close()


@pytest.fixture
def counting_listener():
    listener = CountingListener()
    yield listener
    listener.close()


class FileServer:
    """An HTTP server on 127.0.0.2 serving test files, with /redirect?to=<url>."""

    def __init__(self):
        self.files = {}
        files = self.files

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.startswith("/redirect?to="):
                    self.send_response(302)
                    self.send_header("Location", self.path.split("=", 1)[1])
                    self.end_headers()
                    return
                body = files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer((FILE_SERVER_ADDRESS, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, path, body):
        self.files[path] = body
        return f"http://{FILE_SERVER_ADDRESS}:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="session")
def file_server():
    server = FileServer()
    yield server
    server.close()


def long_ago(seconds=3600):
    return timezone.now() - timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def engines():
    """engines(n): extra Docker engine number n, started once per session and stopped at its end."""
    from tests.engines import ExtraEngine

    started = {}

    def get(index):
        if index not in started:
            started[index] = ExtraEngine(index).start()
        return started[index]

    yield get
    for engine in started.values():
        client = engine.client()
        for container in client.containers.list(all=True, sparse=True, filters={"label": RUN_LABEL}):
            container.remove(force=True, v=True)
        engine.stop()
