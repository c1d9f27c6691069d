"""Trust I, 1: no user reaches a container that is not theirs, BoatLoad's or not.

Victims are made with the docker SDK beside BoatLoad (no BoatLoad labels) or by another
user through the API, and checked on the engine afterwards: the satellite acts only on a
container labelled with the row's uuid, never by name or id prefix.
"""
import uuid

import pytest

from tests.api.helpers import create
from tests.conftest import IMAGE_NAME, IMAGE_TAG, RUN_LABEL

pytestmark = pytest.mark.slow


@pytest.fixture
def victim(docker_client):
    """A container someone started on the host by hand, outside BoatLoad."""
    key, value = RUN_LABEL.split("=")
    container = docker_client.containers.run(f"{IMAGE_NAME}:{IMAGE_TAG}", ["sleep", "300"], detach=True,
                                             name=f"victim-{uuid.uuid4().hex[:8]}", labels={key: value})
    yield container
    container.remove(force=True)


def still_running(container):
    container.reload()
    return container.status == "running"


@pytest.mark.parametrize("name_of", [lambda c: c.name, lambda c: c.id[:12]], ids=["name", "id-prefix"])
def test_a_failed_create_named_like_a_foreign_container_never_removes_it(api, host, victim, name_of):
    owner = api("owner")
    answer = create(owner, name=name_of(victim), image_name="boatload-test/no-such-image", command=["true"])
    assert answer.status_code in (404, 409), answer.json()
    row = answer.json()["error"]["detail"]["container"]
    assert owner.get(f"/v1/container/{row}/").json()["state"] == "failed"
    assert owner.delete(f"/v1/container/{row}/").status_code == 204
    assert still_running(victim)


def test_a_name_conflict_adopts_nothing_and_its_delete_leaves_the_other_container(api, host, victim):
    owner = api("owner")
    answer = create(owner, name=victim.name, command=["sleep", "60"])
    assert answer.status_code == 409, answer.json()
    row = answer.json()["error"]["detail"]["container"]
    assert owner.delete(f"/v1/container/{row}/").status_code == 204
    assert still_running(victim)


def test_another_users_container_survives_a_conflicting_create_and_its_delete(api, host, docker_client):
    name = f"mine-{uuid.uuid4().hex[:8]}"
    theirs = create(api("other"), name=name, command=["sleep", "300"])
    assert theirs.status_code == 201, theirs.json()
    conflict = create(api("owner"), name=name, command=["sleep", "60"])
    assert conflict.status_code == 409
    owner = api("owner")
    assert owner.delete(f"/v1/container/{conflict.json()['error']['detail']['container']}/").status_code == 204
    assert owner.get(f"/v1/container/{theirs.json()['id']}/").status_code == 404  # not theirs to see either
    assert docker_client.containers.get(theirs.json()["docker_id"]).status == "running"


def test_boatloads_own_names_are_reserved(api, host):
    for name in ("bl-web-0", "BL-web-1", f"boatload-{uuid.uuid4()}"):
        answer = create(api("owner"), name=name, command=["true"])
        assert answer.status_code == 400, name
        assert answer.json()["error"]["detail"]["field"] == "name"


def test_the_satellite_finds_containers_by_row_label_only(sat, victim):
    """Names, ids and id prefixes of a foreign container reach nothing on the satellite itself."""
    for ref in (victim.name, victim.id, victim.id[:12], str(uuid.uuid4())):
        for method, path in (("get", "logs"), ("post", "stop"), ("get", "state"), ("get", "archive")):
            answer = getattr(sat, method)(f"{sat.base}/containers/{ref}/{path}")
            assert answer.status_code == 404, (ref, path, answer.text)
        assert sat.delete(f"{sat.base}/containers/{ref}").status_code in (204, 404)
    assert still_running(victim)
