"""The engine under a running satellite goes down and comes back: named while down, resumed after."""
import uuid

import requests
from django.utils import timezone

from tests.conftest import RUN_LABEL, SatelliteProcess, wait_until
from tests.engines import ExtraEngine
from tests.satellite.helpers import spec

ENGINE_INDEX = 7  # an extra engine of its own: this test stops and starts it


def create(session, url, **fields):
    body = spec(**({"command": ["sleep", "60"]} if "script" not in fields else {}), **fields)
    return session.post(f"{url}/containers", timeout=60, json={**body, "identity": {"container": str(uuid.uuid4())},
                                                                "as_staff": False, "start": True})


def test_an_engine_that_goes_down_after_start_is_named_and_the_satellite_resumes(tmp_path, api):
    engine = ExtraEngine(ENGINE_INDEX).start()
    satellite = SatelliteProcess(tmp_path, name="sat-flaky-engine", env={"DOCKER_HOST": engine.docker_host})
    try:
        satellite.start()
        session = satellite.signed()
        first = create(session, satellite.url)  # the satellite has used (and cached) its client
        assert first.status_code == 201, first.text

        engine.stop()
        for fields in ({}, {"name": "bl-named"}, {"script": "ZWNobyBoaQ=="}):
            answer = create(session, satellite.url, **fields)
            assert answer.status_code == 502, (fields, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "engine_unavailable", (fields, error)
            assert error["detail"]["remote"] == "sat-flaky-engine"
        for path in ("/containers", f"/containers/{first.json()['container']}/state", "/info"):
            answer = session.get(f"{satellite.url}{path}", timeout=30)
            assert answer.status_code == 502 and answer.json()["error"]["code"] == "engine_unavailable", path
        assert requests.get(f"{satellite.url}/healthz", timeout=10).status_code == 503
        # Through the API: the same 502 naming the host, and the row records the failure.
        from boatload.models import Container, Host

        Host.objects.create(name=satellite.name, satellite_url=satellite.url, key_id=satellite.key_id,
                            secret=satellite.secret, state=Host.State.ACTIVE, last_seen=timezone.now())
        answer = api("owner").post("/v1/container/", {**spec(command=["sleep", "60"]), "name": "api-named"},
                                   format="json")
        assert answer.status_code == 502, answer.content
        assert answer.json()["error"]["code"] == "engine_unavailable", answer.json()
        assert answer.json()["error"]["detail"]["remote"] == "sat-flaky-engine"
        assert list(Container.objects.values_list("state", flat=True)) == ["failed"]
        assert "docker engine of sat-flaky-engine is down" in satellite.read_log()

        engine.start()
        wait_until(satellite.healthy, timeout=30, message="the satellite to see its engine again")
        again = create(session, satellite.url)
        assert again.status_code == 201, again.text
        assert "docker engine of sat-flaky-engine answers again" in satellite.read_log()
    finally:
        satellite.stop()
        if engine.process and engine.process.poll() is None:
            client = engine.client()
            for container in client.containers.list(all=True, sparse=True, filters={"label": RUN_LABEL}):
                container.remove(force=True, v=True)
        engine.stop()
