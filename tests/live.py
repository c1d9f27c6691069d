"""A live BoatLoad for tests that need real HTTP: the API under gunicorn and a real satellite.

`live_world()` is the one set-up of the module fixtures that talk to a running API process
(schemathesis, serving, the console's browser, /metrics): a satellite on the real engine,
enrolled as an active Host, the test's own committed rows, then the API on a loopback port
reading the same test database. At the end everything stops and the database is flushed,
since the API process saw committed rows, not a test transaction.
"""
import contextlib
import os
import subprocess
import sys

import requests

import docker
from tests.conftest import ROOT, SatelliteProcess, end_process, free_port, wait_until


class ApiServer:
    """The API under gunicorn on a loopback port, on the test database; its log kept for tracebacks."""

    def __init__(self, log_path, database_name):
        from django.conf import settings

        db = settings.DATABASES["default"]
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{database_name}",
            "BOATLOAD_DEBUG": "0", "BOATLOAD_SATELLITE_TIMEOUT": "10s", "BOATLOAD_CLUSTER_READ_TIMEOUT": "2s",
            "BOATLOAD_CONN_MAX_AGE": "0",
        }

    def start(self):
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "python:boatload.gunicorn_conf", "boatload.wsgi",
             "--bind", f"127.0.0.1:{self.port}"],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(self.healthy, timeout=90, message=f"API at {self.url}\n{self.read_log()}")
        return self

    def healthy(self):
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {self.process.returncode}:\n{self.read_log()}")
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def read_log(self):
        return self.log_path.read_text(errors="replace")[-5000:] if self.log_path.exists() else ""

    def stop(self):
        end_process(self.process, grace=15)
        self.log.close()


@contextlib.contextmanager
def live_world(django_db_blocker, folder, *, host_name, rows=None, api_env=None, host_fields=None):
    """Yield {"server", "satellite", "host", **rows(host, satellite)} with the API running.

    `rows(host, satellite)` commits the test's own rows (users, containers, …) and returns them as a
    dict; `api_env` is added to the API process' environment. The satellite does not heartbeat to
    this API, so its host is never taken for down, here or in the API process.
    """
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.utils import timezone

    from boatload.models import Host

    satellite = SatelliteProcess(folder / "satellite", name=host_name).start()
    server = None
    down_after, settings.HOST_DOWN_AFTER = settings.HOST_DOWN_AFTER, 3600
    with django_db_blocker.unblock():
        # The login and key throttles count in the database cache, which `flush` leaves alone: a world
        # starts with none of the failures an earlier one counted against 127.0.0.1 (schemathesis sends many).
        cache.clear()
        try:
            host = Host.objects.create(name=satellite.name, satellite_url=satellite.url, key_id=satellite.key_id,
                                       secret=satellite.secret, state=Host.State.ACTIVE, last_seen=timezone.now(),
                                       address_internal="127.0.0.1", **(host_fields or {}))
            made = rows(host, satellite) if rows else {}
            server = ApiServer(folder / "api.log", settings.DATABASES["default"]["NAME"])
            server.env.update({"BOATLOAD_HOST_DOWN_AFTER": "3600", **(api_env or {})})
            server.start()
            yield {"server": server, "satellite": satellite, "host": host, "folder": folder, **made}
        finally:
            if server:
                server.stop()
            own = "=".join(next(iter(satellite.own_labels().items())))
            satellite.stop()
            engine = docker.from_env()
            for container in engine.containers.list(all=True, filters={"label": own}):
                container.remove(force=True)  # the engine is shared: a world set up again finds its names free
            settings.HOST_DOWN_AFTER = down_after
            cache.clear()
            call_command("flush", interactive=False, verbosity=0)  # later tests expect an empty database
