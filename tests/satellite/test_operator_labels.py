"""Trust I, 3: labels the operator sets on a satellite win over a user's, and reserved keys stay theirs."""
import pytest

from tests.conftest import RUN_LABEL, SatelliteProcess
from tests.satellite.helpers import create


@pytest.fixture(scope="module")
def policed(tmp_path_factory):
    """A satellite whose operator labels every container with a tenant and reserves com.example.*."""
    process = SatelliteProcess(tmp_path_factory.mktemp("policed"), name="sat-policed", env={
        "SATELLITE_CONTAINER_LABELS": f"{RUN_LABEL},tenant=ops",
        "SATELLITE_RESERVED_LABEL_PREFIXES": "com.example.",
    }).start()
    session = process.signed()
    session.base = process.url
    yield session
    process.stop()


@pytest.mark.parametrize("key", ["tenant", "com.example.billing", "boatload.test-run", "boatload.owner"])
def test_a_user_can_not_set_an_operator_label(policed, docker_client, key):
    answer = create(policed, command=["true"], labels={key: "mine", "marker": "operator-labels"})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["detail"]["field"] == f"labels.{key}" or key.startswith("boatload.")
    assert docker_client.containers.list(all=True, filters={"label": "marker=operator-labels"}) == []


def test_operator_labels_are_on_every_container_beside_the_users_own(policed, docker_client):
    answer = create(policed, command=["true"], labels={"team": "blue"})
    assert answer.status_code == 201, answer.text
    labels = docker_client.api.inspect_container(answer.json()["id"])["Config"]["Labels"]
    assert labels["tenant"] == "ops" and labels["team"] == "blue"
    assert labels["boatload.container"] == answer.json()["container"]
