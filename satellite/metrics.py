"""Container metrics answered from live stats streams.

A one-shot `stats` call waits for two samples (about 1 s), and twenty in parallel take
over 2 s. Instead the satellite keeps one streaming `stats` connection per container it
was asked about and answers from its latest frame, which already carries the previous
sample needed for CPU %. A stream that nobody asked for during `IDLE_AFTER` seconds, or
whose container stopped, is closed.

The host's samples are kept warm (`keep_warm`, every SATELLITE_STATS_WARM_INTERVAL): the
satellite opens the streams of its own running containers (at most SATELLITE_STATS_WARM_MAX)
before anyone asks, so the first /stats call answers at once from frames already read.
"""
import logging
import threading
import time

from django.conf import settings

from satellite import containers
from satellite.containers import LABEL_CONTAINER
from satellite.engine import client, docker_errors

IDLE_AFTER = 300
# How long a call waits for streams that have no CPU sample yet; a call never takes longer,
# and answers cpu_percent null for a container whose stream has not sampled twice yet.
SAMPLE_WAIT = 1.2


class StatsFeed:
    def __init__(self, container_id):
        self.container_id = container_id
        self.frame = None
        self.sampled = threading.Event()  # a frame with the previous sample, so CPU % can be computed
        self.last_asked = time.monotonic()
        self.closed = False
        self.stream = None
        threading.Thread(target=self._read, name=f"stats-{container_id[:12]}", daemon=True).start()

    def _read(self):
        try:
            self.stream = client().api.stats(self.container_id, stream=True, decode=True)
            for frame in self.stream:
                if frame.get("read", "").startswith("0001-"):
                    continue  # the engine's placeholder for a container that is not running
                self.frame = frame
                if frame.get("precpu_stats", {}).get("system_cpu_usage"):
                    self.sampled.set()
                if time.monotonic() - self.last_asked > IDLE_AFTER:
                    break
        except Exception:  # the container went away or the engine dropped the stream
            pass
        finally:
            self.frame = None
            self.closed = True
            self.sampled.set()
            if self.stream is not None:
                self.stream.close()


class StatsHub:
    def __init__(self):
        self.feeds = {}
        self.lock = threading.Lock()

    def feed(self, container_id):
        with self.lock:
            feed = self.feeds.get(container_id)
            if feed is None or feed.closed:
                feed = self.feeds[container_id] = StatsFeed(container_id)
            feed.last_asked = time.monotonic()
            return feed

    def metrics(self, container_ids):
        """{container id: metrics} for every id; stopped ones report running False."""
        feeds = [self.feed(container_id) for container_id in container_ids]
        deadline = time.monotonic() + SAMPLE_WAIT
        for feed in feeds:
            feed.sampled.wait(max(0, deadline - time.monotonic()))
        return {feed.container_id: summarise(feed.frame) for feed in feeds}


def summarise(frame):
    if not frame or not frame.get("cpu_stats", {}).get("system_cpu_usage"):
        return {"running": False}
    cpu, precpu = frame["cpu_stats"], frame.get("precpu_stats") or {}
    online = cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or [1])
    cpu_percent = None  # one sample only so far: no rate yet
    if precpu.get("system_cpu_usage"):
        cpu_delta = cpu["cpu_usage"]["total_usage"] - precpu["cpu_usage"]["total_usage"]
        system_delta = cpu["system_cpu_usage"] - precpu["system_cpu_usage"]
        cpu_percent = round(cpu_delta / system_delta * online * 100, 2) if system_delta > 0 else 0.0
    memory = frame.get("memory_stats") or {}
    stats = memory.get("stats") or {}
    cache = stats.get("inactive_file", stats.get("total_inactive_file", stats.get("cache", 0)))
    networks = frame.get("networks") or {}
    blkio = (frame.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    return {
        "running": True,
        "read": frame["read"],
        "cpu_percent": cpu_percent,
        "cpu_seconds": cpu["cpu_usage"]["total_usage"] / 1e9,
        "memory_usage": max(memory.get("usage", 0) - cache, 0),
        "memory_limit": memory.get("limit", 0),
        "network_rx_bytes": sum(n.get("rx_bytes", 0) for n in networks.values()),
        "network_tx_bytes": sum(n.get("tx_bytes", 0) for n in networks.values()),
        "block_read_bytes": sum(e["value"] for e in blkio if e.get("op", "").lower() == "read"),
        "block_write_bytes": sum(e["value"] for e in blkio if e.get("op", "").lower() == "write"),
        "pids": (frame.get("pids_stats") or {}).get("current", 0),
    }


hub = StatsHub()
log = logging.getLogger("satellite.metrics")


def own_running():
    """{Docker id: listing row} of this satellite's running BoatLoad containers."""
    with docker_errors():
        rows = client().api.containers(filters={"label": containers.own(LABEL_CONTAINER), "status": "running"})
    return {row["Id"]: row for row in rows}


def keep_warm(stop_event):
    """Until `stop_event`: every SATELLITE_STATS_WARM_INTERVAL, open the stats stream of each own running
    container that has none (the newest SATELLITE_STATS_WARM_MAX), and keep the open ones from idling."""
    while True:
        try:
            for container_id in list(own_running())[:settings.STATS_WARM_MAX]:  # the engine lists newest first
                hub.feed(container_id)
        except Exception as error:  # the engine is away: the next round tries again
            log.warning("stats warm-up: %s", error)
        if stop_event.wait(settings.STATS_WARM_INTERVAL):
            return


def metrics_of_all():
    """Metrics of every running BoatLoad container on this host, keyed by container id, each with its name
    and the BoatLoad labels that say whose it is (`container`, `service`, `owner`: empty when not set)."""
    rows = own_running().values()
    names = {row["Id"]: row["Names"][0].lstrip("/") for row in rows}
    labels = {row["Id"]: {key: (row.get("Labels") or {}).get(label, "") for key, label in IDENTITY_LABELS.items()}
              for row in rows}
    return {cid: {"name": names[cid], "labels": labels[cid], **values}
            for cid, values in hub.metrics(list(names)).items()}


IDENTITY_LABELS = {"container": LABEL_CONTAINER, "service": containers.LABEL_SERVICE, "owner": containers.LABEL_OWNER}
