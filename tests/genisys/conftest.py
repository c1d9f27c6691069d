"""Genisys fixtures: two satellites on two Docker engines, a Swarm engine, and Consul (or its stand-in)."""
import shutil
import subprocess
import uuid

import pytest
import requests
from django.utils import timezone

from tests.conftest import SatelliteProcess, free_port, wait_until
from tests.consul_standin import ConsulStandIn


@pytest.fixture(scope="session")
def connectors(tmp_path_factory, engines):
    """{name: satellite}: gen-a on the main engine, gen-b on extra engine 1."""
    satellites = {
        "gen-a": SatelliteProcess(tmp_path_factory.mktemp("gen-a"), name="gen-a", address="127.0.0.31"),
        "gen-b": SatelliteProcess(tmp_path_factory.mktemp("gen-b"), name="gen-b", address="127.0.0.32",
                                  env={"DOCKER_HOST": engines(1).docker_host}),
    }
    for satellite in satellites.values():
        satellite.start()
    yield satellites
    for satellite in satellites.values():
        satellite.stop()


@pytest.fixture
def hosts(db, connectors):
    """Host rows of the connector satellites, so computes pointing at them are signed."""
    from boatload.models import Host

    rows = {}
    for name, satellite in connectors.items():
        if satellite.process.poll() is not None:
            satellite.start()
        rows[name] = Host.objects.create(name=name, satellite_url=satellite.url, key_id=satellite.key_id,
                                         secret=satellite.secret, last_seen=timezone.now())
    return rows


@pytest.fixture
def service_name():
    return f"svc{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def swarm_satellite(tmp_path_factory, engines):
    """A satellite with SATELLITE_CONNECTOR=swarm on extra engine 3, made a Swarm manager."""
    engine = engines(3)
    # Its own listen port: Swarm's default 2377 is shared by every test run on this machine.
    address = f"127.0.0.1:{free_port()}"
    init = subprocess.run(["docker", "-H", engine.docker_host, "swarm", "init", "--advertise-addr", address,
                           "--listen-addr", address], capture_output=True, text=True)
    assert init.returncode == 0 or "already part of a swarm" in init.stderr, init.stderr
    satellite = SatelliteProcess(tmp_path_factory.mktemp("swarm"), name="swarm-mgr", address="127.0.0.33",
                                 env={"DOCKER_HOST": engine.docker_host, "SATELLITE_CONNECTOR": "swarm"}).start()
    yield satellite, engine
    satellite.stop()
    client = engine.client()
    for service in client.services.list():
        service.remove()
    subprocess.run(["docker", "-H", engine.docker_host, "swarm", "leave", "--force"], capture_output=True)


@pytest.fixture(scope="session")
def consul_server(tmp_path_factory):
    """`consul agent -dev` when the binary is on PATH; else the stand-in in tests/consul_standin.py."""
    if shutil.which("consul"):
        port = free_port()
        process = subprocess.Popen(["consul", "agent", "-dev", "-http-port", str(port), "-bind", "127.0.0.1",
                                    "-data-dir", str(tmp_path_factory.mktemp("consul"))],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up():
            try:
                return requests.get(f"http://127.0.0.1:{port}/v1/status/leader", timeout=1).json()
            except (requests.RequestException, ValueError):
                return None
        wait_until(up, timeout=30, message="consul agent -dev")

        class Agent:
            host, kind = "127.0.0.1", "consul agent -dev"

        Agent.port = port
        yield Agent
        process.terminate()
        process.wait(10)
    else:
        standin = ConsulStandIn()
        standin.kind = "stand-in"
        yield standin
        standin.close()


@pytest.fixture
def original_connector():
    """A stand-in of genisys-connector-docker 0.1.0 (empty 200 bodies, 501 for unknown services)."""
    from tests.genisys.connector_standin import OriginalConnectorStandIn

    standin = OriginalConnectorStandIn(address="127.0.0.35")
    yield standin
    standin.close()
