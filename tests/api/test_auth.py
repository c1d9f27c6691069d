"""Authentication of the API: JWT, session, and 401 everywhere but /healthz."""
import re
from datetime import timedelta

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework_simplejwt.tokens import AccessToken

PUBLIC = {"/healthz", "/v1/auth/token/", "/v1/auth/token/refresh/", "/v1/auth/token/verify/", "/v1/auth/token/revoke/",
          "/v1/host/enrol/",
          # hooks: the secret in the path is the credential (a wrong one: 404)
          "/hooks/{secret}/", "/service/{name}/scale/{secret}/"}


def test_a_user_obtains_and_refreshes_a_token(api, users):
    client = api()
    answer = client.post("/v1/auth/token/", {"username": "owner", "password": "owner-pass-1"}, format="json")
    assert answer.status_code == 200
    tokens = answer.json()
    refreshed = client.post("/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200 and refreshed.json()["access"]
    verified = client.post("/v1/auth/token/verify/", {"token": refreshed.json()["access"]}, format="json")
    assert verified.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {refreshed.json()['access']}")
    assert client.get("/v1/host/").status_code == 200


def test_a_wrong_password_gets_401_in_the_error_shape(api, users):
    answer = api().post("/v1/auth/token/", {"username": "owner", "password": "nope"}, format="json")
    assert answer.status_code == 401
    assert set(answer.json()["error"]) == {"code", "message", "detail"}


def test_an_expired_token_gets_401(api, users):
    token = AccessToken.for_user(users["owner"])
    token.set_exp(lifetime=-timedelta(seconds=1))
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    answer = client.get("/v1/host/")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "token_not_valid"


def test_session_login_works_for_the_browsable_api(client, users):
    assert client.login(username="owner", password="owner-pass-1")
    assert client.get("/v1/host/", HTTP_ACCEPT="text/html").status_code == 200


def schema_operations():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, methods in schema["paths"].items():
        for method in methods:
            yield path, method


@pytest.mark.django_db
def test_every_endpoint_but_the_public_ones_needs_authentication(api):
    client = api()
    checked = 0
    for path, method in schema_operations():
        if path in PUBLIC:
            continue
        concrete = path.replace("{uuid}", "00000000-0000-4000-8000-000000000001")
        concrete = re.sub(r"\{(number|id)\}", "1", concrete)
        concrete = concrete.replace("{action}", "pause")  # a deployment's actions: pause, resume, rollback
        concrete = concrete.replace("{container}", "a" * 64)  # a service slot's docker id
        concrete = re.sub(r"\{[^}]+\}", "x1", concrete)
        answer = getattr(client, method)(concrete, {}, format="json")
        assert answer.status_code == 401, f"{method.upper()} {concrete} answered {answer.status_code}"
        assert answer.json()["error"]["code"] == "not_authenticated"
        checked += 1
    assert checked >= 8


@pytest.mark.django_db
def test_healthz_answers_without_authentication_and_checks_the_database(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.json()["database"] == "ok"


@pytest.mark.django_db
def test_unknown_paths_get_the_json_error_shape(client):
    answer = client.get("/v1/no-such-thing/")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_the_admin_user_gets_a_generated_password_printed_once(db, capsys, monkeypatch):
    from django.contrib.auth import authenticate
    from django.core.management import call_command

    monkeypatch.delenv("BOATLOAD_ADMIN_PASSWORD", raising=False)
    monkeypatch.delenv("ADMINHASH", raising=False)
    call_command("ensure_admin")
    out = capsys.readouterr().out
    password = re.search(r"password (\S+)", out).group(1)
    assert authenticate(username="admin", password=password).is_superuser
    assert authenticate(username="admin", password="admin") is None
    call_command("ensure_admin")
    assert "left as it is" in capsys.readouterr().out
    assert authenticate(username="admin", password=password)


def test_the_admin_password_comes_from_the_environment_or_a_hash(db, monkeypatch):
    from django.contrib.auth import authenticate
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command

    monkeypatch.setenv("BOATLOAD_ADMIN_PASSWORD", "first-password-9")
    call_command("ensure_admin")
    monkeypatch.setenv("BOATLOAD_ADMIN_PASSWORD", "second-password-9")
    call_command("ensure_admin")  # the user exists: the password is still set
    assert authenticate(username="admin", password="second-password-9")
    monkeypatch.setenv("ADMINHASH", make_password("hashed-password-9"))
    call_command("ensure_admin")
    assert authenticate(username="admin", password="hashed-password-9")


def test_admin_site_is_served(client, users):
    users["staff"].is_superuser = True
    users["staff"].save()
    client.login(username="staff", password="staff-pass-1")
    assert client.get("/admin/boatload/host/").status_code == 200


@pytest.mark.django_db
def test_the_openapi_schema_validates_without_warnings(tmp_path):
    from django.core.management import call_command

    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))
    assert "/v1/host/" in (tmp_path / "schema.yml").read_text()



def test_the_docs_viewer_serves_its_own_assets(client, users):
    client.login(username="owner", password="owner-pass-1")
    page = client.get("/v1/docs/").content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist" in page and "cdn.jsdelivr" not in page


@pytest.mark.parametrize("path", ["/v1/schema/", "/v1/docs/"])
def test_the_schema_and_its_viewer_need_authentication_unless_opened(api, settings, path):
    answer = api().get(path)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "not_authenticated"
    assert api("owner").get(path).status_code == 200
    settings.PUBLIC_SCHEMA = True
    assert api().get(path).status_code == 200


def obtain(client, username, password):
    answer = client.post("/v1/auth/token/", {"username": username, "password": password}, format="json")
    assert answer.status_code == 200, answer.content
    return answer.json()


def assert_tokens_dead(client, tokens):
    refreshed = client.post("/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 401, refreshed.content
    assert set(refreshed.json()["error"]) == {"code", "message", "detail"}
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    assert client.get("/v1/host/").status_code == 401
    client.credentials()


def test_a_password_change_revokes_the_users_tokens(api, users):
    client = api()
    tokens = obtain(client, "owner", "owner-pass-1")
    other = obtain(client, "other", "other-pass-1")
    users["owner"].set_password("new-owner-pass-2")
    users["owner"].save()
    assert_tokens_dead(client, tokens)
    assert client.post("/v1/auth/token/refresh/", {"refresh": other["refresh"]}, format="json").status_code == 200
    fresh = obtain(client, "owner", "new-owner-pass-2")
    assert client.post("/v1/auth/token/refresh/", {"refresh": fresh["refresh"]}, format="json").status_code == 200


def test_a_deactivation_revokes_the_users_tokens_for_good(api, users):
    client = api()
    tokens = obtain(client, "owner", "owner-pass-1")
    users["owner"].is_active = False
    users["owner"].save(update_fields=["is_active"])
    assert_tokens_dead(client, tokens)
    users["owner"].is_active = True  # reactivated: the old refresh token stays dead
    users["owner"].save()
    refreshed = client.post("/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 401


def test_a_deleted_users_tokens_get_401_not_500(api, users):
    client = api()
    tokens = obtain(client, "owner", "owner-pass-1")
    users["owner"].delete()
    assert_tokens_dead(client, tokens)


def test_a_refresh_token_of_a_deleted_user_without_a_record_gets_401(api, users):
    from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
    from rest_framework_simplejwt.tokens import RefreshToken

    refresh = RefreshToken.for_user(users["other"])
    OutstandingToken.objects.all().delete()  # as a token issued before revocation existed
    users["other"].delete()
    answer = api().post("/v1/auth/token/refresh/", {"refresh": str(refresh)}, format="json")
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "token_not_valid"


def test_a_user_revokes_their_own_refresh_token(api, users):
    client = api()
    tokens = obtain(client, "owner", "owner-pass-1")
    assert client.post("/v1/auth/token/revoke/", {"refresh": tokens["refresh"]}, format="json").status_code == 200
    assert client.post("/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json").status_code == 401
