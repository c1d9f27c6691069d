"""Rollout benchmark, in one run: a 10-slot rolling update (parallelism 2, min_healthy_time 2s,
start-first, a healthcheck) on one real three-node Swarm (tests/swarm_cluster.py), through BoatLoad
(`PUT /service/<name>?wait=` against a swarm satellite on the manager, the Genisys reconciler
advancing the deployment) against `docker service update` with the same settings on the same
Swarm. Rounds go ABBA (BoatLoad, docker, docker, BoatLoad) so both see the same cluster state on
average. While either rolls, the manager's running tasks are counted every 50 ms (the same load on the
manager for both paths). For each rollout it also prints, from Swarm's own UpdateStatus, when Swarm
started the update after the call and how long Swarm's update took, so a difference between the paths
shows where it comes from: before Swarm starts, during Swarm's update, or after it.

Targets: ratio BoatLoad / docker ≤ 1.0; the minimum running count during the start-first
rollout equals the desired number (10). Printed beside it: docker until Swarm's own UpdateStatus
says completed, since the CLI returns before the last batch's monitor window (min_healthy_time)
has passed, which BoatLoad's deployment waits for.
Run: .venv/bin/python -m bench.rollout   (BOATLOAD_TEST_ENGINE_OFFSET shifts the engines, as in tests)
"""
import os
import resource
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

from bench.common import ROOT, TEST_IMAGE, cpu_seconds, median, setup_api, start_satellite

SLOTS = 10
RECONCILER_LOG = "/tmp/boatload-bench-rollout-genisys.log"
ROUNDS = int(os.environ.get("BENCH_ROLLOUT_ROUNDS", "2"))  # ABBA rounds: 2 rollouts a path each
HEALTHCHECK = {"test": "true", "interval": "300ms", "timeout": "10s", "retries": 3}  # tolerant of a loaded machine
POLICY = {"parallelism": 2, "min_healthy_time": "2s", "order": "start-first", "failure_action": "rollback"}
CLI_POLICY = ["--update-parallelism", "2", "--update-delay", "2s", "--update-monitor", "2s",
              "--update-order", "start-first", "--update-failure-action", "rollback", "--update-max-failure-ratio",
              "0"]


class RunningCount:
    """The service's running tasks, in one answer of the manager, every 50 ms."""

    def __init__(self, client, service):
        self.client, self.service, self.samples, self.going = client, service, [], True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        while self.going:
            tasks = self.client.api.tasks(filters={"service": self.service})
            self.samples.append(sum(1 for task in tasks if task["Status"]["State"] == "running"))
            time.sleep(0.05)

    def stop(self):
        self.going = False
        self.thread.join()
        return min(self.samples)


def keep_log(stream, path):
    """The reconciler's output into `path`, each line with the time it came."""
    with open(path, "w") as log:
        for line in stream:
            log.write(f"{datetime.now(UTC):%H:%M:%S.%f} {line.decode(errors='replace')}")
            log.flush()


def swarm_times(client, service, called):
    """(seconds from `called` until Swarm started the update, seconds Swarm's update took until it said
    completed), from the service's UpdateStatus; waits for completed."""
    while True:
        status = client.api.inspect_service(service).get("UpdateStatus") or {}
        if status.get("State") == "completed":
            started, completed = stamp(status["StartedAt"]), stamp(status["CompletedAt"])
            return started - called, completed - started
        time.sleep(0.05)


def stamp(text):
    """Seconds since the epoch of a Docker timestamp (RFC 3339, nanoseconds)."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return moment.timestamp() + float(f"0.{fraction or 0}")


def main():
    from tests.swarm_cluster import SwarmCluster

    swarm = SwarmCluster(indexes=(10, 11, 12))
    started = []  # every process this bench starts, ended in the finally, whatever failed
    try:
        swarm.start()
        manager = ["docker", "-H", swarm.manager.docker_host]
        satellite = start_satellite("rollout-mgr", DOCKER_HOST=swarm.manager.docker_host,
                                    SATELLITE_CONNECTOR="swarm")
        started.append(satellite.stop)
        base, session, api, _ = setup_api([satellite])
        started.append(lambda: (api.terminate(), api.wait()))
        env = {**os.environ, "GENISYS_COMPUTE_FILE": "", "GENISYS_CONSUL_HOST": "", "PYTHONUNBUFFERED": "1"}
        reconciler = subprocess.Popen([sys.executable, "manage.py", "genisys"], cwd=ROOT, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, env=env)  # at its defaults: what a user runs
        threading.Thread(target=keep_log, args=(reconciler.stdout, RECONCILER_LOG), daemon=True).start()
        started.append(lambda: (reconciler.terminate(), reconciler.wait()))
        print(f"reconciler log: {RECONCILER_LOG}; satellite log: {satellite.log_path}")
        client = swarm.manager.client()
        ours = [api.pid, reconciler.pid, satellite.process.pid]
        run(manager, client, base, session, satellite, lambda: cpu_seconds(*ours))
    finally:
        for stop in reversed(started):
            stop()
        swarm.stop()


def children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(manager, client, base, session, satellite, our_cpu):
    """Both paths' rollouts, ABBA, and the figures."""
    session.post(f"{base}/compute", json={"name": "swarm", "connector": satellite.url}).raise_for_status()
    definition = {"name": "bench", "image": TEST_IMAGE, "command": "sleep 3600", "healthcheck": HEALTHCHECK,
                  "environment": {"RELEASE": "0"}, "update": POLICY}
    session.post(f"{base}/service", json=definition).raise_for_status()
    scaled = session.post(f"{base}/service/bench/scale?wait=5m", json={"number": SLOTS})
    assert scaled.status_code == 200, scaled.text
    subprocess.run([*manager, "service", "create", "-q", "--detach=false", "--name", "bench-cli", "--replicas",
                    str(SLOTS), "--health-cmd", "true", "--health-interval", "300ms", "--health-timeout", "10s",
                    "--health-retries", "3", "--env", "RELEASE=0", *CLI_POLICY, TEST_IMAGE, "sleep", "3600"],
                   check=True, capture_output=True)
    release = iter(range(1, 100))
    spent = {}  # CPU seconds a rollout: BoatLoad's processes in its rollouts, the CLI in its, BoatLoad's in the CLI's
    minimums = []

    def boatload():
        counter, started, cpu = RunningCount(client, "bl-bench"), time.time(), our_cpu()
        answer = session.put(f"{base}/service/bench?wait=10m",
                             json={**definition, "environment": {"RELEASE": str(next(release))}})
        returned = time.time() - started
        spent.setdefault("boatload", []).append(our_cpu() - cpu)
        minimums.append(counter.stop())
        assert answer.status_code == 200 and answer.json()["deployment"]["state"] == "succeeded", answer.text
        return returned, swarm_times(client, "bl-bench", started)

    def cli():
        """(seconds until the CLI returned, Swarm's times). The CLI returns once every task has run the new
        spec for the monitor window, before Swarm's update completes: Swarm's updater waits its delay after
        the last batch too, then one more monitor window (docker/cli#373 for what the CLI then misses)."""
        counter, started, cpu = RunningCount(client, "bench-cli"), time.time(), (our_cpu(), children_cpu())
        subprocess.run([*manager, "service", "update", "-q", "--detach=false", "--env-add",
                        f"RELEASE={next(release)}", *CLI_POLICY, "bench-cli"], check=True, capture_output=True)
        returned = time.time() - started
        spent.setdefault("cli", []).append(children_cpu() - cpu[1])
        spent.setdefault("boatload idle", []).append(our_cpu() - cpu[0])
        counter.stop()
        return returned, swarm_times(client, "bench-cli", started)

    ours, theirs, ours_swarm, theirs_swarm = [], [], [], []
    for _ in range(ROUNDS):
        for path, times, swarm_of in ((boatload, ours, ours_swarm), (cli, theirs, theirs_swarm),
                                      (cli, theirs, theirs_swarm), (boatload, ours, ours_swarm)):
            at = datetime.now(UTC)
            returned, swarm = path()
            print(f"  {at:%H:%M:%S} {path.__name__}: {returned:.2f}s", flush=True)
            times.append(returned)
            swarm_of.append(swarm)
    completed = [started + took for started, took in theirs_swarm]
    ratio = median(ours) / median(theirs)
    print(f"rollout of {SLOTS} slots, parallelism 2, min_healthy_time 2s, start-first, on a 3-node Swarm")
    print(f"  BoatLoad (PUT ?wait=, reconciler at its defaults): median {median(ours):.2f}s  "
          f"{' '.join(f'{t:.2f}' for t in ours)}")
    print(f"  docker service update --detach=false:        median {median(theirs):.2f}s  "
          f"{' '.join(f'{t:.2f}' for t in theirs)}")
    print(f"  docker, until Swarm's UpdateStatus is completed: median {median(completed):.2f}s  "
          f"{' '.join(f'{t:.2f}' for t in completed)}")
    for label, swarm in (("BoatLoad", ours_swarm), ("docker  ", theirs_swarm)):
        print(f"  {label}: Swarm started the update after median {median(s for s, _ in swarm):.2f}s, its update "
              f"took median {median(t for _, t in swarm):.2f}s  "
              f"{' '.join(f'{s:.2f}+{t:.2f}' for s, t in swarm)}")
    print(f"  ratio BoatLoad / docker CLI: {ratio:.2f} (target ≤ 1.0)")
    print(f"  ratio BoatLoad / docker until Swarm says completed: {median(ours) / median(completed):.2f}")
    print(f"  CPU a rollout: BoatLoad's API, reconciler and satellite median {median(spent['boatload']):.2f}s "
          f"(the same while the CLI rolls: {median(spent['boatload idle']):.2f}s); the docker CLI "
          f"{median(spent['cli']):.2f}s")
    print(f"  minimum running during BoatLoad's start-first rollouts: {min(minimums)} of {SLOTS} "
          f"(target {SLOTS})")


if __name__ == "__main__":
    main()
