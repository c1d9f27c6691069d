"""`make run`: migrate, ensure the admin user, then run and supervise the whole stack.

The children are the API (gunicorn), a local satellite, the reconciler and the Genisys
reconciler. The local satellite enrols with a join token made here on its first start and
keeps its keys in var/satellite. runlocal supervises them: a child that exits or is killed
is logged and started again with backoff (1 s doubling to BOATLOAD_RESTART_MAX_BACKOFF;
reset once it has run for a minute), never the end of the stack. Each child runs in its own
process group, so whatever it leaves behind (gunicorn workers of a killed master) goes with
it. Ctrl-C or SIGTERM stops every child (SIGTERM, then SIGKILL after 10 s) and exits; should
runlocal itself be killed, its children get SIGTERM from the kernel (PR_SET_PDEATHSIG).
"""
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from boatload.models import Host, JoinToken
from common.env import env_duration, env_int, env_str

STABLE_AFTER = 60  # seconds a child must run before its backoff resets


def _die_with_parent():
    """In the child before exec: SIGTERM it when runlocal dies, even by SIGKILL (Linux prctl)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Child:
    """One supervised process: how to start it, and its restart backoff."""

    def __init__(self, name, argv, env=None, *, out):
        self.name, self.argv, self.env, self.out = name, argv, env, out
        self.process = None
        self.started = 0.0
        self.failures = 0
        self.restart_at = None

    def start(self):
        env = self.env() if callable(self.env) else self.env
        self.process = subprocess.Popen(self.argv, env=env, cwd=settings.BASE_DIR, start_new_session=True,
                                        preexec_fn=_die_with_parent)
        self.started = time.monotonic()
        self.restart_at = None

    def exited(self):
        return self.process is not None and self.process.poll() is not None

    def signal_group(self, signum):
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def reap(self, max_backoff):
        """The child exited: clear its process group and schedule the restart; returns the delay."""
        self.signal_group(signal.SIGKILL)  # leftovers of the group (e.g. gunicorn workers)
        if time.monotonic() - self.started >= STABLE_AFTER:
            self.failures = 0
        delay = min(max_backoff, 2 ** self.failures)
        self.failures += 1
        self.restart_at = time.monotonic() + delay
        return delay


class Command(BaseCommand):
    help = "Run and supervise the API server, a local satellite and the reconcilers (containers, Genisys)."

    def handle(self, *args, **options):
        call_command("migrate", "--noinput", verbosity=0)
        call_command("collectstatic", "--noinput", verbosity=0)
        call_command("ensure_admin")
        call_command("loadtemplates")
        bind = env_str("BOATLOAD_BIND", "127.0.0.1")
        port = env_int("BOATLOAD_PORT", 8000)
        api_url = f"http://{bind}:{port}"
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        out = self.stdout
        children = [
            Child("api", [python, "-m", "gunicorn", "-c", "python:boatload.gunicorn_conf", "boatload.wsgi",
                          "--bind", f"{bind}:{port}"], self.api_env(), out=out),
            Child("satellite", [python, "-m", "satellite"], lambda: self.satellite_env(api_url), out=out),
            Child("reconcile", [python, manage, "reconcile"], out=out),
            Child("genisys", [python, manage, "genisys"], out=out),
        ]
        stop = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *a: stop.append(True))
        try:
            children[0].start()
            self.wait_for(f"{api_url}/healthz", stop)
            for child in children[1:]:
                child.start()
            satellite_port = env_int("SATELLITE_PORT", 7051)
            self.stdout.write(self.style.SUCCESS(
                f"BoatLoad API on {api_url} (docs: {api_url}/v1/docs/); local satellite on "
                f"127.0.0.1:{satellite_port}. Ctrl-C stops everything."), ending="\n")
            self.stdout.flush()
            self.supervise(children, stop)
        finally:
            self.stop_all(children)

    def supervise(self, children, stop):
        max_backoff = env_duration("BOATLOAD_RESTART_MAX_BACKOFF", 30)
        while not stop:
            now = time.monotonic()
            for child in children:
                if child.restart_at is not None:
                    if now >= child.restart_at:
                        self.log(f"starting {child.name} again")
                        try:
                            child.start()
                        except Exception as exc:  # e.g. the database is down for the satellite's join token
                            delay = child.reap(max_backoff) if child.process else max_backoff
                            child.restart_at = time.monotonic() + delay
                            self.log(f"{child.name} could not start ({exc.__class__.__name__}: {exc}); "
                                     f"trying again in {delay:g}s")
                elif child.exited():
                    code = child.process.returncode
                    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
                    delay = child.reap(max_backoff)
                    self.log(f"{child.name} (pid {child.process.pid}) {how}; restarting it in {delay:g}s")
            time.sleep(0.2)

    def stop_all(self, children):
        running = [c for c in children if c.process is not None and c.process.poll() is None]
        for child in running:
            child.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for child in running:
            try:
                child.process.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                self.log(f"{child.name} did not stop within 10s; killing it")
        for child in children:
            if child.process is not None:
                child.signal_group(signal.SIGKILL)  # the group's leftovers, and whoever did not stop
                child.process.poll()
        self.log("stopped")

    def log(self, message):
        self.stdout.write(f"runlocal: {message}")
        self.stdout.flush()

    def api_env(self):
        """The API's workers share their Prometheus counters through var/prometheus (emptied at each start)."""
        env = dict(os.environ)
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(settings.VAR_DIR / "prometheus"))
        return env

    def satellite_env(self, api_url):
        env = dict(os.environ, BOATLOAD_API_URL=api_url)
        env.setdefault("SATELLITE_NAME", "local")
        env.setdefault("SATELLITE_STATE_DIR", str(settings.VAR_DIR / "satellite"))
        env.setdefault("SATELLITE_ADDRESS_INTERNAL", "127.0.0.1")
        state = Path(env["SATELLITE_STATE_DIR"]) / "credentials.json"
        if state.exists() and not Host.objects.filter(name=env["SATELLITE_NAME"]).exists():
            state.unlink()  # the database was reset: enrol again
        if not state.exists():
            _, env["SATELLITE_JOIN_TOKEN"] = JoinToken.issue(ttl=600, note="local satellite of make run")
        return env

    def wait_for(self, url, stop, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not stop:
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        if not stop:
            raise SystemExit(f"{url} did not answer within {seconds}s")
