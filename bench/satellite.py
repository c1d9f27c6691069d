"""Satellite benchmarks against the raw Docker SDK, in one run on this machine.

  create+start through the satellite (signed HTTP) vs docker SDK create+start: median ratio
  metrics of 20 containers: the first /stats call right after their creates and once they have run 2 s,
    then the steady call vs 20 parallel raw `stats(stream=False)` calls
  streaming a 200 MiB archive: satellite throughput and peak memory vs `docker cp … -`

Run: make bench   (or .venv/bin/python -m bench.satellite); BENCH_PARTS=metrics (a comma list of create,
metrics, archive) runs only those.
"""
import base64
import os
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import docker
from bench.common import (
    COMMAND,
    TEST_IMAGE,
    PeakMemory,
    abba,
    median,
    raw_create,
    remove_run_containers,
    start_satellite,
    timed,
)

MiB = 1024 * 1024
PARTS = set(os.environ.get("BENCH_PARTS", "create,metrics,archive").split(","))


def identity():
    """Who a container is for, as the API sends it: a row uuid, by which the satellite finds it."""
    return {"container": str(uuid.uuid4())}


def bench_create(client, satellite, session):
    """Median create+start time of each path (see bench.common.abba)."""
    image_name, tag = TEST_IMAGE.rsplit(":", 1)

    def through_satellite():
        answer = session.post(f"{satellite.url}/containers", json={
            "image_name": image_name, "image_tag": tag, "command": COMMAND, "identity": identity()})
        answer.raise_for_status()

    raw_times, sat_times = abba(lambda: raw_create(client), through_satellite)
    remove_run_containers(client)
    return median(raw_times), median(sat_times)


def create_running(session, satellite, number=20):
    """`number` containers that stay up, made through the satellite one after the other; their Docker ids."""
    image_name, tag = TEST_IMAGE.rsplit(":", 1)
    return [session.post(f"{satellite.url}/containers", json={"image_name": image_name, "image_tag": tag,
                                                             "command": ["sleep", "600"], "identity": identity()}
                         ).json()["id"] for _ in range(number)]


def first_stats_call(session, satellite, ids):
    """(seconds, how many of `ids` had a CPU %) of one /stats call."""
    seconds, answer = timed(lambda: session.get(f"{satellite.url}/stats").json())
    assert set(ids) <= set(answer), "the satellite did not report every container"
    return seconds, sum(1 for cid in ids if answer[cid].get("cpu_percent") is not None)


def bench_metrics(client, satellite, session):
    """The first /stats call for 20 containers (a) right after their creates and (b) once they have run 2 s
    (a caller opening the console on a running host: 20 other containers, nobody asked for them before);
    then the steady call and 20 parallel raw `stats(stream=False)` of the same containers."""
    ids = create_running(session, satellite)
    just_created = first_stats_call(session, satellite, ids)
    remove_run_containers(client)
    ids = create_running(session, satellite)
    time.sleep(2)
    running = first_stats_call(session, satellite, ids)
    steady = median([timed(lambda: session.get(f"{satellite.url}/stats").json())[0] for _ in range(5)])
    with ThreadPoolExecutor(20) as pool:
        raw, _ = timed(lambda: list(pool.map(lambda cid: client.api.stats(cid, stream=False), ids)))
    remove_run_containers(client)
    return just_created, running, steady, raw


def bench_archive(client, satellite, session):
    image_name, tag = TEST_IMAGE.rsplit(":", 1)
    script = base64.b64encode(b"mkdir -p /out && dd if=/dev/urandom of=/out/big bs=1048576 count=200 2>/dev/null")
    made = session.post(f"{satellite.url}/containers", json={
        "image_name": image_name, "image_tag": tag, "script": script.decode(), "identity": identity()}).json()
    container_id = made["id"]
    client.api.wait(container_id, timeout=120)
    memory = PeakMemory(satellite.memory)

    def through_satellite():
        size = 0
        with session.get(f"{satellite.url}/containers/{made['container']}/archive", stream=True) as answer:
            for chunk in answer.iter_content(MiB):
                size += len(chunk)
        return size

    seconds, size = timed(through_satellite)
    peak = memory.stop()
    cp_seconds, _ = timed(lambda: subprocess.run(f"docker cp {container_id}:/out/big - > /dev/null", shell=True,
                                                 check=True))
    remove_run_containers(client)
    return size, seconds, cp_seconds, peak


def main():
    client = docker.from_env()
    satellite = start_satellite()
    session = satellite.signed()
    try:
        if "create" in PARTS:
            raw, sat = bench_create(client, satellite, session)
            print(f"create+start  raw SDK median {raw * 1000:.0f} ms, satellite median {sat * 1000:.0f} ms, "
                  f"ratio {sat / raw:.3f} (target <= 1.10)")
        if "metrics" in PARTS:
            just_created, running, steady, raw_stats = bench_metrics(client, satellite, session)
            for case, (seconds, rated) in (("right after the creates", just_created), ("after 2 s running", running)):
                print(f"metrics x20   first /stats call {case}: {seconds:.3f} s, {rated}/20 with a CPU % "
                      "(target < 0.3 s)")
            print(f"metrics x20   steady {steady:.3f} s; 20 parallel raw stats {raw_stats:.2f} s; "
                  f"ratio {steady / raw_stats:.3f}")
        if "archive" in PARTS:
            size, seconds, cp_seconds, peak = bench_archive(client, satellite, session)
            print(f"archive       {size / MiB:.0f} MiB in {seconds:.2f} s ({size / MiB / seconds:.0f} MiB/s) vs "
                  f"docker cp {cp_seconds:.2f} s, ratio {seconds / cp_seconds:.2f}; satellite peak memory "
                  f"{peak / MiB:.1f} MiB (target < 100 MiB)")
    finally:
        satellite.stop()
        remove_run_containers(client)


if __name__ == "__main__":
    main()
