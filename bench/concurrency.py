"""The API under concurrent clients, in one run on this machine: a real API server (gunicorn, Postgres) and a
real satellite on the local engine (issue 18's bench).

  GET /v1/container/?limit=100 with 10,000 rows, BENCH_CLIENTS (16) clients at once for BENCH_LIST_SECONDS (15):
      p50/p99 latency and requests/s (target p99 < 100 ms)
  creates/s: BENCH_CLIENTS API clients at once, each POSTing one container after the other, vs as many raw-SDK
      creators (create + start) at once on the same engine, BENCH_CREATES (48) creates a batch, in ABBA order
      (raw, API, API, raw) so both see the engine alike; ratio of the medians of creates/s (target >= 0.9)

Run: .venv/bin/python -m bench.concurrency   (in `make bench`); needs Postgres as `make test` starts it.
"""
import os
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.common import (
    COMMAND,
    TEST_IMAGE,
    median,
    raw_create,
    remove_run_containers,
    setup_api,
    start_satellite,
    stop_stack,
    timed,
)
from bench.fleet import percentile

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "16"))
LIST_SECONDS = float(os.environ.get("BENCH_LIST_SECONDS", "15"))
CREATES = int(os.environ.get("BENCH_CREATES", "48"))


def main():
    import docker

    satellite = start_satellite("bench-0")
    base, session, api, _ = setup_api([satellite])
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from boatload.models import Container, Host

    user = get_user_model().objects.get(username="bench")
    client = docker.from_env(max_pool_size=CLIENTS + 4)  # one connection a raw creator
    # One session per client thread (requests' Session is not thread-safe), each with the bench's token.
    sessions = [requests.Session() for _ in range(CLIENTS)]
    for each in sessions:
        each.headers.update(session.headers)
    try:
        print(f"API under {CLIENTS} concurrent clients (gunicorn workers: {os.environ.get('BOATLOAD_WORKERS', '2')}, "
              f"load average at start {os.getloadavg()[0]:.1f})")
        # 1. list 100 of 10,000 rows, CLIENTS at once
        host = Host.objects.get(name="bench-0")
        Container.objects.bulk_create([Container(owner=user, host=host, image_name="img", name=f"bl-c{n}",
                                                 state="exited") for n in range(10_000)], batch_size=2000)
        deadline = time.monotonic() + LIST_SECONDS

        def lister(own):
            times = []
            while time.monotonic() < deadline:
                seconds, answer = timed(lambda: own.get(f"{base}/v1/container/?limit=100"))
                assert answer.status_code == 200 and len(answer.json()["results"]) == 100, answer.text[:200]
                times.append(seconds)
            return times

        started = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            times = [t for each in pool.map(lister, sessions) for t in each]
        elapsed = time.monotonic() - started
        p99 = percentile(times, .99)
        print(f"list          100 of {Container.objects.count()} rows, {CLIENTS} clients: p50 "
              f"{percentile(times, .5) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, {len(times) / elapsed:.0f} requests/s "
              f"(target p99 < 100 ms: {'met' if p99 < 0.1 else 'NOT met'})")
        Container.objects.all().delete()

        # 2. creates/s, CLIENTS at once, API vs raw SDK on the same engine
        image_name, tag = TEST_IMAGE.rsplit(":", 1)
        body = {"image_name": image_name, "image_tag": tag, "command": COMMAND, "host": "bench-0"}

        def api_create(number):
            answer = sessions[number % CLIENTS].post(f"{base}/v1/container/", json=body)
            assert answer.status_code == 201, answer.text[:300]

        def batch(create):
            Host.objects.update(last_seen=timezone.now())  # no heartbeats here: the host stays live
            with ThreadPoolExecutor(CLIENTS) as pool:
                seconds, _ = timed(lambda: list(pool.map(create, range(CREATES))))
            remove_run_containers(client)
            Container.objects.all().delete()
            return CREATES / seconds

        batch(lambda _: raw_create(client))  # warm-up of both paths
        batch(api_create)
        raw_rates, api_rates = [], []
        for _ in range(2):
            raw_rates.append(batch(lambda _: raw_create(client)))
            api_rates.extend(batch(api_create) for _ in range(2))
            raw_rates.append(batch(lambda _: raw_create(client)))
        ratio = median(api_rates) / median(raw_rates)
        print(f"creates/s     {CLIENTS} at once, {CREATES} a batch: raw SDK {', '.join(f'{r:.1f}' for r in raw_rates)} "
              f"(median {median(raw_rates):.1f}), API {', '.join(f'{r:.1f}' for r in api_rates)} (median "
              f"{median(api_rates):.1f}): API/raw {ratio:.2f} (target >= 0.9: {'met' if ratio >= 0.9 else 'NOT met'}); "
              f"load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        stop_stack(api, [satellite], client)


if __name__ == "__main__":
    main()
