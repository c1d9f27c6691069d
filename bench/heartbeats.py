"""Heartbeat load: N enrolled hosts heartbeating every INTERVAL against a real API server (gunicorn,
Postgres), and the API's CPU share for it.

Enrols N hosts (Host rows with their own key id and secret, as a join token makes them), then
signs heartbeats as each of them (common.signing.HmacAuth, the satellite's own signer) with the
body a TLS satellite sends (facts, URL, certificate, seal key), each host once every INTERVAL on
its own connection, kept from beat to beat as a satellite keeps its,
spread evenly over it. Every 10 s it prints the CPU time the API's processes (the gunicorn master
and its workers, from /proc through psutil) spent in that window, as a share of one core; at
the end the CPU a heartbeat took over the whole run, the share of one core that makes at HOSTS
every INTERVAL, and whether that meets the target, over the whole run and from the second interval on
(a fleet's steady state: each host's worker then knows it); and the CPU the Postgres backends of the bench
database spent a heartbeat (the API's pooled connections). The load generator runs in this process and
is not counted.

  BENCH_HOSTS (1000), BENCH_INTERVAL (10 s), BENCH_SECONDS (60), BENCH_SENDERS (16 threads)
  BENCH_FLOOR=1: then the same load against a bare WSGI app (bench/floor_app.py) under the very same
  gunicorn config, the server's own floor: how much of the budget is gunicorn's, not BoatLoad's
  target: under 10% of one core for 1,000 hosts every 10 s

Run: .venv/bin/python -m bench.heartbeats   (needs Postgres as `make test` starts it)
"""
import os
import queue
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench.common import cpu_seconds, setup_api

HOSTS = int(os.environ.get("BENCH_HOSTS", "1000"))
INTERVAL = float(os.environ.get("BENCH_INTERVAL", "10"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "60"))
SENDERS = int(os.environ.get("BENCH_SENDERS", "16"))
FLOOR = os.environ.get("BENCH_FLOOR", "") == "1"
WINDOW = 10.0


def enrol(count):
    """Host rows with their own keys, as enrolment makes them; [(name, key id, secret)]."""
    from django.utils import timezone

    from boatload.models import Host

    Host.objects.filter(name__startswith="hb-").delete()
    rows = []
    for n in range(count):
        key_id, secret = Host.new_credentials()
        rows.append(Host(name=f"hb-{n:05d}", satellite_url=f"https://127.0.0.{n % 200 + 10}:7051", key_id=key_id,
                         secret=secret, tls_certificate=CERTIFICATE, seal_public_key=SEAL_KEY,
                         last_seen=timezone.now(), state=Host.State.ACTIVE))
    Host.objects.bulk_create(rows, batch_size=500)
    return [(row.name, row.key_id, row.secret) for row in rows]


def channel():
    """A real self-signed certificate and seal key, as a TLS satellite sends with every heartbeat."""
    from common import sealing, tls

    folder = Path(tempfile.mkdtemp(prefix="boatload-bench-hb-"))
    tls.ensure_self_signed(folder / "cert.pem", folder / "key.pem", ["127.0.0.1"])
    return (folder / "cert.pem").read_text(), sealing.public_text(sealing.new_private_key())


CERTIFICATE, SEAL_KEY = channel()


def body_of(name, n):
    return {"docker_version": "26.1.5", "cpus": 2, "memory_bytes": 4 << 30,
            "address_internal": f"10.0.{n // 250}.{n % 250}", "saturated": [],
            "satellite_url": f"https://127.0.0.{n % 200 + 10}:7051", "certificate": CERTIFICATE,
            "seal_public_key": SEAL_KEY}


def database_cpu_seconds():
    """CPU time of the Postgres backends serving the bench database (the API's pooled connections), but this
    process' own; from /proc (psutil), as the API's. A backend that ends within the run takes its time along."""
    import psutil
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                       " AND pid <> pg_backend_pid()")
        pids = [pid for (pid,) in cursor.fetchall()]
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def load(url, process, hosts, label="heartbeats"):
    """Send HOSTS heartbeats every INTERVAL to `url` for SECONDS, printing the API's CPU share every WINDOW; the
    CPU a heartbeat took over the whole run, and from the second interval on (every host's connection has
    then beaten once, so its worker knows the host, as in a fleet that has run a while): (whole, steady)."""
    import requests

    from common.signing import HmacAuth

    due = queue.Queue()
    results = []  # (status, seconds)
    lock = threading.Lock()
    stop = threading.Event()

    # Each host its own connection, kept from beat to beat, as a satellite keeps its (satellite/credentials.py):
    # the API keeps an idle one open past a heartbeat interval (boatload/gunicorn_conf.py).
    sessions = [requests.Session() for _ in hosts]

    def sender():
        while not stop.is_set():
            try:
                n = due.get(timeout=0.5)
            except queue.Empty:
                continue
            name, key_id, secret = hosts[n]
            started = time.perf_counter()
            try:
                status = sessions[n].post(url, json=body_of(name, n), auth=HmacAuth(key_id, secret),
                                          timeout=10).status_code
            except requests.RequestException:
                status = "error"
            with lock:
                results.append((status, time.perf_counter() - started))

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    print(f"{label:13} {len(hosts)} hosts, each every {INTERVAL:g} s ({len(hosts) / INTERVAL:.0f}/s), {SECONDS:g} s, "
          f"API workers {os.environ.get('BOATLOAD_WORKERS', '2')}")
    step = INTERVAL / len(hosts)
    start = time.monotonic()
    cpu_start = window_cpu = cpu_seconds(process.pid)
    database_start = database_cpu_seconds()
    window_start, window_seen = start, 0
    warm = None  # (CPU, heartbeats answered) once the first interval has passed
    tick = 0
    try:
        while time.monotonic() - start < SECONDS:
            target = start + tick * step
            pause = target - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            due.put(tick % len(hosts))
            tick += 1
            now = time.monotonic()
            if warm is None and tick == len(hosts):
                with lock:
                    warm = (cpu_seconds(process.pid), len(results))
            if now - window_start >= WINDOW:
                cpu = cpu_seconds(process.pid)
                with lock:
                    window = results[window_seen:]
                    window_seen = len(results)
                share = (cpu - window_cpu) / (now - window_start)
                ok = sum(1 for status, _ in window if status == 200)
                p50 = statistics.median([s for _, s in window]) * 1000 if window else 0
                rate = len(window) / (now - window_start)
                print(f"  {now - start:5.0f} s  API CPU {share * 100:5.1f}% of one core  heartbeats {len(window)} "
                      f"({ok} ok, {rate:.0f}/s)  p50 {p50:.1f} ms  backlog {due.qsize()}")
                window_cpu, window_start = cpu, now
        elapsed = time.monotonic() - start
        with lock:
            total_cpu, answered = cpu_seconds(process.pid), len(results)
        database = database_cpu_seconds() - database_start
    finally:
        stop.set()
        for thread in threads:
            thread.join(15)
    bad = [status for status, _ in results if status != 200]
    per_beat = (total_cpu - cpu_start) / max(1, answered)
    steady = (total_cpu - warm[0]) / max(1, answered - warm[1]) if warm and answered > warm[1] else per_beat
    print(f"{label:13} {len(results)} sent in {elapsed:.0f} s ({len(results) / elapsed:.0f}/s), "
          f"{len(bad)} not 200{': ' + str(sorted(set(map(str, bad)))) if bad else ''}; "
          f"API CPU over the run {(total_cpu - cpu_start) / elapsed * 100:.1f}% of one core; Postgres "
          f"{database / max(1, answered) * 1000:.2f} ms CPU a request ({database / elapsed * 100:.1f}% of one core)")
    return per_beat, steady, bad


def verdict(label, per_beat, bad):
    # The share at the full rate, from the CPU a heartbeat took: on a busy machine the load generator
    # (which shares it) may send fewer than HOSTS / INTERVAL a second, and the API idles meanwhile.
    share = per_beat * HOSTS / INTERVAL
    return (f"{per_beat * 1000:.2f} ms a heartbeat{label}: {share * 100:.1f}% of one core for {HOSTS} hosts every "
            f"{INTERVAL:g} s (target < 10%, < {INTERVAL / HOSTS * 100:.2f} ms a heartbeat: "
            f"{'met' if share < 0.10 and not bad else 'NOT met'})")


def main():
    from bench.common import start_gunicorn

    base, _, process, _ = setup_api([])
    hosts = enrol(HOSTS)
    try:
        per_beat, steady, bad = load(f"{base}/v1/host/heartbeat/", process, hosts)
    finally:
        process.terminate()
        process.wait(15)
    print(f"heartbeats    API CPU {verdict('', per_beat, bad)}")
    print(f"heartbeats    API CPU {verdict(' after the first interval', steady, bad)}")
    if FLOOR:
        floor_base, floor, _ = start_gunicorn("bench.floor_app")
        try:
            floor_beat, floor_steady, floor_bad = load(f"{floor_base}/v1/host/heartbeat/", floor, hosts, "floor")
        finally:
            floor.terminate()
            floor.wait(15)
        print(f"floor         the same load against a bare WSGI app (bench/floor_app.py) under the same gunicorn "
              f"config: {floor_beat * 1000:.2f} ms CPU a request, {floor_steady * 1000:.2f} ms after the first "
              f"interval ({floor_steady * HOSTS / INTERVAL * 100:.1f}% of one core; "
              f"{len(floor_bad)} not 200); BoatLoad's own share of a heartbeat "
              f"{(steady - floor_steady) * 1000:.2f} ms")


if __name__ == "__main__":
    main()
