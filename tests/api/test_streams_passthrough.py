"""The API passes a satellite's stream on as it came: its chunks whole, not cut to smaller reads."""
import hashlib
import io
import tarfile

import pytest

from tests.api.helpers import b64, create
from tests.conftest import wait_until

pytestmark = pytest.mark.slow
MiB = 1024 * 1024


def test_an_archive_passes_through_the_api_in_the_satellites_mib_chunks(api, fleet_hosts):
    owner = api("owner")
    made = create(owner, script=b64("mkdir -p /out && dd if=/dev/urandom of=/out/big bs=1048576 count=8 "
                                    "2>/dev/null && sha256sum /out/big"), host="host-a")
    assert made.status_code == 201, made.json()
    cid = made.json()["id"]
    wait_until(lambda: owner.get(f"/v1/container/{cid}/state").json()["docker_state"].get("Status") == "exited",
               timeout=60, message="the container to exit")
    digest = b"".join(owner.get(f"/v1/container/{cid}/stdout").streaming_content).split()[0].decode()
    answer = owner.get(f"/v1/container/{cid}/archive")
    assert answer.status_code == 200 and answer.streaming
    chunks = [chunk for chunk in answer.streaming_content if chunk]
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:") as archive:
        assert hashlib.sha256(archive.extractfile("out/big").read()).hexdigest() == digest
    # The satellite sends the file's data in 1 MiB chunks; the API hands each on whole (64 KiB
    # reads made 128 chunks of it, each one more trip through the server).
    sizes = [len(chunk) for chunk in chunks]
    assert sizes.count(MiB) >= 8, sizes
    assert len(sizes) <= 8 + 6, sizes
