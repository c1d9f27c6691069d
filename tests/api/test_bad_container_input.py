"""Trust I, 6: bad container input answers 4xx naming the field, never 500 or a 502 blaming the engine."""
import struct
import uuid
import zipfile

import pytest
from django.test import override_settings

from boatload.models import Container
from tests.api.helpers import b64, body, create
from tests.conftest import RUN_LABEL, wait_until
from tests.satellite.helpers import make_zip

pytestmark = pytest.mark.slow


def assert_field(answer, field):
    assert answer.status_code == 400, (field, answer.status_code, answer.json())
    assert answer.json()["error"]["detail"]["field"].startswith(field), answer.json()


@pytest.mark.parametrize("ports", [["²"], ["①"], [{"port": "²"}], ["８０"], [True], [[80]]])
def test_ports_with_odd_digits_or_types(api, host, ports):
    assert_field(create(api("owner"), command=["true"], ports=ports), "ports")


@pytest.mark.parametrize("memory", [1e30, "99999999999999999999999g", 10**30, 1.5e9 + 0.5, True, "inf"])
def test_memory_out_of_range_or_of_the_wrong_type(api, host, memory):
    assert_field(create(api("owner"), command=["true"], memory=memory), "memory")
    assert not Container.objects.exists()  # refused before any row was written


def test_since_zero_means_from_the_start_and_a_huge_since_is_refused(api, host, docker_client):
    owner = api("owner")
    made = create(owner, command=["echo", "hello"])
    assert made.status_code == 201, made.json()
    docker_client.api.wait(made.json()["docker_id"], timeout=30)
    assert body(owner.get(f"/v1/container/{made.json()['id']}/stdout", {"since": 0})) == b"hello\n"
    assert_field(owner.get(f"/v1/container/{made.json()['id']}/stdout", {"since": 10**20}), "since")
    assert_field(owner.get(f"/v1/container/{made.json()['id']}/stdout", {"tail": -1}), "tail")


def test_a_stop_longer_than_the_satellite_timeout_gets_the_time_it_needs(api, host):
    owner = api("owner")
    made = create(owner, command=["sh", "-c", "trap '' TERM; while :; do sleep 1; done"])
    assert made.status_code == 201, made.json()
    with override_settings(SATELLITE_TIMEOUT=1):
        stopped = owner.post(f"/v1/container/{made.json()['id']}/stop?timeout=3")
    assert stopped.status_code == 200, stopped.json()
    assert stopped.json()["state"] == "exited"
    assert_field(owner.post(f"/v1/container/{made.json()['id']}/stop?timeout=100000"), "timeout")


def test_a_changed_file_whose_name_holds_a_newline_streams_with_a_safe_disposition(api, host, docker_client):
    owner = api("owner")
    made = create(owner, script=b64("mkdir -p /out; printf data > \"/out/a\nb\\\"c.txt\""))
    assert made.status_code == 201, made.json()
    docker_client.api.wait(made.json()["docker_id"], timeout=30)
    listed = owner.get(f"/v1/container/{made.json()['id']}/file").json()
    [entry] = [item for item in listed if item["path"].startswith("/out/")]
    assert entry["path"] == '/out/a\nb"c.txt'
    answer = owner.get(f"/v1/container/{made.json()['id']}/filebynum/{entry['number']}")
    assert answer.status_code == 200 and answer.streaming
    assert body(answer) == b"data"
    disposition = answer["Content-Disposition"]
    assert "\n" not in disposition and disposition == "attachment; filename*=utf-8''a%0Ab%22c.txt"


def deflate64_zip():
    """A zip whose one member claims compression method 9 (deflate64), which zipfile can not read."""
    data = bytearray(make_zip({"a.txt": b"A" * 100}))
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        at = data.find(signature)
        data[at + offset:at + offset + 2] = struct.pack("<H", 9)
    return bytes(data)


def bad_crc_zip():
    data = bytearray()
    with zipfile.ZipFile(_Sink(data), "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("a.txt", b"the content")
    at = data.find(b"the content")
    data[at] ^= 0xFF  # the stored bytes no longer match their CRC
    return bytes(data)


class _Sink:
    def __init__(self, buffer):
        self.buffer = buffer

    def write(self, chunk):
        self.buffer.extend(chunk)
        return len(chunk)

    def tell(self):
        return len(self.buffer)

    def flush(self):
        pass


@pytest.mark.parametrize("make", [deflate64_zip, bad_crc_zip, lambda: b"PK\x03\x04 not really a zip"],
                         ids=["deflate64", "bad-crc", "truncated"])
def test_a_corrupt_data_zip_is_400_and_leaves_no_container(api, host, file_server, docker_client, make):
    url = file_server.add(f"/{uuid.uuid4().hex}.zip", make())
    marker = uuid.uuid4().hex
    answer = create(api("owner"), command=["true"], dataurl=url, labels={"marker": marker})
    assert_field(answer, "dataurl")
    assert docker_client.containers.list(all=True, filters={"label": [f"marker={marker}", RUN_LABEL]}) == []
    wait_until(lambda: Container.objects.get(uuid=answer.json()["error"]["detail"]["container"]).state == "failed")
