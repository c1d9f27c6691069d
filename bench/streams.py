"""Open streams and slow clients never pin a worker: figures for README "Performance".

1,000 `stdout?follow=1` streams of a silent container are opened through the API (so the API
and the satellite each hold 1,000), and 200 connections that never finish their headers are
opened to each process; then `/healthz` of both is timed, and the memory each open stream
costs is read (PSS, so pages shared by processes count once).

Run: make bench   (or .venv/bin/python -m bench.streams); needs Postgres as `make test` starts it.
Settings: BENCH_STREAMS (default 1000), BENCH_SLOW (default 200).
"""
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import requests

from bench.common import TEST_IMAGE, median, remove_run_containers, setup_api, start_satellite, timed
from tests.connections import open_follow, open_slow

STREAMS = int(os.environ.get("BENCH_STREAMS", "1000"))
SLOW = int(os.environ.get("BENCH_SLOW", "200"))
MiB = 1024 * 1024


def pss(pid):
    root = psutil.Process(pid)
    return sum(p.memory_full_info().pss for p in [root, *root.children(recursive=True)])


def healthz_times(url, count=20):
    return [timed(lambda: requests.get(url, timeout=30).raise_for_status())[0] for _ in range(count)]


def main():
    # One user opens every stream here: lift the per-user share above the count.
    satellite = start_satellite(name="bench-streams", SATELLITE_MAX_FOLLOWS_PER_USER=str(STREAMS),
                                SATELLITE_MAX_FOLLOWS=str(STREAMS))
    base, session, api, _ = setup_api([satellite])
    api_port = int(base.rsplit(":", 1)[1])
    sockets = []
    try:
        image_name, tag = TEST_IMAGE.rsplit(":", 1)
        made = session.post(f"{base}/v1/container/", json={"image_name": image_name, "image_tag": tag,
                                                          "command": ["sleep", "3600"], "host": "bench-streams"})
        assert made.status_code == 201, made.text
        token = session.headers["Authorization"].split()[1]
        path = f"/v1/container/{made.json()['id']}/stdout?follow=true"
        idle_api, idle_sat = median(healthz_times(f"{base}/healthz")), median(healthz_times(f"{satellite.url}/healthz"))
        before = pss(api.pid), pss(satellite.process.pid)

        started = time.perf_counter()
        with ThreadPoolExecutor(32) as pool:
            sockets += pool.map(lambda _: open_follow(api_port, path, token), range(STREAMS))
        opened = time.perf_counter() - started
        sockets += [open_slow(api_port) for _ in range(SLOW)] + [open_slow(satellite.port) for _ in range(SLOW)]
        time.sleep(1)
        streams_on_satellite = satellite.signed().get(f"{satellite.url}/info").json()["satellite"]["open_streams"]
        if streams_on_satellite != STREAMS:
            print(f"the satellite holds {streams_on_satellite} streams, not {STREAMS}: see {satellite.log_path}")
        loaded_api, loaded_sat = healthz_times(f"{base}/healthz"), healthz_times(f"{satellite.url}/healthz")
        after = pss(api.pid), pss(satellite.process.pid)

        print(f"streams       {STREAMS} follow streams opened through the API in {opened:.1f} s; the satellite "
              f"holds {streams_on_satellite}; plus {SLOW} slow-header connections to each process")
        print(f"/healthz      API median {median(loaded_api) * 1000:.1f} ms, max {max(loaded_api) * 1000:.1f} ms "
              f"(idle {idle_api * 1000:.1f} ms, ratio {median(loaded_api) / idle_api:.2f}); satellite median "
              f"{median(loaded_sat) * 1000:.1f} ms, max {max(loaded_sat) * 1000:.1f} ms "
              f"(idle {idle_sat * 1000:.1f} ms, ratio {median(loaded_sat) / idle_sat:.2f}) (target < 1000 ms)")
        print(f"memory        per open stream: API {(after[0] - before[0]) / STREAMS / 1024:.1f} KiB, satellite "
              f"{(after[1] - before[1]) / STREAMS / 1024:.1f} KiB (PSS; API {after[0] / MiB:.0f} MiB, satellite "
              f"{after[1] / MiB:.0f} MiB in all)")
    finally:
        for sock in sockets:
            sock.close()
        api.terminate()
        try:
            api.wait(20)
        except subprocess.TimeoutExpired:
            api.kill()
        satellite.stop()
        import docker

        remove_run_containers(docker.from_env())


if __name__ == "__main__":
    main()
