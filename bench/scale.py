"""Scale benchmark, in one run: a service 0→30 on one host through the API and connector, against

  (a) a sequential raw-SDK create+start loop,
  (b) the best parallel raw-SDK loop (16 threads: the engine's own floor here),
  (c) `docker service scale` on Docker Swarm (a second engine made a one-node Swarm).

Targets: API within 1.15× of (b), at least 1.5× faster than (a), faster than (c).
Run: make bench   (or .venv/bin/python -m bench.scale)
"""
import subprocess
from concurrent.futures import ThreadPoolExecutor

from bench.common import RUN_LABEL, TEST_IMAGE, remove_run_containers, setup_api, start_satellite, timed

COUNT = 30


def main():
    import docker
    from tests.engines import ExtraEngine

    satellite = start_satellite("scale-0")
    base, session, api, _ = setup_api([satellite])
    client = docker.from_env(max_pool_size=16)  # one connection per thread of the parallel loop
    key, value = RUN_LABEL.split("=")
    swarm = None
    try:
        session.post(f"{base}/compute", json={"name": "local", "connector": satellite.url}).raise_for_status()
        session.post(f"{base}/service", json={"name": "bench", "image": TEST_IMAGE, "command": "sleep 600"}
                     ).raise_for_status()

        def through_api():
            answer = session.post(f"{base}/service/bench/scale", json={"number": COUNT})
            assert answer.json()["computes"]["local"]["running"] == COUNT, answer.text

        def one_raw(_):
            created = client.api.create_container(TEST_IMAGE, command=["sleep", "600"], labels={key: value})
            client.api.start(created["Id"])

        def sequential():
            for n in range(COUNT):
                one_raw(n)

        def parallel():
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(one_raw, range(COUNT)))

        results = {}
        for name, run in (("api", through_api), ("sequential", sequential), ("parallel", parallel)):
            results[name] = timed(run)[0]
            if name == "api":
                session.post(f"{base}/service/bench/scale", json={"number": 0}).raise_for_status()
            remove_run_containers(client)

        swarm = ExtraEngine(3).start()
        host = ["-H", swarm.docker_host]
        subprocess.run(["docker", *host, "swarm", "init", "--advertise-addr", "127.0.0.1"], capture_output=True)
        subprocess.run(["docker", *host, "service", "create", "-q", "--name", "bench-scale", "--replicas", "0",
                        TEST_IMAGE, "sleep", "600"], check=True, capture_output=True)
        results["swarm"] = timed(lambda: subprocess.run(["docker", *host, "service", "scale",
                                                         f"bench-scale={COUNT}"], check=True,
                                                        capture_output=True))[0]
        api_s, seq, par, sw = (results[k] for k in ("api", "sequential", "parallel", "swarm"))
        print(f"scale 0→{COUNT}  API+connector {api_s:.2f} s | (a) sequential raw {seq:.2f} s | "
              f"(b) parallel raw (16 threads) {par:.2f} s | (c) docker service scale {sw:.2f} s")
        print(f"               API/(b) {api_s / par:.2f} (target <= 1.15), (a)/API {seq / api_s:.2f} "
              f"(target >= 1.5), (c)/API {sw / api_s:.2f} (target > 1)")
    finally:
        api.terminate()
        api.wait()
        satellite.stop()
        remove_run_containers(client)
        if swarm is not None:
            subprocess.run(["docker", "-H", swarm.docker_host, "swarm", "leave", "--force"], capture_output=True)
            swarm.stop()


if __name__ == "__main__":
    main()
