"""No HTML from any error path, DEBUG on or off: every error leaves in the one JSON shape.

Before common.errors.JsonErrorMiddleware, DEBUG (which `make run` turned on) answered a
wrong Host header with Django's HTML debug page (traceback, settings, file paths), and the
admin's and the browsable API's errors were HTML with DEBUG off too.
"""
import subprocess
import sys

import pytest
import requests
from django.test import override_settings

from tests.conftest import ROOT, free_port, wait_until

SHAPE = {"code", "message", "detail"}


def assert_json_error(answer, status, code=None):
    assert answer.status_code == status, answer.content[:300]
    assert answer["Content-Type"].startswith("application/json"), answer.content[:300]
    error = answer.json()["error"]
    assert set(error) == SHAPE
    if code:
        assert error["code"] == code
    return error


@pytest.mark.parametrize("debug", [True, False])
def test_a_wrong_host_header_gets_a_json_400(client, db, debug):
    with override_settings(DEBUG=debug):
        answer = client.get("/v1/host/", HTTP_HOST="evil.example")
    assert_json_error(answer, 400, "bad_request")
    assert b"Traceback" not in answer.content and b"<html" not in answer.content.lower()


@pytest.mark.parametrize("debug", [True, False])
def test_unknown_and_odd_paths_get_a_json_404(client, users, debug):
    client.login(username="staff", password="staff-pass-1")
    users["staff"].is_superuser = True
    users["staff"].save()
    with override_settings(DEBUG=debug):
        for path in ["/nope", "/v1/container/not-a-uuid/", "/admin/no-such-app/", "/static/no-such-file.css",
                     "/v1/container/00000000-0000-4000-8000-000000000001/"]:
            assert_json_error(client.get(path, HTTP_ACCEPT="text/html"), 404, "not_found")


@pytest.mark.parametrize("debug", [True, False])
def test_the_browsable_api_errors_are_json_too(client, users, debug):
    client.login(username="owner", password="owner-pass-1")
    with override_settings(DEBUG=debug):
        answer = client.get("/v1/auth/token/", HTTP_ACCEPT="text/html")
        assert_json_error(answer, 405, "method_not_allowed")
        assert "POST" in answer["Allow"]
        assert_json_error(client.post("/v1/jointoken/", {}, HTTP_ACCEPT="text/html"), 403)


@pytest.mark.parametrize("debug", [True, False])
def test_405_415_and_406_are_in_the_error_shape_whatever_the_client_accepts(api, debug):
    client, staff = api("owner"), api("staff")
    with override_settings(DEBUG=debug):
        for accept in ["application/json", "text/html"]:
            assert_json_error(client.delete("/v1/auth/token/", HTTP_ACCEPT=accept), 405, "method_not_allowed")
            assert_json_error(staff.post("/v1/jointoken/", "<a/>", content_type="application/xml", HTTP_ACCEPT=accept),
                              415, "unsupported_media_type")
        assert_json_error(client.get("/v1/host/", HTTP_ACCEPT="application/xml"), 406, "not_acceptable")


def test_a_csrf_failure_is_json(client, users):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.login(username="staff", password="staff-pass-1")
    assert_json_error(strict.post("/admin/logout/"), 403, "permission_denied")


def test_make_run_does_not_turn_debug_on():
    recipe = subprocess.run(["make", "-n", "-W", "requirements.txt", "run"], cwd=ROOT, capture_output=True,
                            text=True).stdout
    assert "manage.py runlocal" in recipe and "BOATLOAD_DEBUG" not in recipe


@pytest.mark.parametrize("debug", ["0", "1"])
def test_a_real_server_serves_static_files_and_json_errors_only(tmp_path, debug):
    """gunicorn as `make run` starts it: static files from collectstatic, errors as JSON, DEBUG on or off."""
    env = {"PATH": "/usr/bin:/bin", "BOATLOAD_VAR_DIR": str(tmp_path), "BOATLOAD_SECRET_KEY": "test-key-" + "x" * 40,
           "BOATLOAD_DEBUG": debug, "DJANGO_SETTINGS_MODULE": "boatload.settings"}
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "boatload.wsgi", "--bind", f"127.0.0.1:{port}",
                               "--workers", "1", "--no-control-socket"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return requests.get(f"{base}/static/admin/css/base.css", timeout=1)
        except requests.RequestException:
            return None

    try:
        static = wait_until(up, message="gunicorn")
        assert static.status_code == 200 and "text/css" in static.headers["Content-Type"]
        for headers, path, status in [({"Host": "evil.example"}, "/v1/host/", 400), ({}, "/no/such/path", 404),
                                      ({"Accept": "text/html"}, "/static/no-such.css", 404),
                                      ({"Accept": "text/html"}, "/v1/host/", 401)]:
            answer = requests.get(base + path, headers=headers, timeout=5)
            assert answer.status_code == status, (path, answer.text[:300])
            assert answer.headers["Content-Type"].startswith("application/json"), (path, answer.text[:300])
            assert set(answer.json()["error"]) == SHAPE
    finally:
        server.terminate()
        server.wait(10)


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_a_change_to_an_unknown_path_is_a_json_404_not_a_csrf_403(db, method):
    from django.test import Client

    answer = getattr(Client(enforce_csrf_checks=True), method)("/no/such/path", data="{}",
                                                               content_type="application/json")
    assert_json_error(answer, 404, "not_found")


def test_an_unknown_format_is_a_400_naming_the_field(api):
    answer = api("staff").get("/v1/audit/?format=AAA")
    assert_json_error(answer, 400, "invalid")
    assert answer.json()["error"]["detail"]["field"] == "format"
    assert api("staff").get("/v1/audit/?format=csv").status_code == 200
