"""BOATLOAD_LOG_FORMAT=json: the API under gunicorn, a satellite and the reconcilers' commands write one JSON
object a line, with the request id, the user, the host and (access lines) the duration."""
import json
import os
import socket
import subprocess
import sys

import pytest
import requests

from tests.conftest import ROOT, SatelliteProcess, jwt_for, wait_until
from tests.live import ApiServer


def json_lines(text):
    """Every line of `text` as an object; a line that is not JSON fails the test."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return parsed


@pytest.fixture
def json_api(transactional_db, tmp_path):
    """The API under gunicorn with JSON logs, and a user of committed rows (a transactional test)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("logged-user", password="logged-pass-1")
    server = ApiServer(tmp_path / "api.log", settings.DATABASES["default"]["NAME"])
    server.env.update({"BOATLOAD_LOG_FORMAT": "json"})
    server.start()
    yield server, user
    server.stop()


def test_the_api_writes_json_lines_with_request_id_user_host_and_duration(json_api):
    server, user = json_api
    answer = requests.get(f"{server.url}/v1/container/", headers={"Authorization": f"Bearer {jwt_for(user)}",
                                                                  "X-Request-ID": "json-log-test-1"}, timeout=10)
    assert answer.status_code == 200
    wait_until(lambda: "json-log-test-1" in server.log_path.read_text(), message="the access line")
    lines = json_lines(server.log_path.read_text())
    [access] = [line for line in lines if line.get("request_id") == "json-log-test-1"
                and line["logger"] == "boatload.access"]
    assert access["level"] == "INFO"
    assert (access["user"], access["method"], access["path"], access["status"]) == (
        "logged-user", "GET", "/v1/container/", 200)
    assert access["host"] == socket.gethostname() and access["duration_ms"] > 0 and access["time"]
    assert any(line["logger"].startswith("gunicorn") for line in lines)  # gunicorn's own lines too


def test_a_satellite_writes_json_lines_with_the_user_it_serves(tmp_path):
    satellite = SatelliteProcess(tmp_path / "sat", name="json-sat",
                                 env={"SATELLITE_LOG_FORMAT": "json", "SATELLITE_ACCESS_LOG": "1"}).start()
    try:
        with satellite.signed() as session:
            answer = session.get(f"{satellite.url}/containers", params={"as_user": "alice"},
                                 headers={"X-Request-ID": "json-log-sat-1"}, timeout=10)
        assert answer.status_code == 200
        wait_until(lambda: "json-log-sat-1" in satellite.log_path.read_text(), message="the access line")
        lines = json_lines(satellite.log_path.read_text())
        [access] = [line for line in lines if line.get("request_id") == "json-log-sat-1"
                    and line["logger"] == "boatload.access"]
        assert (access["user"], access["host"], access["status"]) == ("alice", "json-sat", 200)
        assert access["duration_ms"] > 0
    finally:
        satellite.stop()


def test_a_reconcilers_log_lines_are_json(tmp_path):
    run = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                          "import logging; logging.getLogger('boatload.loop').warning('a pass failed')"],
                         cwd=ROOT, capture_output=True, text=True, env={**os.environ, "BOATLOAD_LOG_FORMAT": "json"})
    assert run.returncode == 0, run.stderr
    [line] = [line for line in json_lines(run.stderr) if line["message"] == "a pass failed"]  # stdout: the shell's
    assert (line["logger"], line["level"], line["request_id"], line["user"]) == ("boatload.loop", "WARNING", "-", "-")


def test_an_unknown_log_format_stops_the_start():
    run = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "BOATLOAD_LOG_FORMAT": "xml"})
    assert run.returncode != 0 and "BOATLOAD_LOG_FORMAT" in run.stderr
