"""Extra Docker engines beside the main one, for multi-host tests.

Each has its own data root, exec root, pid file, socket and bridge (never docker0), and
no iptables rules; the test image is copied in with `docker save | docker load`. Only the
engines started here are stopped here, by their own process.
"""
import os
import subprocess
import time
from pathlib import Path

import docker
from tests.conftest import TEST_IMAGE, end_process

# Shifts the engines' numbers, so that two test runs on one machine never share an engine.
OFFSET = int(os.environ.get("BOATLOAD_TEST_ENGINE_OFFSET", "0"))


class ExtraEngine:
    def __init__(self, index):
        index += OFFSET
        self.index = index
        self.base = Path(f"/tmp/boatload-test-engine-{index}")
        self.socket = self.base / "docker.sock"
        self.docker_host = f"unix://{self.socket}"
        self.bridge = f"br-bltest{index}"
        self.process = None

    def _bridge(self):
        if subprocess.run(["ip", "link", "show", self.bridge], capture_output=True).returncode == 0:
            return
        subnet = f"10.210.{self.index}.1/24"
        for command in (["ip", "link", "add", self.bridge, "type", "bridge"],
                        ["ip", "addr", "add", subnet, "dev", self.bridge], ["ip", "link", "set", self.bridge, "up"]):
            subprocess.run(command, check=True)

    def start(self):
        self.base.mkdir(parents=True, exist_ok=True)
        self._bridge()
        pidfile = self.base / "docker.pid"
        if pidfile.exists():
            stale = pidfile.read_text().strip()
            if stale and not Path(f"/proc/{stale}").exists():
                pidfile.unlink()
        self.log = open(self.base / "dockerd.log", "ab")
        self.process = subprocess.Popen([
            "dockerd", "--data-root", str(self.base / "data"), "--exec-root", str(self.base / "exec"),
            "--pidfile", str(pidfile), "-H", self.docker_host, "--bridge", self.bridge,
            "--iptables=false", "--ip-masq=false",
        ], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                docker.DockerClient(base_url=self.docker_host).ping()
                break
            except Exception:
                if self.process.poll() is not None:
                    raise RuntimeError(f"dockerd {self.index} exited; see {self.base / 'dockerd.log'}") from None
                time.sleep(0.3)
        client = docker.DockerClient(base_url=self.docker_host)
        try:
            client.images.get(TEST_IMAGE)
        except docker.errors.ImageNotFound:
            subprocess.run(f"docker save {TEST_IMAGE} | docker -H {self.docker_host} load -q", shell=True, check=True,
                           stdout=subprocess.DEVNULL)
        return self

    def client(self):
        return docker.DockerClient(base_url=self.docker_host)

    def stop(self):
        if self.process and self.process.poll() is None:
            end_process(self.process, grace=30)
            self.log.close()
