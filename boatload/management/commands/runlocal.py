"""`make run`: migrate, ensure the admin user, then run the API, a local satellite and the reconciler.

The local satellite enrols with a join token made here on its first start and keeps its
keys in var/satellite; Ctrl-C stops all three processes.
"""
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
from common.env import env_int, env_str


class Command(BaseCommand):
    help = "Run the API server, a local satellite and the reconcilers (containers, Genisys) until Ctrl-C."

    def handle(self, *args, **options):
        call_command("migrate", "--noinput", verbosity=0)
        call_command("collectstatic", "--noinput", verbosity=0)
        call_command("ensure_admin")
        call_command("loadtemplates")
        bind = env_str("BOATLOAD_BIND", "127.0.0.1")
        port = env_int("BOATLOAD_PORT", 8000)
        api_url = f"http://{bind}:{port}"
        python = sys.executable
        processes = [subprocess.Popen([
            python, "-m", "gunicorn", "boatload.wsgi", "--bind", f"{bind}:{port}", "--worker-class", "gthread",
            "--threads", "16", "--workers", "2", "--no-control-socket", "--timeout", "0",
        ])]
        self.wait_for(f"{api_url}/healthz")
        processes.append(subprocess.Popen([python, "-m", "satellite"], env=self.satellite_env(api_url)))
        processes.append(subprocess.Popen([python, "manage.py", "reconcile"]))
        processes.append(subprocess.Popen([python, "manage.py", "genisys"]))
        self.stdout.write(self.style.SUCCESS(f"BoatLoad API on {api_url} (docs: {api_url}/v1/docs/); "
                                             "local satellite on 127.0.0.1:7051. Ctrl-C stops both."))
        stop = []
        signal.signal(signal.SIGTERM, lambda *a: stop.append(True))
        try:
            while not stop and all(p.poll() is None for p in processes):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()

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

    def wait_for(self, url, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if requests.get(url, timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{url} did not answer within {seconds}s")
