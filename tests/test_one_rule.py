"""One rule, one place: Docker state → row state on the model, host liveness and the
satellite's query parameters, each read the same way by the API and satellites (the staff policy:
tests/satellite/test_containers.py and tests/api/test_containers.py)."""
from datetime import timedelta

import pytest
from django.utils import timezone

from boatload.models import Container, Host
from satellite.connector import docker_backend
from tests.satellite.helpers import create


@pytest.mark.parametrize("status, exit_code, state", [
    ("running", None, "running"), ("restarting", None, "running"), ("paused", None, "running"),
    ("exited", 3, "exited"), ("dead", 137, "exited"), ("created", None, "pending"), ("removing", None, "pending"),
])
def test_a_container_records_what_dockers_state_means(users, status, exit_code, state):
    row = Container.objects.create(owner=users["owner"], image_name="x", name=f"bl-{status}")
    changed = row.observe({"Status": status, "ExitCode": exit_code}, docker_id="abc")
    row.refresh_from_db()
    assert (row.state, changed) == (state, state != "pending")
    assert row.exit_code == (exit_code if state == "exited" else None)


def test_the_connector_backend_counts_as_up_what_the_row_calls_running():
    assert set(docker_backend.DOCKER_UP) == {"running", "restarting", "paused"}


def test_a_host_marked_down_is_not_healthy_even_right_after_a_heartbeat(db):
    host = Host.objects.create(name="flaky", satellite_url="http://127.0.0.1:1", key_id="hk_flaky", secret="s",
                               state=Host.State.DOWN, last_seen=timezone.now())
    assert not host.is_healthy
    host.state = Host.State.ACTIVE
    assert host.is_healthy
    host.last_seen = timezone.now() - timedelta(days=1)
    assert not host.is_healthy


def test_the_satellites_query_parameters_are_read_by_serializers(sat):
    made = create(sat, command=["true"], start=False)
    assert made.status_code == 201, made.text
    for path, query, field in [("containers", {"all": "maybe"}, "all"),
                               (f"containers/{made.json()['container']}/archive", {"compression": "zip"},
                                "compression")]:
        answer = sat.get(f"{sat.base}/{path}", params=query)
        assert answer.status_code == 400 and answer.json()["error"]["detail"]["field"] == field, answer.text
    sat.delete(f"{sat.base}/containers/{made.json()['container']}")
