"""A 200 MiB archive through the satellite (HTTPS, as enrolled hosts serve) and through the API,
each against `docker cp` of the same file in the same run, with each process's CPU and memory.

`docker cp <id>:/out/big -` is the floor: the engine's own tar of the file, read by the CLI and
written to /dev/null. The satellite's path is the same tar read from the engine, re-headed as
the archive of every changed file, sent over TLS; the API's adds one more hop. The three paths
run in turn (cp, satellite, API) BENCH_ARCHIVE_ROUNDS times and the medians are compared;
CPU is user+system of the process (and its children) over each transfer, memory its peak PSS
sampled every 20 ms.

Run: .venv/bin/python -m bench.archive   (needs Postgres as `make test` starts it)
Settings: BENCH_ARCHIVE_MIB (200), BENCH_ARCHIVE_ROUNDS (5), BENCH_ARCHIVE_TLS (1: an HTTPS satellite).
"""
import base64
import os
import resource
import subprocess
import tempfile
import time
from functools import partial

import psutil

from bench.common import TEST_IMAGE, PeakMemory, cpu_seconds, median, setup_api, stop_stack, timed
from tests.conftest import SatelliteProcess

MiB = 1024 * 1024
SIZE_MIB = int(os.environ.get("BENCH_ARCHIVE_MIB", "200"))
ROUNDS = int(os.environ.get("BENCH_ARCHIVE_ROUNDS", "5"))
TLS = os.environ.get("BENCH_ARCHIVE_TLS", "1") == "1"


def processes(pid):
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def pss_each(pid):
    return max(p.memory_full_info().pss for p in processes(pid))


def measured(function, pid, *, memory=False):
    """(wall seconds, CPU seconds of `pid`'s processes, of this bench's reading, peak PSS of any one of
    `pid`'s processes, result). Memory is sampled only when asked: reading smaps every 20 ms costs
    both sides CPU, so the timed rounds go without it."""
    sampler, cpu, own = PeakMemory(lambda: pss_each(pid)) if memory else None, cpu_seconds(pid), time.process_time()
    seconds, result = timed(function)
    return seconds, cpu_seconds(pid) - cpu, time.process_time() - own, sampler.stop() if sampler else 0, result


def read_all(session, url):
    size = 0
    with session.get(url, stream=True) as answer:
        answer.raise_for_status()
        for chunk in answer.iter_content(MiB):
            size += len(chunk)
    return size


def main():
    import docker

    satellite = SatelliteProcess(tempfile.mkdtemp(prefix="boatload-bench-"), name="bench-archive", tls=TLS).start()
    base, session, api, _ = setup_api([satellite])
    from boatload.models import Host

    Host.objects.filter(name=satellite.name).update(tls_certificate=satellite.certificate if TLS else "")
    client = docker.from_env()
    signed = satellite.signed()
    try:
        image_name, tag = TEST_IMAGE.rsplit(":", 1)
        script = base64.b64encode(f"mkdir -p /out && dd if=/dev/urandom of=/out/big bs=1048576 count={SIZE_MIB} "
                                  "2>/dev/null".encode()).decode()
        made = session.post(f"{base}/v1/container/", json={"image_name": image_name, "image_tag": tag,
                                                           "script": script, "host": satellite.name})
        assert made.status_code == 201, made.text
        row = made.json()
        client.api.wait(row["docker_id"], timeout=300)
        cp = ["docker", "cp", f"{row['docker_id']}:/out/big", "-"]
        paths = {"satellite": (signed, f"{satellite.url}/containers/{row['id']}/archive", satellite.process.pid),
                 "api": (session, f"{base}/v1/container/{row['id']}/archive", api.pid)}
        times, cpu, reader, sat_cpu, peaks, sizes = {"cp": []}, {}, {}, [], {}, set()
        for round_ in range(ROUNDS + 1):  # the last round samples memory and is not timed
            if round_ < ROUNDS:
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                with open(os.devnull, "wb") as null:
                    times["cp"].append(timed(lambda: subprocess.run(cp, stdout=null, check=True))[0])
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu.setdefault("cp", []).append(after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime)
            for path, (http, url, pid) in paths.items():
                satellite_before = cpu_seconds(satellite.process.pid)
                seconds, used, own, peak, size = measured(partial(read_all, http, url), pid, memory=round_ == ROUNDS)
                sizes.add(size)
                if round_ == ROUNDS:
                    peaks[path] = peak
                    continue
                times.setdefault(path, []).append(seconds)
                cpu.setdefault(path, []).append(used)
                reader.setdefault(path, []).append(own)
                if path == "api":
                    sat_cpu.append(cpu_seconds(satellite.process.pid) - satellite_before)
        assert len(sizes) == 1, f"the paths answered different sizes: {sizes}"
        [size] = sizes
        cp_median = median(times["cp"])
        print(f"archive       {size / MiB:.0f} MiB, {ROUNDS} rounds, satellite over "
              f"{'HTTPS' if TLS else 'plain HTTP'}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"              docker cp median {cp_median:.2f} s ({', '.join(f'{x:.2f}' for x in times['cp'])}); "
              f"the CLI's CPU {median(cpu['cp']):.2f} s")
        for path, label in (("satellite", "satellite"), ("api", "through the API")):
            print(f"              {label} median {median(times[path]):.2f} s "
                  f"({', '.join(f'{x:.2f}' for x in times[path])}), ratio {median(times[path]) / cp_median:.2f} "
                  f"(target <= 1.0); its CPU {median(cpu[path]):.2f} s, the reader's {median(reader[path]):.2f} s; "
                  f"peak PSS of one process {peaks[path] / MiB:.1f} MiB (target < 100 MiB)")
        print(f"              the satellite's CPU while the API streamed: {median(sat_cpu):.2f} s")
    finally:
        stop_stack(api, [satellite], client)


if __name__ == "__main__":
    main()
