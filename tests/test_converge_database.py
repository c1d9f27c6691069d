"""A Postgres restart under the API and both reconcilers: 503 with Retry-After while it is down,
nothing exits, and everything resumes once it is back.

The database is a second Postgres cluster started here (own data folder and port, owned by
the postgres user), so stopping it never touches the test session's database.
"""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, free_port, wait_until

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PostgresCluster:
    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="boatload-converge-pg-"))
        self.data = self.base / "data"
        self.port = free_port()
        self.url = f"postgres://boatload:boatload@127.0.0.1:{self.port}/boatload"
        shutil.chown(self.base, "postgres", "postgres")
        self.as_postgres(PG_BIN / "initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")

    def as_postgres(self, *command):
        return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, command)], check=True,
                              capture_output=True, text=True)

    def start(self):
        self.as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-l", self.base / "postgres.log", "-w", "-o",
                         f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
        return self

    def stop(self):
        self.as_postgres(PG_BIN / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def psql(self, sql):
        self.as_postgres(PG_BIN / "psql", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", "-qc", sql)

    def remove(self):
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture
def cluster():
    pg = PostgresCluster().start()
    pg.psql("CREATE ROLE boatload LOGIN PASSWORD 'boatload'")
    pg.psql("CREATE DATABASE boatload OWNER boatload")
    yield pg
    pg.remove()


class Processes:
    """Real processes of the API server against `cluster`, each logging to its own file."""

    def __init__(self, tmp_path, database_url):
        self.tmp_path = tmp_path
        self.env = {**os.environ, "DATABASE_URL": database_url, "BOATLOAD_SECRET_KEY": "test",
                    "BOATLOAD_VAR_DIR": str(tmp_path / "var"), "BOATLOAD_ADMIN_PASSWORD": "admin-pass-1",
                    "BOATLOAD_RECONCILE_INTERVAL": "0.5", "GENISYS_POLL_INTERVAL": "0.5",
                    "BOATLOAD_OUTAGE_MAX_BACKOFF": "1", "BOATLOAD_HOST_DOWN_AFTER": "30s",
                    "GENISYS_CONFIG": str(tmp_path / "none.yml"), "BOATLOAD_CONN_MAX_AGE": "60"}
        self.running = {}

    def manage(self, *args):
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True)

    def start(self, name, command):
        log = open(self.tmp_path / f"{name}.log", "wb")
        self.running[name] = (subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log,
                                               stderr=subprocess.STDOUT), log)

    def log(self, name):
        return (self.tmp_path / f"{name}.log").read_text(errors="replace")

    def alive(self, name):
        return self.running[name][0].poll() is None

    def stop_all(self):
        for process, log in self.running.values():
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
            log.close()


def test_a_postgres_restart_is_named_and_outlived(cluster, tmp_path):
    procs = Processes(tmp_path, cluster.url)
    procs.manage("migrate", "--noinput")
    procs.manage("ensure_admin")
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    try:
        procs.start("api", [sys.executable, "-m", "gunicorn", "boatload.wsgi", "--bind", f"127.0.0.1:{port}",
                            "--worker-class", "gthread", "--threads", "4", "--workers", "1"])
        procs.start("reconcile", [sys.executable, "manage.py", "reconcile"])
        procs.start("genisys", [sys.executable, "manage.py", "genisys"])

        def answers(path="/healthz"):
            try:
                return requests.get(f"{api}{path}", timeout=5).status_code == 200
            except requests.RequestException:
                return False
        wait_until(answers, timeout=30, message=f"the API\n{procs.log('api')}")
        token = requests.post(f"{api}/v1/auth/token/", json={"username": "admin", "password": "admin-pass-1"},
                              timeout=10).json()["access"]
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{api}/v1/host/", headers=auth, timeout=10).status_code == 200

        cluster.stop()
        for method, path, body in (("GET", "/v1/host/", None), ("GET", "/v1/container/", None),
                                   ("POST", "/v1/auth/token/", {"username": "admin", "password": "x"}),
                                   ("GET", "/compute", None)):
            answer = requests.request(method, f"{api}{path}", headers=auth, json=body, timeout=30)
            assert answer.status_code == 503, (path, answer.status_code, answer.text)
            assert answer.headers["Retry-After"].isdigit(), path
            error = answer.json()["error"]
            assert error["code"] == "database_unavailable", (path, error)
        assert requests.get(f"{api}/healthz", timeout=10).status_code == 503
        for name in ("reconcile", "genisys"):
            wait_until(lambda name=name: "database unavailable" in procs.log(name), timeout=30,
                       message=f"{name} to say the database is down\n{procs.log(name)}")
            assert procs.alive(name), procs.log(name)

        cluster.start()
        wait_until(answers, timeout=30, message="the API to answer again")
        assert requests.get(f"{api}/v1/host/", headers=auth, timeout=10).status_code == 200
        for name in ("reconcile", "genisys"):
            wait_until(lambda name=name: "database answers again" in procs.log(name), timeout=30,
                       message=f"{name} to resume\n{procs.log(name)}")
            assert procs.alive(name), procs.log(name)
        # The reconciler does its work again: a silent host is marked down.
        procs.manage("shell", "-c", "from datetime import timedelta; from django.utils import timezone; "
                     "from boatload.models import Host; Host.objects.create(name='silent', "
                     "satellite_url='http://127.0.0.1:9', key_id='hk_silent', secret='s', state='active', "
                     "last_seen=timezone.now() - timedelta(hours=1))")

        def silent_is_down():
            hosts = requests.get(f"{api}/v1/host/", headers=auth, timeout=10).json()
            rows = hosts["results"] if isinstance(hosts, dict) else hosts
            return any(row["name"] == "silent" and row["state"] == "down" for row in rows)
        wait_until(silent_is_down, timeout=30, message=f"the reconciler to mark the host down\n"
                                                       f"{procs.log('reconcile')}")
    finally:
        procs.stop_all()
