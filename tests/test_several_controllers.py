"""Several API servers and reconcilers at once on one Postgres (issue 18, item 6).

Two API processes (gunicorn) and two reconcilers of each kind (`manage.py reconcile`,
`manage.py genisys`) run together against one real satellite and engine. Clients create
containers and scale a service through both APIs at once while the four loops pass over the
same rows. After a fixed number of passes of every loop, what the engine holds must be exactly
what the rows say: no twin container, no lost or reaped create, the last scale order standing.
"""
import itertools
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import IMAGE_NAME, IMAGE_TAG, ROOT, RUN_ID, end_process, jwt_for, wait_until
from tests.live import ApiServer, live_world

pytestmark = pytest.mark.slow
SERVICE = f"many-{RUN_ID[:8]}"
PASSES = 8  # of every loop, after the last change


@pytest.fixture(scope="module")
def cluster(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from genisys.models import Compute, Service

    def rows(host, satellite):
        staff = get_user_model().objects.create_user("many-staff", password="many-pass-1", is_staff=True)
        Compute.objects.create(name="only", connector=satellite.url)
        Service.objects.create(name=SERVICE, image=f"{IMAGE_NAME}:{IMAGE_TAG}", command="sleep 600", owner=staff)
        return {"staff": staff}

    folder = tmp_path_factory.mktemp("several")
    with live_world(django_db_blocker, folder, host_name="several-host", rows=rows) as world:
        second = ApiServer(folder / "api-2.log", settings.DATABASES["default"]["NAME"])
        second.env.update(world["server"].env)
        second.start()
        loops = []
        try:
            for kind, number in itertools.product(("reconcile", "genisys"), (1, 2)):
                log = open(folder / f"{kind}-{number}.log", "ab")
                loops.append((subprocess.Popen([sys.executable, "manage.py", kind, "--interval", "0.3"], cwd=ROOT,
                                               env=world["server"].env, stdout=log, stderr=subprocess.STDOUT), log))
            yield {**world, "apis": [world["server"], second], "loops": loops, "folder": folder}
        finally:
            for process, log in loops:
                end_process(process)
                log.close()
            second.stop()


def passes(loop):
    from observe.models import LoopStat

    stat = LoopStat.objects.filter(loop=loop).first()
    return stat.passes if stat else 0


def after_passes(cluster, count=PASSES):
    """Wait until each loop kind has made `count` more passes (two processes each: 2 x count in all)."""
    start = {loop: passes(loop) for loop in ("reconcile", "genisys")}
    for loop, before in start.items():
        wait_until(lambda loop=loop, before=before: passes(loop) >= before + 2 * count, timeout=120,
                   message=f"{count} passes of each {loop} loop")
    for process, _ in cluster["loops"]:
        assert process.poll() is None, (cluster["folder"] / "reconcile-1.log").read_text()[-3000:]


@pytest.mark.django_db
def test_two_apis_and_four_loops_leave_exactly_what_the_rows_say(cluster, docker_client):
    from boatload.models import Container
    from genisys.models import Desired

    token = jwt_for(cluster["staff"])
    sessions = []
    for api in cluster["apis"]:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        session.base = api.url
        sessions.append(session)

    def create(index):
        session = sessions[index % 2]
        return session.post(f"{session.base}/v1/container/", json={
            "image_name": IMAGE_NAME, "image_tag": IMAGE_TAG, "command": ["sleep", "600"],
            "name": f"many-{RUN_ID[:8]}-{index}"}, timeout=60)

    def scale(step):
        index, number = step
        session = sessions[index % 2]
        return session.post(f"{session.base}/service/{SERVICE}/scale", json={"number": number}, timeout=60)

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(create, range(8)))
        scaled = list(pool.map(scale, enumerate([4, 2, 5, 3, 1, 4])))
    assert [answer.status_code for answer in made] == [201] * 8, [answer.text for answer in made]
    assert all(answer.status_code in (200, 409) for answer in scaled), [answer.text for answer in scaled]
    last = scale((1, 3))  # the last word, from the second API
    assert last.status_code == 200, last.text
    after_passes(cluster)

    rows = {str(row.uuid): row for row in Container.objects.filter(name__startswith=f"many-{RUN_ID[:8]}-")}
    assert len(rows) == 8 and {row.state for row in rows.values()} == {"running"}
    held = docker_client.containers.list(all=True, filters={"label": "boatload.container"})
    ours = [c for c in held if c.labels.get("boatload.container") in rows]
    assert sorted(c.labels["boatload.container"] for c in ours) == sorted(rows)  # each row once: no twin, none reaped
    assert all(c.status == "running" for c in ours)

    assert Desired.objects.get(service__name=SERVICE).number == 3
    slots = docker_client.containers.list(all=True, filters={"label": f"boatload.service={SERVICE}"})
    assert sorted(c.name for c in slots) == [f"bl-{SERVICE}-{slot}" for slot in range(3)]
    assert all(c.status == "running" for c in slots)
    status = sessions[0].get(f"{sessions[0].base}/service/{SERVICE}/status", timeout=30).json()
    assert status["running_resources"] == 3
    for session in sessions:
        session.close()
