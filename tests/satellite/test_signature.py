"""Every satellite request must be signed, fresh, unreplayed and untampered; else 401 before Docker."""
import json
import time
import uuid

import requests

from common.signing import MAX_SKEW, HmacAuth, sign_headers
from tests.conftest import IMAGE_NAME, IMAGE_TAG


def create_body(marker):
    return json.dumps({"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "command": ["true"],
                       "labels": {"marker": marker}, "identity": {"container": str(uuid.uuid4())}}).encode()


def containers_marked(docker_client, marker):
    return docker_client.containers.list(all=True, sparse=True, filters={"label": f"marker={marker}"})


def post_create(satellite, body, **sign_kwargs):
    key_id = sign_kwargs.pop("key_id", satellite.key_id)
    secret = sign_kwargs.pop("secret", satellite.secret)
    signed_body = sign_kwargs.pop("signed_body", body)
    headers = sign_headers(secret, key_id, "POST", "/containers", "", signed_body, **sign_kwargs)
    return requests.post(f"{satellite.url}/containers", data=body,
                         headers={**headers, "Content-Type": "application/json"}, timeout=30)


def test_a_good_signature_passes(satellite, docker_client):
    answer = post_create(satellite, create_body("good"))
    assert answer.status_code == 201, answer.text
    assert len(containers_marked(docker_client, "good")) == 1


def test_a_replayed_nonce_is_refused(satellite, docker_client):
    body = create_body("replay")
    assert post_create(satellite, body, nonce="n-replay-1").status_code == 201
    answer = post_create(satellite, body, nonce="n-replay-1")
    assert answer.status_code == 401
    assert "replayed" in answer.json()["error"]["message"]
    assert len(containers_marked(docker_client, "replay")) == 1


def test_a_skew_past_the_window_is_refused_and_one_inside_it_passes(satellite, docker_client):
    # Timestamps are whole seconds and the request takes time: 5 s either side of the edge keep
    # the test about the window, not about the machine's speed.
    for skew in (-MAX_SKEW - 5, MAX_SKEW + 5):
        answer = post_create(satellite, create_body("skew"), timestamp=time.time() + skew)
        assert answer.status_code == 401, answer.text
        assert "too far" in answer.json()["error"]["message"]
    assert containers_marked(docker_client, "skew") == []
    for skew in (-MAX_SKEW + 5, MAX_SKEW - 5):
        assert post_create(satellite, create_body("inside"), timestamp=time.time() + skew).status_code == 201
    assert len(containers_marked(docker_client, "inside")) == 2


def test_an_altered_body_is_refused(satellite, docker_client):
    answer = post_create(satellite, create_body("altered"), signed_body=create_body("original"))
    assert answer.status_code == 401
    assert containers_marked(docker_client, "altered") == containers_marked(docker_client, "original") == []


def test_a_wrong_key_is_refused(satellite, docker_client):
    assert post_create(satellite, create_body("wrongkey"), secret="not-the-secret").status_code == 401
    assert post_create(satellite, create_body("wrongkey"), key_id="hk_unknown").status_code == 401
    assert containers_marked(docker_client, "wrongkey") == []


def test_unsigned_requests_are_refused_but_healthz_answers(satellite):
    assert requests.get(f"{satellite.url}/containers", timeout=10).status_code == 401
    assert requests.get(f"{satellite.url}/info", timeout=10).json()["error"]["code"] == "authentication_failed"
    assert requests.get(f"{satellite.url}/healthz", timeout=10).json() == {"status": "ok", "docker": "ok"}


def test_the_query_string_is_signed(satellite):
    session = requests.Session()
    prepared = session.prepare_request(requests.Request("GET", f"{satellite.url}/containers?all=1",
                                                        auth=HmacAuth(satellite.key_id, satellite.secret)))
    prepared.url = f"{satellite.url}/containers?all=0"
    assert session.send(prepared).status_code == 401
