"""Logins and token refresh are throttled per user and per client address: 429 with Retry-After.

Before boatload/logins/throttles.py every wrong password answered 401, however many came.
"""
from django.db import connection
from rest_framework_simplejwt.tokens import RefreshToken


def login(client, username, password="wrong-password", **extra):
    return client.post("/v1/auth/token/", {"username": username, "password": password}, format="json", **extra)


def assert_throttled(answer):
    assert answer.status_code == 429, answer.content
    error = answer.json()["error"]
    assert error["code"] == "throttled" and set(error) == {"code", "message", "detail"}
    assert int(answer["Retry-After"]) >= 1 and error["detail"]["retry_after"] == int(answer["Retry-After"])


def test_logins_are_throttled_per_username_tried(api, users, settings):
    settings.LOGIN_RATE_USER, settings.LOGIN_RATE_ADDRESS = "3/m", "100/m"
    client = api()
    assert [login(client, "owner").status_code for _ in range(3)] == [401, 401, 401]
    assert_throttled(login(client, "owner"))
    assert_throttled(login(client, "owner", "owner-pass-1"))  # the right password does not get through either
    assert login(client, " OWNER ").status_code == 429  # nor the same name written otherwise
    assert login(client, "other").status_code == 401  # another user is not locked out


def test_logins_are_throttled_per_client_address_whatever_x_forwarded_for_says(api, users, settings):
    settings.LOGIN_RATE_USER, settings.LOGIN_RATE_ADDRESS = "100/m", "4/m"
    client = api()
    for number in range(4):
        assert login(client, f"user{number}", HTTP_X_FORWARDED_FOR=f"10.0.0.{number}").status_code == 401
    assert_throttled(login(client, "user9", HTTP_X_FORWARDED_FOR="10.0.0.99"))
    assert login(client, "user9", REMOTE_ADDR="127.0.0.9").status_code == 401  # another address is not


def test_token_refresh_is_throttled_per_user(api, users, settings):
    settings.LOGIN_RATE_USER, settings.LOGIN_RATE_ADDRESS = "2/m", "100/m"
    client = api()
    tokens = [str(RefreshToken.for_user(users["owner"])) for _ in range(3)]
    for token in tokens[:2]:
        assert client.post("/v1/auth/token/refresh/", {"refresh": token}, format="json").status_code == 200
    assert_throttled(client.post("/v1/auth/token/refresh/", {"refresh": tokens[2]}, format="json"))
    other = str(RefreshToken.for_user(users["other"]))
    assert client.post("/v1/auth/token/refresh/", {"refresh": other}, format="json").status_code == 200


def test_the_throttle_counters_live_in_the_database_cache_every_worker_shares(api, users, settings):
    settings.LOGIN_RATE_USER = "1/m"
    login(api(), "owner")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM boatload_cache")
        assert cursor.fetchone()[0] >= 2  # the address and the user counter, visible to any process


def test_the_admin_and_session_login_forms_are_throttled_too(client, users, settings):
    settings.LOGIN_RATE_USER, settings.LOGIN_RATE_ADDRESS = "2/m", "100/m"
    for path in ["/admin/login/", "/v1/auth/session/login/"]:
        form = {"username": f"staff-{path}", "password": "wrong"}
        assert [client.post(path, form).status_code for _ in range(2)] == [200, 200]  # the form again, with errors
        assert_throttled(client.post(path, form))
    assert client.post("/admin/login/", {"username": "staff", "password": "staff-pass-1"}).status_code == 302
