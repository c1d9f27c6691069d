"""The host's samples are kept warm: the first /stats call answers from frames read before it.

Without warming, the satellite opens a container's stats stream when first asked, so every
frame of that first answer is read after the call began. With SATELLITE_STATS_WARM_INTERVAL
the satellite has opened the streams of its running containers itself: the frame it answers
with was read before the call.
"""
from datetime import UTC, datetime

import pytest

from tests.conftest import SatelliteProcess, wait_until
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
