"""Trust II, 9 and 10: a create the API gave up on, or whose processes died mid-way, converges.

The interrupted states are made for real on the engine (containers labelled with a row's
uuid, created and never started, or running without the row knowing), exactly what a
SIGKILL of API, satellite and reconciler between the create steps leaves behind.
"""
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import override_settings

from boatload.models import Container
from tests.conftest import FILE_SERVER_ADDRESS, IMAGE_NAME, IMAGE_TAG, RUN_LABEL, SatelliteProcess, long_ago

pytestmark = pytest.mark.slow


def labelled(docker_client, row_uuid):
    return docker_client.containers.list(all=True, filters={"label": f"boatload.container={row_uuid}"})


def run_labels(row_uuid, satellite):
    key, value = RUN_LABEL.split("=")
    return {"boatload.container": str(row_uuid), "boatload.owner": "owner", key: value, **satellite.own_labels()}


def test_pending_rows_whose_create_died_are_settled_by_the_reconciler(users, host, satellite, docker_client):
    from boatload.management.commands.reconcile import Command

    def pending_row():
        return Container.objects.create(owner=users["owner"], host=host, image_name=IMAGE_NAME, image_tag=IMAGE_TAG,
                                        state="pending", name=f"boatload-{uuid.uuid4()}")

    never_started, started, nothing, in_flight = pending_row(), pending_row(), pending_row(), pending_row()
    image = f"{IMAGE_NAME}:{IMAGE_TAG}"
    docker_client.containers.create(image, ["sleep", "300"], labels=run_labels(never_started.uuid, satellite))
    running = docker_client.containers.run(image, ["sleep", "300"], detach=True,
                                           labels=run_labels(started.uuid, satellite))
    docker_client.containers.create(image, ["sleep", "300"], labels=run_labels(in_flight.uuid, satellite))
    Container.objects.exclude(pk=in_flight.pk).update(updated=long_ago(600))

    Command().process_one_host(host)

    never_started.refresh_from_db()
    assert never_started.state == "failed" and "interrupted" in never_started.last_error
    assert labelled(docker_client, never_started.uuid) == []
    started.refresh_from_db()
    assert started.state == "running" and started.docker_id == running.id
    nothing.refresh_from_db()
    assert nothing.state == "failed"
    in_flight.refresh_from_db()
    assert in_flight.state == "pending" and len(labelled(docker_client, in_flight.uuid)) == 1  # may still be made


class SlowScriptServer:
    """Serves a script after `delay` seconds on the test satellites' fetch address."""

    def __init__(self, delay):
        served = self.served = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                time.sleep(delay)
                body = b"#!/bin/sh\nsleep 300\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                served.set()

        self.server = ThreadingHTTPServer((FILE_SERVER_ADDRESS, 0), Handler)
        self.url = f"http://{FILE_SERVER_ADDRESS}:{self.server.server_address[1]}/slow.sh"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_create_the_api_gave_up_on_leaves_no_container(api, users, db, tmp_path, docker_client):
    """The API waits 3 s; the script takes 5 s to fetch: the satellite stops at its deadline."""
    from boatload.models import Host

    satellite = SatelliteProcess(tmp_path, name="sat-deadline", env={"SATELLITE_FETCH_TIMEOUT": "30"}).start()
    slow = SlowScriptServer(delay=5)
    try:
        from django.utils import timezone

        Host.objects.create(name=satellite.name, satellite_url=satellite.url, key_id=satellite.key_id,
                            secret=satellite.secret, state="active", last_seen=timezone.now())
        with override_settings(SATELLITE_TIMEOUT=3):
            answer = api("owner").post("/v1/container/", {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG,
                                                          "scripturl": slow.url}, format="json")
        assert answer.status_code == 504, answer.json()
        row = answer.json()["error"]["detail"]["container"]
        assert Container.objects.get(uuid=row).state == "failed"
        assert slow.served.wait(10)
        time.sleep(2)  # a satellite without a deadline would now create and start the container
        assert labelled(docker_client, row) == []
    finally:
        slow.close()
        satellite.stop()
