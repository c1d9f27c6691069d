"""Trust II, 6: open follow streams and slow clients never pin a worker of the API or the satellite.

The real API (gunicorn with boatload/gunicorn_conf.py) and a real satellite hold more follow
streams, and more connections that never finish their headers, than the old thread pools had
threads (API 2 x 16, satellite 32); /healthz of both must still answer. bench/streams.py
measures the same at 1,000 streams and 200 slow connections, with the latency and memory.
"""
import pytest
import requests

from tests.conftest import IMAGE_NAME, IMAGE_TAG, wait_until
from tests.connections import open_follow, open_slow
from tests.live import live_world

pytestmark = pytest.mark.slow
STREAMS = 120
SLOW = 80


@pytest.fixture(scope="module")
def served(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.contrib.auth import get_user_model

    from boatload import services

    def rows(host, satellite):
        user = get_user_model().objects.create_user("streamer", password="streamer-pass-1")
        _, [(row, error)] = services.container_create_request(
            user=user, fields={"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "command": ["sleep", "600"]})
        assert error is None, error
        return {"row": row}

    with live_world(django_db_blocker, tmp_path_factory.mktemp("serving"), host_name="serving-host",
                    rows=rows) as world:
        yield world


@pytest.mark.django_db  # sets up the test database; the rows the API sees are committed by `served`
def test_healthz_answers_beside_many_open_streams_and_slow_clients(served):
    server, satellite = served["server"], served["satellite"]
    token = requests.post(f"{server.url}/v1/auth/token/", json={"username": "streamer",
                                                                "password": "streamer-pass-1"}).json()["access"]
    path = f"/v1/container/{served['row'].uuid}/stdout?follow=true"
    sockets = []
    try:
        sockets += [open_follow(server.port, path, token) for _ in range(STREAMS)]
        sockets += [open_slow(server.port) for _ in range(SLOW)] + [open_slow(satellite.port) for _ in range(SLOW)]
        assert requests.get(f"{server.url}/healthz", timeout=10).status_code == 200
        assert requests.get(f"{satellite.url}/healthz", timeout=10).status_code == 200
        info = satellite.signed().get(f"{satellite.url}/info", timeout=10).json()["satellite"]
        assert info["open_streams"] == STREAMS  # every stream reached the satellite and is still open
    finally:
        for sock in sockets:
            sock.close()
    wait_until(lambda: satellite.signed().get(f"{satellite.url}/info").json()["satellite"]["open_streams"] == 0,
               timeout=30, message="the streams to close with their clients")
