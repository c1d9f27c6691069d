"""Trust II, 8: what a container controls is read in bounded pieces: its script, its diff, its files."""
from urllib.parse import quote

import pytest

from tests.api.helpers import b64, create

pytestmark = pytest.mark.slow
FILES = 100_000


@pytest.fixture
def many_files(api, host, docker_client):
    """A container that wrote 100,000 files under /out and exited."""
    script = f"mkdir -p /out && cd /out && seq 1 {FILES} | xargs touch && echo x > /out/1"
    made = create(api("owner"), script=b64(script))
    assert made.status_code == 201, made.json()
    assert docker_client.api.wait(made.json()["docker_id"], timeout=240)["StatusCode"] == 0
    return made.json()["id"]


def test_changes_and_files_of_100000_files_come_in_pages(api, many_files):
    owner = api("owner")
    first = owner.get(f"/v1/container/{many_files}/file", {"limit": 100})
    assert first.status_code == 200
    page = first.json()
    assert 0 < len(page) <= 100 and first["X-Next-Cursor"] and 'rel="next"' in first["Link"]
    second = owner.get(f"/v1/container/{many_files}/file", {"limit": 100, "cursor": first["X-Next-Cursor"]}).json()
    assert second and second[0]["path"] > page[-1]["path"] and second[0]["number"] > page[-1]["number"]
    by_number = owner.get(f"/v1/container/{many_files}/filebynum/{second[0]['number']}")
    assert by_number.status_code == 200 and by_number["X-BoatLoad-Path"] == quote(second[0]["path"])
    changes = owner.get(f"/v1/container/{many_files}/changes", {"limit": 500})
    assert len(changes.json()) == 500 and changes["X-Next-Cursor"]
    default = owner.get(f"/v1/container/{many_files}/changes").json()
    assert len(default) == 1000  # the default page, not 100,000 entries
    assert owner.get(f"/v1/container/{many_files}/changes", {"limit": 10**6}).status_code == 400
    assert owner.get(f"/v1/container/{many_files}/changes", {"cursor": "%%%"}).status_code == 400


def test_a_script_the_container_grew_to_64_gib_is_refused_not_read(api, host, docker_client):
    owner = api("owner")
    made = create(owner, script=b64("sleep 300"))
    assert made.status_code == 201, made.json()
    grow = docker_client.api.exec_create(made.json()["docker_id"], ["truncate", "-s", "64G", "/boatload/script"])
    docker_client.api.exec_start(grow["Id"])
    answer = owner.get(f"/v1/container/{made.json()['id']}/script")
    # The API kept the script it was given: it answers that; the container's copy is read only when
    # the API has none (scripturl), and then in bounded size.
    assert answer.status_code == 200 and answer.json()["script"] == "sleep 300"


def test_a_fetched_script_the_container_grew_is_413(api, host, docker_client, file_server):
    owner = api("owner")
    url = file_server.add("/grown.sh", b"#!/bin/sh\nsleep 300\n")
    made = create(owner, scripturl=url)
    assert made.status_code == 201, made.json()
    grow = docker_client.api.exec_create(made.json()["docker_id"], ["truncate", "-s", "64G", "/boatload/script"])
    docker_client.api.exec_start(grow["Id"])
    answer = owner.get(f"/v1/container/{made.json()['id']}/script")
    assert answer.status_code == 413 and answer.json()["error"]["detail"]["field"] == "script"
