"""gunicorn settings of the API server (`gunicorn -c python:boatload.gunicorn_conf boatload.wsgi`).

gevent workers: each connection is a greenlet, so open follow streams and clients that send
their headers slowly cost a little memory each, never a worker or a thread (docs/serving.md).
Every way BoatLoad starts the API (make run, the image's entrypoint, the benches and tests)
uses this file; command-line options still override it.
"""
import os
import tempfile
from pathlib import Path

from common.env import env_duration

worker_class = "gevent"
workers = int(os.environ.get("BOATLOAD_WORKERS", "2"))
worker_connections = int(os.environ.get("BOATLOAD_WORKER_CONNECTIONS", "4096"))
timeout = 60  # the gevent worker notifies the master from its own greenlet: only a stuck hub is killed
graceful_timeout = 10
# An idle connection stays open past a heartbeat interval (a third of BOATLOAD_HOST_DOWN_AFTER), so a
# satellite's next heartbeat reuses it: a new connection (and TLS handshake) a beat cost more than the beat.
keepalive = int(env_duration("BOATLOAD_KEEPALIVE", env_duration("BOATLOAD_HOST_DOWN_AFTER", 30) / 3 + 5))
control_socket_disable = True
limit_request_line = 8190  # gunicorn's most: room for a page cursor of a long path (4096 characters)
if os.environ.get("BOATLOAD_LOG_FORMAT", "").lower() == "json":  # gunicorn's own lines as JSON lines too
    from common.logfmt import gunicorn_logconfig

    logconfig_dict = gunicorn_logconfig()


def post_fork(server, worker):
    """psycopg2 waits for Postgres through gevent, so a query yields instead of blocking the worker."""
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()


# Prometheus multiprocess mode (prometheus_client's documented set-up for gunicorn): every
# worker writes its counters to files in PROMETHEUS_MULTIPROC_DIR and /metrics sums them. make
# run and the image's entrypoint name the folder; any other start gets a fresh one. It is
# emptied when the master starts: files of an earlier run would add to this one's counters.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="boatload-prometheus-")


def on_starting(server):
    folder = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("*.db"):
        path.unlink()
    os.chmod(folder, 0o700)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
