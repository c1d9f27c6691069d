"""Per-user API keys (issue 14, item 7): made, shown once, hashed at rest, used as `Authorization: Token`,
revoked, expiring, with a last-used time, scoped to their user, throttled like logins."""
from datetime import timedelta

import pytest
import requests
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from boatload.logins.models import APIKey
from tests.api.test_edge_throttle import assert_throttled


def make_key(client, name="ci", **fields):
    answer = client.post("/v1/apikey/", {"name": name, **fields}, format="json")
    assert answer.status_code == 201, answer.content
    return answer.json()


def with_key(api, key, header="Authorization"):
    client = api()
    client.credentials(**({"HTTP_AUTHORIZATION": f"Token {key}"} if header == "Authorization"
                          else {"HTTP_X_API_KEY": key}))
    return client


def assert_refused(answer):
    assert answer.status_code == 401, answer.content
    assert set(answer.json()["error"]) == {"code", "message", "detail"}


def test_a_key_is_shown_once_and_only_its_hash_is_stored(api):
    owner = api("owner")
    made = make_key(owner)
    key = made["key"]
    assert key.startswith("blk_") and made["name"] == "ci" and made["user"] == "owner" and made["last_used"] is None
    secret = key.partition(".")[2]
    assert len(secret) >= 32
    listed = owner.get("/v1/apikey/").json()["results"]
    assert [row["id"] for row in listed] == [made["id"]] and "key" not in listed[0]
    assert "key" not in owner.get(f"/v1/apikey/{made['id']}").json()
    with connection.cursor() as cursor:  # no column of any table holds the key or its secret
        cursor.execute("SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = "
                       "'public' AND data_type IN ('text', 'character varying')")
        for table, column in cursor.fetchall():
            cursor.execute(f'SELECT count(*) FROM "{table}" WHERE "{column}" LIKE %s', [f"%{secret}%"])
            assert cursor.fetchone()[0] == 0, (table, column)
    assert APIKey.objects.get(prefix=made["id"]).hashed_key.startswith("sha512$$")


def test_a_key_acts_as_its_user_in_either_header(api, users):
    key = make_key(api("owner"))["key"]
    for header in ("Authorization", "X-API-Key"):
        answer = with_key(api, key, header).get("/v1/container/")
        assert answer.status_code == 200, answer.content
    answer = with_key(api, key).post("/v1/template/", {"name": "t", "body": {"Image": "x"}}, format="json")
    assert answer.status_code == 403  # the owner's rights, not more: templates are staff's
    assert_refused(with_key(api, key + "x").get("/v1/container/"))
    assert_refused(with_key(api, "blk_nosuchkey.secret").get("/v1/container/"))
    assert_refused(api().get("/v1/container/", HTTP_AUTHORIZATION="Token"))


def test_a_key_works_over_http_against_the_api_server(live_server, api):
    key = make_key(api("owner"))["key"]
    answer = requests.get(f"{live_server.url}/service", headers={"Authorization": f"Token {key}"}, timeout=10)
    assert answer.status_code == 200 and answer.json() == {}
    answer = requests.get(f"{live_server.url}/service", timeout=10)
    assert answer.status_code == 401


def test_each_use_records_the_last_used_time(api):
    owner = api("owner")
    made = make_key(owner)
    assert APIKey.objects.get(prefix=made["id"]).last_used is None
    with_key(api, made["key"]).get("/v1/container/")
    first = APIKey.objects.get(prefix=made["id"]).last_used
    assert first is not None and first >= APIKey.objects.get(prefix=made["id"]).created
    with_key(api, made["key"]).get("/v1/container/")
    second = APIKey.objects.get(prefix=made["id"]).last_used
    assert second > first
    assert owner.get(f"/v1/apikey/{made['id']}").json()["last_used"] == second.isoformat().replace("+00:00", "Z")


def test_a_revoked_key_is_refused_and_stays_listed_as_revoked(api):
    owner = api("owner")
    made = make_key(owner)
    other_key = make_key(owner, "other-job")["key"]
    answer = owner.post(f"/v1/apikey/{made['id']}/revoke")
    assert answer.status_code == 200 and answer.json()["revoked"] is True
    assert_refused(with_key(api, made["key"]).get("/v1/container/"))
    assert with_key(api, other_key).get("/v1/container/").status_code == 200  # only that key
    assert {row["id"]: row["revoked"] for row in owner.get("/v1/apikey/").json()["results"]}[made["id"]] is True


def test_an_expired_key_is_refused(api):
    owner = api("owner")
    made = make_key(owner, expires=(timezone.now() + timedelta(hours=1)).isoformat())
    assert with_key(api, made["key"]).get("/v1/container/").status_code == 200
    APIKey.objects.filter(prefix=made["id"]).update(expiry_date=timezone.now() - timedelta(seconds=1))
    assert_refused(with_key(api, made["key"]).get("/v1/container/"))


def test_a_key_of_a_deactivated_user_is_refused(api, users):
    key = make_key(api("owner"))["key"]
    users["owner"].is_active = False
    users["owner"].save()
    assert_refused(with_key(api, key).get("/v1/container/"))


def test_other_users_keys_are_invisible_and_staff_see_all(api):
    owner, other, staff = api("owner"), api("other"), api("staff")
    mine = make_key(owner)
    theirs = make_key(other)
    assert [row["id"] for row in other.get("/v1/apikey/").json()["results"]] == [theirs["id"]]
    for call in (other.get(f"/v1/apikey/{mine['id']}"), other.post(f"/v1/apikey/{mine['id']}/revoke")):
        assert call.status_code == 404 and call.json()["error"]["code"] == "not_found"
    assert APIKey.objects.get(prefix=mine["id"]).revoked is False
    assert {row["id"] for row in staff.get("/v1/apikey/").json()["results"]} == {mine["id"], theirs["id"]}
    assert staff.post(f"/v1/apikey/{mine['id']}/revoke").json()["revoked"] is True


def test_keys_are_managed_with_a_password_login_only(api):
    key = make_key(api("owner"))["key"]
    assert_refused(with_key(api, key).post("/v1/apikey/", {"name": "more"}, format="json"))
    assert_refused(with_key(api, key).get("/v1/apikey/"))
    assert APIKey.objects.count() == 1


@pytest.mark.parametrize("body, field", [
    ({}, "name"), ({"name": ""}, "name"), ({"name": "x" * 51}, "name"), ({"name": ["a"]}, "name"),
    ({"name": "ci", "expires": "tomorrow"}, "expires"),
    ({"name": "ci", "expires": "2001-01-01T00:00:00Z"}, "expires"),
])
def test_bad_input_is_400_naming_the_field_and_makes_no_key(api, body, field):
    answer = api("owner").post("/v1/apikey/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["detail"]["field"] == field
    assert APIKey.objects.count() == 0


def test_wrong_keys_are_throttled_per_address_and_then_the_right_key_is_refused_too(api, settings):
    cache.clear()
    settings.LOGIN_RATE_ADDRESS = "3/m"
    key = make_key(api("owner"))["key"]
    for _ in range(5):  # right keys do not count
        assert with_key(api, key).get("/v1/container/").status_code == 200
    for number in range(3):
        assert_refused(with_key(api, f"blk_wrong{number}.secret").get("/v1/container/"))
    assert_throttled(with_key(api, "blk_wrong9.secret").get("/v1/container/"))
    assert_throttled(with_key(api, key).get("/v1/container/"))
    other_address = with_key(api, key).get("/v1/container/", REMOTE_ADDR="127.0.0.9")
    assert other_address.status_code == 200


def test_making_and_revoking_keys_is_throttled_per_user(api, settings):
    cache.clear()
    settings.LOGIN_RATE_USER, settings.LOGIN_RATE_ADDRESS = "2/m", "100/m"
    owner = api("owner")
    made = make_key(owner)
    assert owner.post(f"/v1/apikey/{made['id']}/revoke").status_code == 200
    assert_throttled(owner.post("/v1/apikey/", {"name": "third"}, format="json"))
    assert APIKey.objects.count() == 1
    assert owner.get("/v1/apikey/").status_code == 200  # reading is not throttled
    make_key(api("other"))  # another user is not


def test_the_schema_describes_api_keys_and_their_throttle(api):
    schema = api("staff").get("/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["components"]["securitySchemes"]["apiKey"]["in"] == "header"
    assert "429" in schema["paths"]["/service/{name}/scale/"]["post"]["responses"]
    assert "429" in schema["paths"]["/v1/apikey/"]["post"]["responses"]
    assert {"201", "400", "401", "429"} <= set(schema["paths"]["/v1/apikey/"]["post"]["responses"])
    assert {"200", "401", "404", "429"} <= set(schema["paths"]["/v1/apikey/{id}/revoke/"]["post"]["responses"])
