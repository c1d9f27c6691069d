"""Container metrics answered from live stats streams.

A one-shot `stats` call waits for two samples (about 1 s), and twenty in parallel take
over 2 s. Instead the satellite keeps one streaming `stats` connection per container it
was asked about and answers from its latest frame, which already carries the previous
sample needed for CPU %. The engine samples its streamed containers once a second: a new
stream gets its first frame at the next sample (at once when no other stream is open), and
that first one has no previous sample, so no CPU % yet.

The host's samples are kept warm: the satellite follows its engine's events and opens the
stream of each of its own containers as it starts (created and started here, restarted, or
started again by Docker's restart policy), and every SATELLITE_STATS_WARM_INTERVAL it also
sweeps its running containers for any without one (the catch-up after a lost event stream,
which it opens again with backoff). At most SATELLITE_STATS_WARM_MAX streams are kept so,
the newest containers' first. A kept stream is read until its container stops or is
removed; a stream only a caller opened is closed once nobody asked for it during
`IDLE_AFTER` seconds, or when its container stops.

A call waits (at most SAMPLE_WAIT) for the streams it had to open itself, until they can
give a CPU %; from a stream opened before the call it takes the frame read so far (waiting
only for a first frame, if it has none yet), so a container that started under a second ago
answers cpu_percent null instead of holding the whole call for its second frame.
"""
import contextlib
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
# Placeholder frames (the engine's, for a container that is not running) a new stream reads
# before it gives up on a container that never ran under it; one after a real frame ends it.
PLACEHOLDERS_BEFORE_CLOSE = 3
# The engine's event stream is opened again after RECONNECT_FIRST seconds, doubling up to
# RECONNECT_MAX while it keeps failing; a stream that lasted RECONNECT_MAX starts over at the first.
RECONNECT_FIRST = 1
RECONNECT_MAX = 10
WARM_EVENTS = ("start", "die", "destroy")


def is_placeholder(frame):
    return frame.get("read", "").startswith("0001-")


class StatsFeed:
    """One container's stats stream, read by its own thread; `frame` is the latest real frame."""

    def __init__(self, container_id, *, kept=False, on_end=None):
        self.container_id = container_id
        self.frame = None
        self.read_once = threading.Event()  # a first frame, or the feed ended
        self.sampled = threading.Event()  # a frame with the previous sample, so CPU % can be computed
        self.last_asked = time.monotonic()
        self.kept = kept  # kept warm: read until its container stops, whether anyone asks or not
        self.closed = False
        self.on_end = on_end
        threading.Thread(target=self._read, name=f"stats-{container_id[:12]}", daemon=True).start()

    def close(self):
        """End the feed now for callers; its thread lets the stream go at its next frame (within a second)."""
        self.closed = True
        self.frame = None
        self.read_once.set()
        self.sampled.set()

    def _read(self):
        stream = None
        placeholders = 0
        try:
            stream = client().api.stats(self.container_id, stream=True, decode=True)
            for frame in stream:
                if self.closed:
                    break
                if is_placeholder(frame):  # the container is not running: it stopped (or never ran here)
                    placeholders += 1
                    if self.frame is not None or placeholders >= PLACEHOLDERS_BEFORE_CLOSE:
                        break
                    continue
                self.frame = frame
                self.read_once.set()
                if frame.get("precpu_stats", {}).get("system_cpu_usage"):
                    self.sampled.set()
                if not self.kept and time.monotonic() - self.last_asked > IDLE_AFTER:
                    break
        except Exception:  # the container went away or the engine dropped the stream
            pass
        finally:
            self.close()
            if stream is not None:
                stream.close()
            if self.on_end is not None:
                self.on_end(self)


class StatsHub:
    """The open feeds by Docker id: opened when a caller asks, or kept warm for own running containers."""

    def __init__(self):
        self.feeds = {}
        self.lock = threading.Lock()

    def _open(self, container_id, *, kept):
        feed = self.feeds[container_id] = StatsFeed(container_id, kept=kept, on_end=self._ended)
        return feed

    def _ended(self, feed):
        with self.lock:
            if self.feeds.get(feed.container_id) is feed:
                del self.feeds[feed.container_id]

    def _kept(self):
        return sum(1 for feed in self.feeds.values() if feed.kept and not feed.closed)

    def feed(self, container_id):
        """(the feed of `container_id`, whether this call opened it) for a caller who asks now."""
        with self.lock:
            feed = self.feeds.get(container_id)
            opened = feed is None or feed.closed
            if opened:
                feed = self._open(container_id, kept=False)
            feed.last_asked = time.monotonic()
            return feed, opened

    def keep(self, container_id):
        """Keep the stream of `container_id` (one of this satellite's running containers) open, unless
        SATELLITE_STATS_WARM_MAX streams are kept already. True when it is kept."""
        with self.lock:
            feed = self.feeds.get(container_id)
            if feed is not None and not feed.closed and feed.kept:
                return True
            if self._kept() >= settings.STATS_WARM_MAX:
                return False
            if feed is None or feed.closed:
                self._open(container_id, kept=True)
            else:
                feed.kept = True
            return True

    def release(self, keep_only):
        """Stop keeping the streams of containers not in `keep_only`: they close once idle, as asked-for ones do."""
        with self.lock:
            for container_id, feed in self.feeds.items():
                if feed.kept and container_id not in keep_only:
                    feed.kept = False

    def drop(self, container_id):
        """Close the feed of a container that stopped or was removed."""
        with self.lock:
            feed = self.feeds.pop(container_id, None)
        if feed is not None:
            feed.close()

    def state(self):
        """{Docker id: {"kept", "read", "sampled"}} of every open feed (kept warm; a frame read; two, so a
        CPU % can be given): what /info shows of the warm-up."""
        with self.lock:
            return {container_id: {"kept": feed.kept, "read": feed.read_once.is_set(), "sampled": feed.sampled.is_set()}
                    for container_id, feed in self.feeds.items() if not feed.closed}

    def metrics(self, container_ids):
        """{container id: metrics} for every id; stopped ones report running False."""
        asked = [self.feed(container_id) for container_id in container_ids]
        deadline = time.monotonic() + SAMPLE_WAIT
        for feed, opened in asked:
            (feed.sampled if opened else feed.read_once).wait(max(0, deadline - time.monotonic()))
        return {feed.container_id: summarise(feed.frame) for feed, _ in asked}


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


def sweep():
    """Keep the streams of the newest SATELLITE_STATS_WARM_MAX own running containers open (opening any
    that has none), and stop keeping those of older ones."""
    newest = list(own_running())[:settings.STATS_WARM_MAX]  # the engine lists newest first
    hub.release(set(newest))
    for container_id in newest:
        hub.keep(container_id)


def on_event(event):
    """An own container's start opens its stream; its death or removal closes it."""
    container_id = event.get("id") or (event.get("Actor") or {}).get("ID")
    action = event.get("Action") or event.get("status")
    if not container_id:
        return
    if action == "start":
        if not hub.keep(container_id):
            log.debug("stats warm-up: %s streams kept already, %s not kept", settings.STATS_WARM_MAX, container_id)
    elif action in ("die", "destroy"):
        hub.drop(container_id)


def follow_events(stop_event):
    """Until `stop_event`: follow the engine's start, die and destroy events of this satellite's own
    containers (on_event). On each (re)connection the running ones are swept first, for what started
    while no event stream was open; a failed or ended stream is opened again with backoff."""
    following = {}
    threading.Thread(target=close_on_stop, args=(stop_event, following), name="stats-events-stop",
                     daemon=True).start()
    delay = RECONNECT_FIRST
    while not stop_event.is_set():
        connected = time.monotonic()
        try:
            with docker_errors():
                events = following["events"] = client().api.events(decode=True, filters={
                    "type": "container", "event": list(WARM_EVENTS), "label": containers.own(LABEL_CONTAINER)})
            with contextlib.closing(events):
                sweep()
                for event in events:
                    on_event(event)
            error = "the engine ended the event stream"
        except Exception as exc:  # the engine is away, or restarting
            error = exc
        if stop_event.is_set():
            return
        if time.monotonic() - connected >= RECONNECT_MAX:
            delay = RECONNECT_FIRST
        log.warning("stats warm-up: %s; following the engine's events again in %ss", error, delay)
        if stop_event.wait(delay):
            return
        delay = min(delay * 2, RECONNECT_MAX)


def close_on_stop(stop_event, following):
    """Once `stop_event` is set, close the event stream being followed, so its follower returns."""
    stop_event.wait()
    if following.get("events") is not None:
        following["events"].close()


def keep_warm(stop_event):
    """Until `stop_event`: keep the stats streams of this satellite's running containers open, opened as
    each starts (follow_events) and swept every SATELLITE_STATS_WARM_INTERVAL (the catch-up)."""
    threading.Thread(target=follow_events, args=(stop_event,), name="stats-events", daemon=True).start()
    while not stop_event.wait(settings.STATS_WARM_INTERVAL):
        try:
            sweep()
        except Exception as error:  # the engine is away: the next round tries again
            log.warning("stats warm-up: %s", error)


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
