"""Observability benchmarks (issue 17), in one run on this machine: a real API server (gunicorn, Postgres),
real satellites, a real reconciler process.

  create and list through the API with the metrics history written vs not: median ratios (target <= 1.05).
      A reconciler collects the fleet every second in both phases (BOATLOAD_FLEET_INTERVAL=1s); only
      BOATLOAD_HISTORY differs. Phases off, on, on, off (ABBA) three times, a fresh reconciler each.
  /metrics scrape with 1,000 containers over 3 hosts (rows and samples inserted directly): median (< 250 ms)
  the history table's size per container-day: raw samples every 15 s, and 5-minute roll-ups

Run: .venv/bin/python -m bench.observability (make bench); needs Postgres as `make test` starts it.
"""
import os
import subprocess
import sys
import time

from bench.common import ROOT, TEST_IMAGE, median, remove_run_containers, setup_api, start_satellite, stop_stack, timed

ROUNDS = int(os.environ.get("BENCH_OBSERVABILITY_ROUNDS", "6"))  # creates a phase (lists: twice as many)
PHASES = (False, True, True, False) * 3  # history off/on, ABBA, three times: the machine's load drifts
TOKEN = "bench-metrics-token"


def reconciler(history):
    env = {**os.environ, "BOATLOAD_HISTORY": "1" if history else "0", "BOATLOAD_FLEET_INTERVAL": "1s",
           "BOATLOAD_HOST_DOWN_AFTER": "3600"}
    return subprocess.Popen([sys.executable, "manage.py", "reconcile", "--interval", "1"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(process):
    process.terminate()
    process.wait(30)


def main():
    import docker

    os.environ.update(BOATLOAD_METRICS_TOKEN=TOKEN, BOATLOAD_HOST_DOWN_AFTER="3600")
    satellites = [start_satellite(f"bench-{n}") for n in range(3)]
    base, session, api, _ = setup_api(satellites)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.utils import timezone

    from boatload.models import Container, Host
    from observe import metrics
    from observe.models import ContainerSample, HistoryState, MetricPoint

    client = docker.from_env()
    image_name, tag = TEST_IMAGE.rsplit(":", 1)
    user = get_user_model().objects.get(username="bench")
    MetricPoint.objects.all().delete()
    HistoryState.objects.all().delete()
    try:
        # 1. create and list, history written vs not
        def create():
            answer = session.post(f"{base}/v1/container/", json={"image_name": image_name, "image_tag": tag,
                                                                   "command": ["sleep", "3600"], "host": "bench-0"})
            assert answer.status_code == 201, answer.text

        def listing():
            assert session.get(f"{base}/v1/container/?limit=100").status_code == 200

        times = {True: {"create": [], "list": []}, False: {"create": [], "list": []}}
        create()  # warm-up
        for history in PHASES:
            loop = reconciler(history)
            time.sleep(2)  # its first passes
            try:
                for _ in range(ROUNDS):
                    times[history]["create"].append(timed(create)[0])
                    times[history]["list"].extend(timed(listing)[0] for _ in range(2))
            finally:
                stop(loop)
        written = MetricPoint.objects.count()
        for what in ("create", "list"):
            on, off = median(times[True][what]), median(times[False][what])
            print(f"{what:<13} history on median {on * 1000:.1f} ms, off {off * 1000:.1f} ms, ratio {on / off:.3f} "
                  f"(target <= 1.05; {len(times[True][what])} calls a side, {written} history rows written)")
        remove_run_containers(client)
        Container.objects.all().delete()

        # 2. /metrics with 1,000 containers over 3 hosts
        hosts = list(Host.objects.order_by("name"))
        rows = Container.objects.bulk_create([
            Container(owner=user, host=hosts[n % 3], image_name=image_name, name=f"bl-m{n}", state="running",
                      docker_id=f"{n:064x}") for n in range(1000)], batch_size=1000)
        now = timezone.now()
        metrics.store_samples([  # as a fleet collection stores them: the samples and their rendered series
            ContainerSample(host=row.host.name, docker_id=row.docker_id, container=str(row.uuid), owner="bench",
                            cpu_seconds=1.5, cpu_percent=0.5, memory_bytes=10 << 20, memory_limit_bytes=1 << 30,
                            pids=1, collected=now) for row in rows], now=now)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert session.get(f"{base}/metrics", headers=headers).status_code == 200
        scrapes = [timed(lambda: session.get(f"{base}/metrics", headers=headers).content)[0] for _ in range(20)]
        page = session.get(f"{base}/metrics", headers=headers).content
        print(f"scrape        /metrics with {len(rows)} containers over {len(hosts)} hosts: median "
              f"{median(scrapes) * 1000:.1f} ms, max {max(scrapes) * 1000:.1f} ms, {len(page) / 1024:.0f} KiB "
              f"(target < 250 ms)")
        metrics.store_samples([], now=now)
        Container.objects.all().delete()

        # 3. the history table per container-day
        def table_bytes():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_total_relation_size('observe_metricpoint')")
                return cursor.fetchone()[0]

        def empty_table():  # TRUNCATE: a fresh file, so no free space of earlier rows is reused and uncounted
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE observe_metricpoint")
            return table_bytes()

        containers, day = 10, 86400
        start = int(now.timestamp()) // day * day - day
        empty = empty_table()
        for n in range(containers):
            MetricPoint.objects.bulk_create([
                MetricPoint(t=start + i * 15, host=hosts[n % 3].name, container=f"c{n}", owner=user, cpu_seconds=i,
                            cpu_percent=1.0, memory_bytes=10 << 20, memory_limit_bytes=1 << 30, pids=1)
                for i in range(day // 15)], batch_size=5000)
        raw = (table_bytes() - empty) / containers
        empty = empty_table()
        for n in range(containers):
            MetricPoint.objects.bulk_create([
                MetricPoint(rolled=300, t=start - d * day + i * 300, host=hosts[n % 3].name, container=f"c{n}",
                            owner=user, cpu_seconds=i, cpu_percent=1.0, memory_bytes=10 << 20, pids=1)
                for d in range(30) for i in range(day // 300)], batch_size=5000)
        rolled = (table_bytes() - empty) / containers / 30
        MetricPoint.objects.all().delete()
        print(f"history size  per container-day: raw (every 15 s) {raw / 2**20:.2f} MiB, rolled up (5 min) "
              f"{rolled / 2**10:.0f} KiB; a container's whole retention (24 h raw + 30 days of roll-ups) "
              f"{(raw + 30 * rolled) / 2**20:.2f} MiB, roll-ups {raw / rolled:.0f}x smaller a day than raw")
    finally:
        stop_stack(api, satellites, client)


if __name__ == "__main__":
    main()
