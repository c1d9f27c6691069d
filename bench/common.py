"""Shared pieces of the benchmarks: a real satellite on loopback and small timing helpers."""
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "satellite.settings")

from tests.conftest import RUN_LABEL, TEST_IMAGE, PeakMemory, SatelliteProcess  # noqa: E402

# The create comparisons: ROUNDS rounds of raw, ours, ours, raw (ABBA: 80 calls a path), so
# both paths see the same engine state on average (the engine alone varies by ±20% call to
# call here, slows a little as containers pile up, and drifts over a run). The timed
# containers stay up until the comparison ends: one that exits at once is torn down while the
# next call runs (the kernel frees its network namespace in the background), and that lands
# on one path more than the other depending on timing. BENCH_COMMAND=true times those anyway.
ROUNDS = 40
COMMAND = os.environ.get("BENCH_COMMAND", "sleep 3600").split()


def start_satellite(name="bench", **env):
    return SatelliteProcess(tempfile.mkdtemp(prefix="boatload-bench-"), name=name, env=env).start()


def stop_stack(api, satellites, client):
    """End a bench's API process and satellites, and remove the containers it made."""
    api.terminate()
    api.wait()
    for satellite in satellites:
        satellite.stop()
    remove_run_containers(client)


def remove_run_containers(client):
    containers = client.containers.list(all=True, sparse=True, filters={"label": RUN_LABEL})
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda container: container.remove(force=True, v=True), containers))


def raw_create(client):
    """Create and start one timed container with the raw docker SDK: the baseline."""
    key, value = RUN_LABEL.split("=")
    created = client.api.create_container(TEST_IMAGE, command=COMMAND, labels={key: value})
    client.api.start(created["Id"])


def abba(raw, ours, before_round=lambda: None):
    """(raw times, our times) in seconds over ROUNDS ABBA rounds, after one warm-up call of each."""
    raw(), ours()
    raw_times, our_times = [], []
    for _ in range(ROUNDS):
        before_round()
        raw_times.append(timed(raw)[0])
        our_times.extend(timed(ours)[0] for _ in range(2))
        raw_times.append(timed(raw)[0])
    return raw_times, our_times


def cpu_seconds(*pids):
    """CPU seconds (user and system) so far of these processes and all their children (a gunicorn's workers);
    one that ended meanwhile is left out."""
    total = 0.0
    for pid in pids:
        root = psutil.Process(pid)
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
    return total


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def median(values):
    return statistics.median(values)


__all__ = ["COMMAND", "ROOT", "ROUNDS", "RUN_LABEL", "TEST_IMAGE", "PeakMemory", "abba", "median", "raw_create",
           "remove_run_containers", "setup_api", "start_gunicorn", "start_satellite", "timed"]


def setup_api(satellites):
    """Postgres bench database, a `bench` user, Host rows for `satellites`, and a real API server.

    Returns (base URL, authenticated requests session, API process, access log path).
    """
    import psycopg2
    import requests

    os.environ["DJANGO_SETTINGS_MODULE"] = "boatload.settings"
    os.environ.setdefault("BOATLOAD_SECRET_KEY", "bench-secret-key-that-is-long-enough-for-hs256")
    os.environ.setdefault("DATABASE_URL", "postgres://boatload:boatload@127.0.0.1:5432/boatload_bench")
    # One token for the whole bench: bench.fleet at 50 hosts runs past the default 15 minutes.
    os.environ.setdefault("BOATLOAD_ACCESS_TOKEN_LIFETIME", "6h")
    url = os.environ["DATABASE_URL"]
    admin = psycopg2.connect(url.rsplit("/", 1)[0] + "/postgres")
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [url.rsplit("/", 1)[1]])
        if not cursor.fetchone():
            cursor.execute(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"')
    admin.close()

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone

    from boatload.models import Container, Host
    from genisys.models import Compute, Service

    call_command("migrate", verbosity=0)
    for model in (Service, Compute, Container, Host):
        model.objects.all().delete()
    users = get_user_model()
    users.objects.filter(username="bench").delete()
    users.objects.create_user("bench", password="bench-password-1", is_staff=True)
    for satellite in satellites:
        Host.objects.create(name=satellite.name, satellite_url=satellite.url, key_id=satellite.key_id,
                            secret=satellite.secret, last_seen=timezone.now())
    base, process, access_log = start_gunicorn("boatload.wsgi")
    token = requests.post(f"{base}/v1/auth/token/", json={"username": "bench", "password": "bench-password-1"}
                          ).json()["access"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return base, session, process, access_log


def start_gunicorn(app):
    """gunicorn serving `app` (a WSGI module) on a free loopback port, as the API is served (its config file, an
    access log in a file), once its /healthz answers; (base URL, process, access log path)."""
    import subprocess

    import requests

    from tests.conftest import free_port, wait_until

    port = free_port()
    access_log = Path(tempfile.mkdtemp(prefix="boatload-bench-api-")) / "access.log"
    process = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "python:boatload.gunicorn_conf",
                                app, "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
                                "--access-logfile", str(access_log), "--access-logformat", "%(r)s %(s)s %(L)s"],
                               cwd=ROOT, env=os.environ)
    base = f"http://127.0.0.1:{port}"

    def api_up():
        assert process.poll() is None, "the API server exited"
        try:
            return requests.get(f"{base}/healthz", timeout=5).ok
        except requests.RequestException:  # not up yet, or slow to answer its first request
            return False

    try:
        wait_until(api_up, message="the API")
    except BaseException:  # not up in time, or interrupted: never leave its gunicorn running
        process.terminate()
        process.wait(timeout=30)
        raise
    return base, process, access_log
