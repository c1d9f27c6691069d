"""Bad request bodies get a 4xx in the one error shape, on the API and on a satellite, never a 500.

Each body here answered 500 before boatload/parsers.py: a JSON body that is not an object,
100,000 nested arrays (RecursionError), a body over DATA_UPLOAD_MAX_MEMORY_SIZE
(RequestDataTooBig), and multipart fields holding nested JSON.
"""
import re

import pytest
from drf_spectacular.generators import SchemaGenerator

NOT_OBJECTS = ["[1, 2]", '"abc"', "123", "null", "true"]
NESTED = "[" * 100_000 + "]" * 100_000
MALFORMED = ['{"a": 1', "{bad", "\u00ff\u00fe"]
# NUL characters (JSON's \u0000), which Postgres' text and jsonb can not hold, in a value and in a key
NULS = ['{"name": "a", "labels": {"k": ["ok", "bad\\u0000"]}}', '{"environment": {"A\\u0000": "1"}}']


def assert_error(answer, status, field=""):
    assert answer.status_code == status, answer.content[:300]
    error = answer.json()["error"]
    assert set(error) == {"code", "message", "detail"}
    assert error["detail"]["field"] == field, error
    return error


def operations_with_a_body():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if "requestBody" in operation:
                concrete = path.replace("{uuid}", "00000000-0000-4000-8000-000000000001")
                yield method, re.sub(r"\{[^}]+\}", "x1", concrete)


@pytest.mark.django_db
def test_every_operation_with_a_body_refuses_bad_json_with_a_4xx(api):
    client = api("staff")
    checked = 0
    for method, path in operations_with_a_body():
        for body in [*NOT_OBJECTS, NESTED, *MALFORMED, *NULS]:
            answer = getattr(client, method)(path, body, content_type="application/json")
            assert 400 <= answer.status_code < 500, f"{method} {path} {body[:12]!r}: {answer.status_code}"
            assert set(answer.json()["error"]) == {"code", "message", "detail"}
            checked += 1
    assert checked > 50


def test_a_body_that_is_not_an_object_gets_400_naming_the_body(api):
    from boatload.models import Container, Template

    client = api("staff")
    for path in ["/v1/container/", "/v1/template/", "/service", "/v1/auth/token/", "/compute"]:
        for body in NOT_OBJECTS:
            error = assert_error(client.post(path, body, content_type="application/json"), 400)
            assert "must be a JSON object" in error["message"], (path, body)
    assert not Container.objects.exists() and not Template.objects.exists()


def test_deeply_nested_json_gets_400(api):
    client = api("staff")
    for path in ["/v1/container/", "/v1/container/raw/", "/compute", "/v1/jointoken/"]:
        error = assert_error(client.post(path, NESTED, content_type="application/json"), 400)
        assert "nested deeper" in error["message"]
    # too deep for the limit, not for Python's decoder: refused as well
    body = '{"labels": ' + "[" * 200 + "]" * 200 + "}"
    assert_error(client.post("/v1/container/", body, content_type="application/json"), 400)


def test_malformed_json_gets_400_naming_the_body(api):
    client = api("owner")
    for body in MALFORMED:
        error = assert_error(client.post("/v1/container/", body, content_type="application/json"), 400)
        assert "not valid JSON" in error["message"]


def test_a_nul_character_anywhere_in_a_body_gets_400_naming_its_path_and_makes_nothing(api):
    from boatload.models import Container, JoinToken
    from genisys.models import Service

    client = api("staff")
    for path, body, field in [
            ("/v1/container/", {"image_name": "img", "environment": {"A": "x\x00"}}, "environment.A"),
            ("/v1/container/", {"image_name": "img", "labels": {"k\x00": "v"}}, "labels.k\\0"),
            ("/v1/container/", {"image_name": "img", "command": ["sh", "-c", "\x00"]}, "command.2"),
            ("/service", {"name": "svc", "image": "img", "environment": {"A": "\x00"}}, "environment.A"),
            ("/v1/jointoken/", {"note": "\x00"}, "note")]:
        error = assert_error(client.post(path, body, format="json"), 400, field)
        assert "NUL" in error["message"], error
    assert_error(client.post("/v1/jointoken/", {"note": "a\x00b"}, format="multipart"), 400, "note")
    assert not Container.objects.exists() and not Service.objects.exists() and not JoinToken.objects.exists()


def test_a_body_over_the_upload_limit_gets_413(api, settings):
    client = api("staff")
    big = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    for path in ["/v1/container/", "/v1/template/", "/service", "/v1/auth/token/", "/v1/host/enrol/"]:
        answer = client.post(path, '{"name": "' + big + '"}', content_type="application/json")
        assert assert_error(answer, 413)["code"] == "too_large", path
    for path in ["/v1/container/", "/service", "/v1/jointoken/"]:
        assert assert_error(client.post(path, {"note": big}, format="multipart"), 413)["code"] == "too_large", path


def test_a_multipart_field_with_nested_json_gets_400_naming_it(api):
    from boatload.models import Container
    from genisys.models import Service

    client = api("staff")
    for field in ["ports", "env", "labels", "command"]:
        for value in ["[" * 100_000, "[" * 100 + "]" * 100]:
            fields = {"image_name": "boatload-test/busybox", field: value}
            assert_error(client.post("/v1/container/", fields, format="multipart"), 400, field)
    for field in ["environment", "ports"]:
        fields = {"name": "svc", "image": "boatload-test/busybox:latest", field: "[" * 100_000}
        assert_error(client.post("/service", fields, format="multipart"), 400, field)
    assert not Container.objects.exists() and not Service.objects.exists()


def test_a_good_body_still_works(api):
    for body, kwargs in [('{"note": "x", "ttl": 60}', {"content_type": "application/json"}),
                         ({"note": "y", "ttl": "60"}, {"format": "multipart"})]:
        assert api("staff").post("/v1/jointoken/", body, **kwargs).status_code == 201


# ---- the satellite: the same parser and handler ------------------------------------------------

SATELLITE_OBJECT_BODIES = [("post", "/containers"), ("post", "/containers/raw"), ("post", "/service"),
                           ("put", "/service/x1"), ("post", "/service/x1/scale")]


def test_a_satellite_refuses_bodies_that_are_not_objects(sat):
    for method, path in SATELLITE_OBJECT_BODIES:
        for body in NOT_OBJECTS:
            answer = getattr(sat, method)(sat.base + path, data=body, headers={"Content-Type": "application/json"})
            assert answer.status_code == 400, (path, body, answer.text[:300])
            assert answer.json()["error"]["detail"]["field"] == ""


def test_a_satellite_refuses_nested_and_malformed_json(sat):
    for method, path in SATELLITE_OBJECT_BODIES:
        for body in [NESTED, *MALFORMED]:
            answer = getattr(sat, method)(sat.base + path, data=body.encode(),
                                          headers={"Content-Type": "application/json"})
            assert answer.status_code == 400, (path, body[:12], answer.text[:300])
            assert answer.json()["error"]["detail"]["field"] == ""


def test_a_satellite_refuses_nul_characters_naming_their_path(sat):
    for method, path in SATELLITE_OBJECT_BODIES:
        for body, field in zip(NULS, ["labels.k.1", "environment.A\\0"]):
            answer = getattr(sat, method)(sat.base + path, data=body.encode(),
                                          headers={"Content-Type": "application/json"})
            assert answer.status_code == 400, (path, body, answer.text[:300])
            assert answer.json()["error"]["detail"]["field"] == field and "NUL" in answer.json()["error"]["message"]


def test_a_satellite_answers_413_to_a_body_over_its_limit(sat):
    body = b'{"name": "' + b"x" * (8 * 1024 * 1024) + b'"}'
    for method, path in SATELLITE_OBJECT_BODIES[:3]:
        answer = getattr(sat, method)(sat.base + path, data=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 413, (path, answer.text[:300])
        assert answer.json()["error"]["code"] == "too_large"
