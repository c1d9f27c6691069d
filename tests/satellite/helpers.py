"""Small helpers for satellite tests."""
import base64
import io
import uuid
import zipfile

from tests.conftest import IMAGE_NAME, IMAGE_TAG


def spec(**fields):
    return {"image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, **fields}


def create(sat, identity=None, as_staff=False, start=True, **fields):
    """POST /containers as the API does: the identity names the row (a fresh uuid unless given).
    The answer's `container` is that uuid, by which the satellite's container paths find it."""
    identity = {"container": str(uuid.uuid4()), **(identity or {})}
    return sat.post(f"{sat.base}/containers", json={**spec(**fields), "identity": identity,
                                                    "as_staff": as_staff, "start": start}, timeout=60)


def b64(text):
    return base64.b64encode(text.encode()).decode()


def make_zip(entries):
    """A zip in memory from {name: bytes}, or (ZipInfo, bytes) pairs for special entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        items = entries.items() if isinstance(entries, dict) else entries
        for name, data in items:
            archive.writestr(name, data)
    return buffer.getvalue()


def wait_exit(docker_client, container_id, timeout=30):
    return docker_client.api.wait(container_id, timeout=timeout)["StatusCode"]
