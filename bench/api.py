"""API benchmarks, in one run on this machine: a real API server (gunicorn, Postgres) and real satellites.

  create through the API end to end vs docker SDK create+start: median ratio (target <= 1.10)
  list 100 of 10,000 rows: SQL queries (in-process, same code path) and median latency over HTTP
  cluster-wide container listing over three hosts vs one host: median ratio (target <= 1.3)

Run: make bench   (or .venv/bin/python -m bench.api); needs Postgres as `make test` starts it.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["DJANGO_SETTINGS_MODULE"] = "boatload.settings"
os.environ.setdefault("BOATLOAD_SECRET_KEY", "bench-secret-key")
os.environ.setdefault("DATABASE_URL", "postgres://boatload:boatload@127.0.0.1:5432/boatload_bench")

import psycopg2  # noqa: E402

from bench.common import ROOT, TEST_IMAGE, median, remove_run_containers, start_satellite, timed  # noqa: E402


def ensure_database():
    url = os.environ["DATABASE_URL"]
    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if not cursor.fetchone():
            cursor.execute(f'CREATE DATABASE "{name}"')
    admin.close()


def server_seconds(log, request):
    """Request durations (seconds) that gunicorn logged for `request` (last field of each line)."""
    return [float(line.rsplit(" ", 1)[1].rstrip("s\n")) for line in Path(log).read_text().splitlines()
            if request in line] or [0.0]


def main():
    ensure_database()
    import django

    django.setup()
    import docker
    import requests
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from boatload.models import Container, Host
    from tests.conftest import free_port, wait_until

    call_command("migrate", verbosity=0)
    Container.objects.all().delete()
    Host.objects.all().delete()
    users = get_user_model()
    users.objects.filter(username="bench").delete()
    user = users.objects.create_user("bench", password="bench-password-1")
    satellites = [start_satellite(f"bench-{n}", SATELLITE_ACCESS_LOG="1") for n in range(3)]
    for satellite in satellites:
        Host.objects.create(name=satellite.name, satellite_url=satellite.url, key_id=satellite.key_id,
                            secret=satellite.secret, last_seen=timezone.now())
    port = free_port()
    access_log = Path(tempfile.mkdtemp(prefix="boatload-bench-api-")) / "access.log"
    api = subprocess.Popen([sys.executable, "-m", "gunicorn", "boatload.wsgi", "--bind", f"127.0.0.1:{port}",
                            "--worker-class", "gthread", "--threads", "16", "--workers", "2", "--no-control-socket",
                            "--log-level", "warning", "--access-logfile", str(access_log),
                            "--access-logformat", "%(r)s %(s)s %(L)s"], cwd=ROOT, env=os.environ)
    base = f"http://127.0.0.1:{port}"
    client = docker.from_env()
    try:
        def api_up():
            assert api.poll() is None, "the API server exited"
            try:
                return requests.get(f"{base}/healthz", timeout=1).ok
            except requests.ConnectionError:
                return False

        wait_until(api_up, message="the API")
        token = requests.post(f"{base}/v1/auth/token/", json={"username": "bench",
                                                                "password": "bench-password-1"}).json()["access"]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        keep_alive = lambda: [Host.objects.update(last_seen=timezone.now())]  # noqa: E731 (no heartbeats here)

        # 1. create end to end vs raw SDK create+start
        image_name, tag = TEST_IMAGE.rsplit(":", 1)
        label = {"boatload.test-run": satellites[0].env["SATELLITE_CONTAINER_LABELS"].split("=")[1]}

        def raw():
            created = client.api.create_container(TEST_IMAGE, command=["true"], labels=label)
            client.api.start(created["Id"])

        def through_api():
            answer = session.post(f"{base}/v1/container/", json={"image_name": image_name, "image_tag": tag,
                                                                   "command": ["true"], "host": "bench-0"})
            assert answer.status_code == 201, answer.text

        raw(), through_api()
        raw_times, api_times = [], []
        for _ in range(15):
            keep_alive()
            raw_times.append(timed(raw)[0])
            api_times.append(timed(through_api)[0])
        print(f"create        raw SDK median {median(raw_times) * 1000:.0f} ms, API end to end median "
              f"{median(api_times) * 1000:.0f} ms, ratio {median(api_times) / median(raw_times):.3f} (target <= 1.10)")
        api_side = server_seconds(access_log, "POST /v1/container/")
        satellite_side = server_seconds(satellites[0].log_path, "POST /containers")
        print(f"              as the servers log it: API {median(api_side) * 1000:.0f} ms of which satellite "
              f"{median(satellite_side) * 1000:.0f} ms (its own engine calls included)")

        # 2. list 100 of 10,000 rows
        host = Host.objects.get(name="bench-0")
        Container.objects.bulk_create([Container(owner=user, host=host, image_name="img", name=f"bl-b{n}",
                                                 state="exited") for n in range(10_000 - Container.objects.count())],
                                      batch_size=2000)
        local = Client(HTTP_HOST="127.0.0.1")
        local.force_login(user)
        with CaptureQueriesContext(connection) as queries:
            assert len(local.get("/v1/container/?limit=100").json()["results"]) == 100
        latency = median([timed(lambda: session.get(f"{base}/v1/container/?limit=100").json())[0]
                          for _ in range(20)])
        print(f"list          100 of {Container.objects.count()} rows: {len(queries)} SQL queries, "
              f"median {latency * 1000:.1f} ms over HTTP")

        # 3. cluster-wide listing: three hosts vs one
        def cluster():
            keep_alive()
            answer = session.get(f"{base}/v1/container/cluster/").json()
            assert not answer["failures"], answer["failures"]

        cluster()
        three = median([timed(cluster)[0] for _ in range(15)])
        Host.objects.exclude(name="bench-0").update(state="draining")
        one = median([timed(cluster)[0] for _ in range(15)])
        print(f"cluster list  three hosts median {three * 1000:.1f} ms, one host {one * 1000:.1f} ms, "
              f"ratio {three / one:.2f} (target <= 1.3)")
    finally:
        api.terminate()
        api.wait()
        for satellite in satellites:
            satellite.stop()
        remove_run_containers(client)
        time.sleep(0)


if __name__ == "__main__":
    main()
