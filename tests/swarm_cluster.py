"""A real three-node Docker Swarm on this machine: three extra engines (tests/engines.py: own data
roots, exec roots, pid files, sockets and bridges, no iptables, never docker0), the first made the
manager with `swarm init --advertise-addr 127.0.0.21`, the others joined as workers advertising
127.0.0.22 and 127.0.0.23. Every node listens on a port of its own (never Swarm's shared 2377).
No registry is reachable, so every image a service runs is imported on every node (`load`).

Only the engines started here are stopped here, each by its own process.
"""
import subprocess
import time

from tests.conftest import free_port
from tests.engines import ExtraEngine

ADDRESSES = ("127.0.0.21", "127.0.0.22", "127.0.0.23")
ENGINE_INDEXES = (7, 8, 9)  # + BOATLOAD_TEST_ENGINE_OFFSET, as every extra engine


def _docker(engine, *args, check=True):
    result = subprocess.run(["docker", "-H", engine.docker_host, *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} on {engine.docker_host}: {result.stderr.strip()}")
    return result


def loopback_alias(address):
    """`address` on lo (any 127/8 address answers on Linux; the alias makes it an interface address too)."""
    shown = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True).stdout
    if f" {address}/" not in shown:
        subprocess.run(["ip", "addr", "add", f"{address}/8", "dev", "lo"], capture_output=True)


class SwarmCluster:
    """One manager and two workers; `engines[0]` is the manager."""

    def __init__(self, indexes=ENGINE_INDEXES, addresses=ADDRESSES):
        self.engines = [ExtraEngine(index) for index in indexes]
        self.addresses = addresses

    @property
    def manager(self):
        return self.engines[0]

    @property
    def workers(self):
        return self.engines[1:]

    def start(self):
        for engine, address in zip(self.engines, self.addresses):
            loopback_alias(address)
            engine.start()
            _docker(engine, "swarm", "leave", "--force", check=False)  # a stale state of an earlier run
        manager_address = f"{self.addresses[0]}:{free_port()}"
        _docker(self.manager, "swarm", "init", "--advertise-addr", manager_address, "--listen-addr", manager_address)
        token = _docker(self.manager, "swarm", "join-token", "-q", "worker").stdout.strip()
        for engine, address in zip(self.workers, self.addresses[1:]):
            own = f"{address}:{free_port()}"
            _docker(engine, "swarm", "join", "--advertise-addr", own, "--listen-addr", own, "--token", token,
                    manager_address)
        self.wait_nodes_ready(len(self.engines))
        return self

    def nodes(self):
        """{node id: (state, availability)} as the manager sees them."""
        return {node.id: (node.attrs["Status"]["State"], node.attrs["Spec"].get("Availability"))
                for node in self.manager.client().nodes.list()}

    def wait_nodes_ready(self, number, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for state, _ in self.nodes().values() if state == "ready") == number:
                return
            time.sleep(0.3)
        raise RuntimeError(f"the Swarm has not {number} ready nodes: {self.nodes()}")

    def load(self, build):
        """`build(docker_client)` (an image import) on every node: there is no registry to pull from."""
        for engine in self.engines:
            build(engine.client())

    def stop_engine(self, engine):
        """End one node's engine (by its own process, which this cluster started)."""
        engine.stop()

    def restart_engine(self, engine):
        engine.start()

    def stop(self):
        for engine in reversed(self.engines):
            if engine.process and engine.process.poll() is None:
                _docker(engine, "swarm", "leave", "--force", check=False)
            engine.stop()
