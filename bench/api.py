"""API benchmarks, in one run on this machine: a real API server (gunicorn, Postgres) and real satellites.

  create through the API end to end vs docker SDK create+start: median ratio (target <= 1.10)
  list 100 of 10,000 rows: SQL queries (in-process, same code path) and median latency over HTTP
  cluster-wide container listing over three hosts vs one host: median ratio (target <= 1.3)

Run: make bench   (or .venv/bin/python -m bench.api); needs Postgres as `make test` starts it.
"""
import time
from pathlib import Path

from bench.common import (
    COMMAND,
    TEST_IMAGE,
    PeakMemory,
    abba,
    median,
    raw_create,
    remove_run_containers,
    setup_api,
    start_satellite,
    stop_stack,
    timed,
)


def server_seconds(log, request):
    """Request durations (seconds) that gunicorn logged for `request` (last field of each line)."""
    return [float(line.rsplit(" ", 1)[1].rstrip("s\n")) for line in Path(log).read_text().splitlines()
            if request in line] or [0.0]


def main():
    import docker

    satellites = [start_satellite(f"bench-{n}", SATELLITE_ACCESS_LOG="1") for n in range(3)]
    base, session, api, access_log = setup_api(satellites)
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from boatload.models import Container, Host

    user = get_user_model().objects.get(username="bench")
    client = docker.from_env()
    try:
        keep_alive = lambda: [Host.objects.update(last_seen=timezone.now())]  # noqa: E731 (no heartbeats here)

        # 1. create end to end vs raw SDK create+start (see bench.common.abba)
        image_name, tag = TEST_IMAGE.rsplit(":", 1)

        def through_api():
            answer = session.post(f"{base}/v1/container/", json={"image_name": image_name, "image_tag": tag,
                                                                   "command": COMMAND, "host": "bench-0"})
            assert answer.status_code == 201, answer.text

        raw_times, api_times = abba(lambda: raw_create(client), through_api, before_round=keep_alive)
        print(f"create        raw SDK median {median(raw_times) * 1000:.0f} ms, API end to end median "
              f"{median(api_times) * 1000:.0f} ms, ratio {median(api_times) / median(raw_times):.3f} (target <= 1.10)")
        timed_calls = len(api_times)  # the last lines of both logs; the warm-up call comes before them
        api_side = server_seconds(access_log, "POST /v1/container/")[-timed_calls:]
        satellite_side = server_seconds(satellites[0].log_path, "POST /containers")[-timed_calls:]
        own = [api - sat for api, sat in zip(api_side, satellite_side)]
        print(f"              as the servers log it: API {median(api_side) * 1000:.0f} ms of which satellite "
              f"{median(satellite_side) * 1000:.0f} ms (its own engine calls included); the API's own share "
              f"{median(own) * 1000:.1f} ms")
        remove_run_containers(client)
        Container.objects.all().delete()

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

        # 3. a 200 MiB archive streamed through the API: its processes' memory stays flat
        import base64

        import psutil



        script = base64.b64encode(b"mkdir -p /out && dd if=/dev/urandom of=/out/big bs=1048576 count=200 "
                                  b"2>/dev/null").decode()
        big = session.post(f"{base}/v1/container/", json={"image_name": image_name, "image_tag": tag,
                                                          "script": script, "host": "bench-0"}).json()
        client.api.wait(big["docker_id"], timeout=120)
        api_process = psutil.Process(api.pid)

        def api_memory():
            return sum(p.memory_full_info().pss for p in [api_process, *api_process.children(recursive=True)])

        before = api_memory()
        memory = PeakMemory(api_memory)
        keep_alive()
        size, started = 0, time.perf_counter()
        with session.get(f"{base}/v1/container/{big['id']}/archive", stream=True) as answer:
            for chunk in answer.iter_content(1024 * 1024):
                size += len(chunk)
        seconds = time.perf_counter() - started
        peak = memory.stop()
        print(f"archive       {size / 2**20:.0f} MiB through the API in {seconds:.2f} s; API processes (master and "
              f"2 workers, PSS) {before / 2**20:.0f} MiB before, peak {peak / 2**20:.0f} MiB")

        # 4. cluster-wide listing: three hosts vs one
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
        stop_stack(api, satellites, client)


if __name__ == "__main__":
    main()
