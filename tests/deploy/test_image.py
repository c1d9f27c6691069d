"""The deployment path, built and run for real: base image, BoatLoad's image, API and satellite containers.

Exactly what README "Deploy" and "Add a host" say: build the image from a wheelhouse, run the
API container against Postgres, run the join line a join token gives, see the host enrol,
create a container through the API, stop the satellite and see the host go down. All on
loopback. Every container, volume, database and BoatLoad image made here is removed at the
end; the Debian base image is kept as a cache between runs.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import psycopg2
import pytest
import requests

import docker
from tests.conftest import IMAGE_NAME, IMAGE_TAG, ROOT, RUN_ID, free_port, wait_until

pytestmark = pytest.mark.slow
BASE_IMAGE = "boatload-test/bookworm-python:latest"
IMAGE = f"boatload-test/boatload:{RUN_ID}"
DATABASE = f"boatload_deploy_{RUN_ID}"
HOST_ADDRESS = "127.0.0.41"


def run(command, **kwargs):
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=600, **kwargs)


def build_base_image(client):
    """Debian bookworm with python3, from debootstrap into a folder and `docker import`; cached."""
    try:
        client.images.get(BASE_IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    if not shutil.which("debootstrap"):
        run(["apt-get", "install", "-y", "-qq", "debootstrap"])
    root = tempfile.mkdtemp(prefix="boatload-rootfs-")
    try:
        run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv,ca-certificates", "bookworm", root,
             "http://deb.debian.org/debian"])
        run(f"tar -C {root} -c . | docker import -c 'ENV LANG=C.UTF-8' "
            f"-c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - {BASE_IMAGE}", shell=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def image():
    """README "Deploy", step 1: the wheelhouse, then `docker build` on the base image."""
    client = docker.from_env()
    build_base_image(client)
    run([sys.executable, "-m", "pip", "wheel", "-q", "-r", "requirements.txt", "-w", "docker/wheelhouse"],
        cwd=ROOT)
    run(["docker", "build", "-q", "-f", "docker/Dockerfile", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
         "-t", IMAGE, "."], cwd=ROOT)
    yield IMAGE
    client.images.remove(IMAGE, force=True)


@pytest.fixture(scope="module")
def database():
    url = os.environ["DATABASE_URL"]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{DATABASE}"')
    yield url.rsplit("/", 1)[0] + f"/{DATABASE}"
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
    admin.close()


def test_the_image_runs_the_api_and_a_satellite_joins_in_one_line(image, database):
    client = docker.from_env()
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    made = []
    try:
        # README "Deploy": the API container (it migrates on start).
        api = client.containers.run(image, ["api"], detach=True, network_mode="host", name=f"bl-api-{RUN_ID}",
                                    environment={
                                        "DATABASE_URL": database, "BOATLOAD_SECRET_KEY": "deploy-test-secret-key",
                                        "BOATLOAD_ADMIN_PASSWORD": "deploy-pass-1", "BOATLOAD_BIND": "127.0.0.1",
                                        "BOATLOAD_PORT": str(port), "BOATLOAD_PUBLIC_URL": api_url,
                                        "BOATLOAD_HOST_DOWN_AFTER": "6s", "BOATLOAD_SATELLITE_IMAGE": image})
        made.append(api)

        def api_up():
            api.reload()
            assert api.status != "exited", api.logs().decode()[-2000:]
            try:
                return requests.get(f"{api_url}/healthz", timeout=1).ok
            except requests.ConnectionError:
                return False
        wait_until(api_up, timeout=90, message="the API container")
        assert requests.get(f"{api_url}/static/admin/css/base.css", timeout=5).status_code == 200
        token = requests.post(f"{api_url}/v1/auth/token/", json={"username": "admin", "password": "deploy-pass-1"},
                              timeout=10).json()["access"]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"

        # README "Add a host": a join token, and the one line it shows, run as it is.
        join = session.post(f"{api_url}/v1/jointoken/", json={"note": "deploy test"}, timeout=10).json()
        assert join["join_command"].startswith("docker run") and join["token"] in join["join_command"]
        run(["sh", "-c", f'HOST_ADDRESS={HOST_ADDRESS}; {join["join_command"]}'])
        satellite = client.containers.get("boatload-satellite")
        made.append(satellite)

        def active_host():
            hosts = session.get(f"{api_url}/v1/host/", timeout=10).json()["results"]
            return hosts[0] if hosts and hosts[0]["state"] == "active" and hosts[0]["healthy"] else None
        host = wait_until(active_host, timeout=60, message="the satellite to enrol")
        assert host["satellite_url"] == f"https://{HOST_ADDRESS}:7051" and host["transport"] == "https-pinned"

        created = session.post(f"{api_url}/v1/container/", json={
            "image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "command": ["echo", "hello from the image"],
            "labels": {"deploy-test-run": RUN_ID}}, timeout=60)
        assert created.status_code == 201, created.text
        container_id = created.json()["id"]

        def output():
            text = session.get(f"{api_url}/v1/container/{container_id}/stdout", timeout=10).text
            return text if text else None
        assert wait_until(output, timeout=30, message="the container's output") == "hello from the image\n"
        session.delete(f"{api_url}/v1/container/{container_id}/", timeout=30)

        satellite.stop(timeout=5)

        def down():
            hosts = session.get(f"{api_url}/v1/host/", timeout=10).json()["results"]
            return hosts[0]["state"] == "down"
        wait_until(down, timeout=30, message="the host to be marked down")
    finally:
        for container in made:
            container.remove(force=True, v=True)
        for volume in client.volumes.list(filters={"name": "boatload-satellite"}):
            volume.remove(force=True)


def test_check_deploy_is_clean_behind_tls():
    env = {**os.environ, "BOATLOAD_SECRET_KEY": "a" * 20 + "-deploy-check-secret-key-long-enough-50-chars",
           "BOATLOAD_TLS": "1", "BOATLOAD_DEBUG": "0"}
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_requests_carry_an_id_into_the_logs(client, db):
    answer = client.get("/healthz", HTTP_X_REQUEST_ID="trace-me-42")
    assert answer["X-Request-ID"] == "trace-me-42"
    assert len(client.get("/healthz")["X-Request-ID"]) == 16


def test_the_compose_file_holds_every_role_with_health_checks():
    import yaml

    compose = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "api", "reconcile", "genisys", "satellite"}
    assert services["api"]["command"] == ["api"] and "healthcheck" in services["api"]
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["satellite"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in services["satellite"]["volumes"]
    assert "satellite:/var/lib/boatload" in services["satellite"]["volumes"]
    assert services["satellite"]["user"] == "root"
    assert "BOATLOAD_SECRET_KEY_FILE" in services["api"]["environment"]
