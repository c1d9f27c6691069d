"""Shared pieces of the benchmarks: a real satellite on loopback and small timing helpers."""
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "satellite.settings")

from tests.conftest import RUN_LABEL, TEST_IMAGE, SatelliteProcess  # noqa: E402


def start_satellite(name="bench", **env):
    return SatelliteProcess(tempfile.mkdtemp(prefix="boatload-bench-"), name=name, env=env).start()


def remove_run_containers(client):
    for container in client.containers.list(all=True, sparse=True, filters={"label": RUN_LABEL}):
        container.remove(force=True, v=True)


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def median(values):
    return statistics.median(values)


class PeakMemory:
    """Samples a function's memory reading every 20 ms in the background."""

    def __init__(self, read):
        self.read = read
        self.peak = 0
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.read())
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.peak


__all__ = ["ROOT", "RUN_LABEL", "TEST_IMAGE", "start_satellite", "remove_run_containers", "timed", "median", "PeakMemory"]
