"""`make run` for real (runlocal on SQLite): it holds concurrent writers, a killed child comes back,
and SIGTERM stops everything.

The stack runs in a temp BOATLOAD_VAR_DIR on its own ports, with its satellite on an extra
engine of its own (so its reconciler never sees another run's containers).
"""
import os
import signal
import subprocess
import sys
import threading

import psutil
import pytest
import requests

from common import sealing
from tests.conftest import ROOT, RUN_LABEL, free_port, wait_until

ADMIN_PASSWORD = "admin-pass-1"


def child_named(runlocal, word):
    """The direct child of runlocal whose command line holds `word`, or None."""
    for child in psutil.Process(runlocal.pid).children():
        try:
            if any(word in part for part in child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                return child
        except psutil.NoSuchProcess:
            continue
    return None


@pytest.fixture
def stack(tmp_path, engines):
    engine = engines(3)
    api_port, satellite_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_URL", "BOATLOAD_"))}
    env.update({
        "BOATLOAD_VAR_DIR": str(tmp_path / "var"), "BOATLOAD_DEBUG": "1", "BOATLOAD_SECRET_KEY": "test-runlocal",
        "BOATLOAD_PORT": str(api_port), "BOATLOAD_PUBLIC_URL": f"http://127.0.0.1:{api_port}",
        "BOATLOAD_ADMIN_PASSWORD": ADMIN_PASSWORD, "BOATLOAD_RECONCILE_INTERVAL": "1",
        "BOATLOAD_ORPHAN_GRACE": "1000h", "BOATLOAD_RESTART_MAX_BACKOFF": "2",
        "BOATLOAD_LOGIN_RATE_USER": "1000/m",  # 20 logins of one user at once here are load, not guessing
        "SATELLITE_PORT": str(satellite_port), "SATELLITE_NAME": "runlocal-test",
        "SATELLITE_CONTAINER_LABELS": RUN_LABEL, "DOCKER_HOST": engine.docker_host,
        "GENISYS_CONFIG": str(tmp_path / "none.yml"), "GENISYS_POLL_INTERVAL": "1",
    })
    log_path = tmp_path / "runlocal.log"
    log = open(log_path, "wb")
    process = subprocess.Popen([sys.executable, "manage.py", "runlocal"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    process.api = f"http://127.0.0.1:{api_port}"
    process.satellite = f"https://127.0.0.1:{satellite_port}"  # the local satellite serves HTTPS, its own certificate
    process.satellite_certificate = tmp_path / "var" / "satellite" / "tls" / "cert.pem"
    process.full_log = lambda: log_path.read_text(errors="replace")
    process.read_log = lambda: process.full_log()[-4000:]
    yield process
    if process.poll() is None:
        process.kill()
    process.wait()
    # Whatever of this stack is left (a failed test), found by its var dir, which every child inherits.
    for leftover in psutil.process_iter():
        try:
            if leftover.environ().get("BOATLOAD_VAR_DIR") == env["BOATLOAD_VAR_DIR"]:
                leftover.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    log.close()


SEAL_KEY = sealing.public_text(sealing.new_private_key())  # what an enrolling satellite sends for sealed keys


def answers(url, certificate=None):
    """True when `url` answers 200; an https satellite is checked against its own certificate."""
    try:
        if certificate is not None and not certificate.exists():
            return False  # not made yet
        return requests.get(url, timeout=2, verify=str(certificate) if certificate else True).status_code == 200
    except requests.RequestException:
        return False


def test_runlocal_holds_concurrent_writes_restarts_a_killed_child_and_stops_on_sigterm(stack):
    wait_until(lambda: answers(f"{stack.api}/healthz")
               and answers(f"{stack.satellite}/healthz", stack.satellite_certificate), timeout=90,
               message=f"the stack\n{stack.read_log()}")
    token = requests.post(f"{stack.api}/v1/auth/token/", json={"username": "admin", "password": ADMIN_PASSWORD},
                          timeout=30).json()["access"]
    auth = {"Authorization": f"Bearer {token}"}

    def local_host_active():
        hosts = requests.get(f"{stack.api}/v1/host/", headers=auth, timeout=10).json()
        rows = hosts["results"] if isinstance(hosts, dict) else hosts
        return any(row["name"] == "runlocal-test" and row["state"] == "active" for row in rows)
    wait_until(local_host_active, timeout=30, message=f"the local satellite to enrol\n{stack.read_log()}")

    # 20 threads writing at once beside the heartbeats and both reconcilers: each makes join tokens
    # and enrols a host with each (a transaction that reads, then writes), and logs in.
    statuses, lock = [], threading.Lock()

    def record(answer):
        with lock:
            statuses.append((answer.status_code, answer.text[:200]))

    def writer(number):
        session = requests.Session()
        for round_ in range(5):
            made = session.post(f"{stack.api}/v1/jointoken/", headers=auth, timeout=60,
                                json={"note": f"load {number}.{round_}"})
            record(made)
            if made.status_code == 201:
                record(session.post(f"{stack.api}/v1/host/enrol/", timeout=60, json={
                    "token": made.json()["token"], "name": f"load-{number}-{round_}",
                    "satellite_url": "http://127.0.0.1:9", "seal_public_key": SEAL_KEY}))
        record(session.post(f"{stack.api}/v1/auth/token/", timeout=60,
                            json={"username": "admin", "password": ADMIN_PASSWORD}))
    threads = [threading.Thread(target=writer, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = [s for s in statuses if s[0] >= 500]
    assert not failed, (len(failed), failed[:5])
    assert len(statuses) == 220 and all(code in (200, 201) for code, _ in statuses), statuses[:5]
    assert stack.poll() is None, stack.read_log()
    for word in ("gunicorn", "satellite", "reconcile", "genisys"):
        assert child_named(stack, word), (word, stack.read_log())

    # A killed child is logged and started again; the rest of the stack stays up.
    for word in ("reconcile", "gunicorn"):
        victim = child_named(stack, word)
        victim.send_signal(signal.SIGKILL)
        wait_until(lambda word=word, old=victim.pid: (c := child_named(stack, word)) is not None and c.pid != old,
                   timeout=30,
                   message=f"{word} to be started again\n{stack.read_log()}")
        assert stack.poll() is None, stack.read_log()
    assert "reconcile" in stack.full_log() and "was killed by signal 9" in stack.full_log()
    wait_until(lambda: answers(f"{stack.api}/healthz"), timeout=30, message=f"the API again\n{stack.read_log()}")
    assert requests.get(f"{stack.api}/v1/host/", headers=auth, timeout=10).status_code == 200

    # SIGTERM stops every process of the stack, and runlocal with them.
    family = psutil.Process(stack.pid).children(recursive=True)
    assert len(family) >= 4
    stack.send_signal(signal.SIGTERM)
    stack.wait(60)
    _, alive = psutil.wait_procs(family, timeout=15)
    assert not alive, [p.pid for p in alive]


def test_killing_runlocal_itself_takes_its_children_along(stack):
    wait_until(lambda: answers(f"{stack.api}/healthz") and child_named(stack, "genisys"), timeout=90,
               message=f"the stack\n{stack.read_log()}")
    family = psutil.Process(stack.pid).children(recursive=True)
    assert len(family) >= 4
    stack.send_signal(signal.SIGKILL)
    stack.wait(10)
    _, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, [(p.pid, p.cmdline()) for p in alive]
