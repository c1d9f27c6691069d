"""The host's samples are kept warm: the first /stats call answers from frames read before it.

Without warming, the satellite opens a container's stats stream when first asked, so every
frame of that first answer is read after the call began. With SATELLITE_STATS_WARM_INTERVAL
the satellite has opened the streams of its running containers itself: the frame it answers
with was read before the call.
"""
import uuid
from datetime import UTC, datetime

import pytest

from tests.conftest import IMAGE_NAME, IMAGE_TAG, RUN_LABEL, SatelliteProcess, wait_until
from tests.engines import ExtraEngine
from tests.satellite.helpers import create


def read_time(frame):
    """The engine's `read` timestamp (RFC 3339, nanoseconds) as a datetime."""
    whole, _, fraction = frame["read"].rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{fraction[:6] or '0'}").replace(tzinfo=UTC)


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "cold"])
def test_the_first_stats_call_answers_from_frames_read_before_it(tmp_path, warm):
    satellite = SatelliteProcess(tmp_path / "sat", name=f"warm-{warm}".lower(),
                                 env={"SATELLITE_STATS_WARM_INTERVAL": "1" if warm else "0"}).start()
    session = satellite.signed()
    session.base = satellite.url
    made = None
    try:
        made = create(session, command=["sleep", "300"]).json()
        # Warming opens the stream within a second or two; give it that long, and the cold one as long.
        started = datetime.now(UTC)
        wait_until(lambda: (datetime.now(UTC) - started).total_seconds() > 3, timeout=10)
        asked = datetime.now(UTC)
        answer = session.get(f"{satellite.url}/stats", timeout=10).json()[made["id"]]
        assert answer["running"] is True
        assert (read_time(answer) < asked) is warm
        if warm:
            assert answer["cpu_percent"] is not None  # two samples already: no wait for a rate
    finally:
        if made:
            session.delete(f"{satellite.url}/containers/{made['container']}", timeout=30)
        session.close()
        satellite.stop()


# The periodic sweep runs once an hour in the tests below: only the engine's events can warm what starts.
HOURLY = {"SATELLITE_STATS_WARM_INTERVAL": "3600"}
ENGINE_INDEX = 6  # an extra engine of its own: the reconnection test stops and starts it


def streams(session, satellite):
    """The satellite's open stats streams, as its /info shows them: {Docker id: {"kept", "read", "sampled"}}."""
    return session.get(f"{satellite.url}/info", timeout=30).json()["satellite"]["stats_streams"]


def wait_warm(session, satellite, container_id, timeout=30):
    """Until the satellite keeps `container_id`'s stream and it has sampled twice (a CPU % to give)."""
    wait_until(lambda: streams(session, satellite).get(container_id) == {"kept": True, "read": True, "sampled": True},
               timeout=timeout, message=f"a kept, sampled stats stream of {container_id[:12]}")


def threads(session, satellite):
    return session.get(f"{satellite.url}/info", timeout=30).json()["satellite"]["threads"]


def wait_closed(session, satellite, container_id, threads_before=None):
    """Until the satellite shows no stream of `container_id`, and (given the count of its threads before
    the stream was opened) its reader has ended too: the engine connection is let go, not kept."""
    wait_until(lambda: container_id not in streams(session, satellite), timeout=30,
               message=f"the stats stream of {container_id[:12]} to be closed")
    if threads_before is not None:
        wait_until(lambda: threads(session, satellite) == threads_before, timeout=30,
                   message=f"the reader of {container_id[:12]}'s stream to end")


def assert_answers_warm(session, satellite, container_id):
    """One /stats call answers this container from a frame read before the call, with a CPU %."""
    asked = datetime.now(UTC)
    answer = session.get(f"{satellite.url}/stats", timeout=30).json()[container_id]
    assert answer["running"] is True
    assert read_time(answer) < asked
    assert answer["cpu_percent"] is not None


@pytest.fixture
def hourly_satellite(tmp_path):
    satellite = SatelliteProcess(tmp_path / "sat", name="warm-events", env=HOURLY).start()
    session = satellite.signed()
    session.base = satellite.url
    yield satellite, session
    session.close()
    satellite.stop()


def test_a_container_that_starts_is_kept_warm_at_once_and_closed_when_it_stops(hourly_satellite):
    satellite, session = hourly_satellite
    before = threads(session, satellite)
    made = create(session, command=["sleep", "300"]).json()
    base = f"{satellite.url}/containers/{made['container']}"
    try:
        wait_warm(session, satellite, made["id"])  # created and started by the satellite
        assert threads(session, satellite) == before + 1  # its reader
        assert_answers_warm(session, satellite, made["id"])

        assert session.post(f"{base}/stop", params={"timeout": 0}, timeout=30).status_code == 200
        wait_closed(session, satellite, made["id"], before)  # a stopped container's stream is not left open
        assert session.post(f"{base}/start", timeout=30).status_code == 200
        wait_warm(session, satellite, made["id"])
        assert session.post(f"{base}/restart", params={"timeout": 0}, timeout=30).status_code == 200
        wait_warm(session, satellite, made["id"])
        assert_answers_warm(session, satellite, made["id"])
    finally:
        session.delete(base, timeout=30)
    wait_closed(session, satellite, made["id"], before)


def test_a_container_docker_restarts_by_its_policy_is_kept_warm(hourly_satellite, docker_client):
    satellite, session = hourly_satellite
    # Its first run exits at once; Docker starts it again (restart=permanent), and then it stays up.
    script = "if [ -e /ran ]; then sleep 300; else touch /ran; exit 3; fi"
    made = create(session, command=["sh", "-c", script], restart="permanent").json()
    try:
        wait_until(lambda: docker_client.api.inspect_container(made["id"])["RestartCount"] >= 1, timeout=30,
                   message="Docker to restart the container")
        wait_warm(session, satellite, made["id"])
        assert_answers_warm(session, satellite, made["id"])
    finally:
        session.delete(f"{satellite.url}/containers/{made['container']}", timeout=30)


def test_connector_slots_are_kept_warm_as_they_start(hourly_satellite, docker_client):
    satellite, session = hourly_satellite
    service = f"warm{uuid.uuid4().hex[:8]}"
    assert session.post(f"{satellite.url}/service", json={"name": service, "image": f"{IMAGE_NAME}:{IMAGE_TAG}",
                                                          "command": "sleep 300"}, timeout=30).status_code == 201
    try:
        assert session.post(f"{satellite.url}/service/{service}/scale", json={"number": 2},
                            timeout=60).json() == {"running_resources": 2}
        slots = docker_client.containers.list(filters={"label": f"boatload.service={service}"})
        assert len(slots) == 2
        for slot in slots:
            wait_warm(session, satellite, slot.id)
    finally:
        session.post(f"{satellite.url}/service/{service}/scale", json={"number": 0}, timeout=60)
        session.delete(f"{satellite.url}/service/{service}", timeout=30)


def test_the_event_stream_is_followed_again_after_the_engine_restarts(tmp_path):
    engine = ExtraEngine(ENGINE_INDEX).start()
    satellite = SatelliteProcess(tmp_path / "sat", name="warm-engine",
                                 env={**HOURLY, "DOCKER_HOST": engine.docker_host}).start()
    session = satellite.signed()
    session.base = satellite.url
    try:
        before = create(session, command=["sleep", "300"]).json()
        wait_warm(session, satellite, before["id"])

        engine.stop()  # its containers stop with it, and the satellite's event stream ends
        engine.start()
        wait_until(satellite.healthy, timeout=60, message="the satellite to see its engine again")
        wait_closed(session, satellite, before["id"])
        after = create(session, command=["sleep", "300"]).json()
        wait_warm(session, satellite, after["id"], timeout=60)  # reconnection backs off up to 10 s
        assert_answers_warm(session, satellite, after["id"])
    finally:
        session.close()
        satellite.stop()
        if engine.process and engine.process.poll() is None:
            client = engine.client()
            for container in client.containers.list(all=True, sparse=True, filters={"label": RUN_LABEL}):
                container.remove(force=True, v=True)
        engine.stop()


def test_a_call_answers_a_warm_stream_without_waiting_for_its_second_frame(hourly_satellite):
    """A kept stream that has read one frame only (its container started under a second ago) answers
    that frame, cpu_percent null, instead of holding the call until the engine's next sample.

    An attempt tells only if the stream had read its first frame before the call and still not its
    second once the call had answered (the engine samples once a second, so a call may straddle a
    sample): a call that waits for the second frame gives no such attempt."""
    satellite, session = hourly_satellite
    answered_early = []
    for _ in range(5):
        made = create(session, command=["sleep", "300"]).json()
        try:
            young = wait_until(lambda made=made: streams(session, satellite).get(made["id"], {}).get("read") and
                               streams(session, satellite)[made["id"]], timeout=30,
                               message="the first frame of the stream kept at the container's start")
            if young["sampled"]:
                continue  # already two frames: this attempt can not tell
            answer = session.get(f"{satellite.url}/stats", timeout=30).json()[made["id"]]
            if not streams(session, satellite)[made["id"]]["sampled"]:
                assert answer["running"] is True and answer["cpu_percent"] is None, answer
                answered_early.append(answer)
        finally:
            session.delete(f"{satellite.url}/containers/{made['container']}", timeout=30)
        if answered_early:
            break
    assert answered_early, "every /stats call waited for a second frame"
