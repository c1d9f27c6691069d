"""Trust II, 10: service slots converge after a scale that was killed mid-way."""
import uuid

from tests.conftest import IMAGE_NAME, IMAGE_TAG


def test_a_slot_left_created_by_a_killed_scale_is_replaced(sat, docker_client):
    """A scale killed between create and start leaves `created` slots; the next pass makes them run."""
    service = f"svc{uuid.uuid4().hex[:8]}"
    session, base = sat, sat.base
    assert session.post(f"{base}/service", json={"name": service, "image": f"{IMAGE_NAME}:{IMAGE_TAG}",
                                                 "command": "sleep 300"}).status_code == 201
    assert session.post(f"{base}/service/{service}/scale", json={"number": 3}).json() == {"running_resources": 3}
    [slot2] = docker_client.containers.list(filters={"label": [f"boatload.service={service}", "boatload.slot=2"]})
    labels, name = slot2.labels, slot2.name
    slot2.remove(force=True)
    docker_client.containers.create(f"{IMAGE_NAME}:{IMAGE_TAG}", ["sleep", "300"], name=name, labels=labels)
    assert session.get(f"{base}/service/{service}/status").json() == {"running_resources": 2}
    assert session.post(f"{base}/service/{service}/scale", json={"number": 3}).json() == {"running_resources": 3}
    session.post(f"{base}/service/{service}/scale", json={"number": 0})
