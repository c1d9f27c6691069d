"""gunicorn settings of the API server (`gunicorn -c python:boatload.gunicorn_conf boatload.wsgi`).

gevent workers: each connection is a greenlet, so open follow streams and clients that send
their headers slowly cost a little memory each, never a worker or a thread (docs/serving.md).
Every way BoatLoad starts the API (make run, the image's entrypoint, the benches and tests)
uses this file; command-line options still override it.
"""
import os

worker_class = "gevent"
workers = int(os.environ.get("BOATLOAD_WORKERS", "2"))
worker_connections = int(os.environ.get("BOATLOAD_WORKER_CONNECTIONS", "4096"))
timeout = 60  # the gevent worker notifies the master from its own greenlet: only a stuck hub is killed
graceful_timeout = 10
keepalive = 5
control_socket_disable = True
limit_request_line = 8190  # gunicorn's most: room for a page cursor of a long path (4096 characters)


def post_fork(server, worker):
    """psycopg2 waits for Postgres through gevent, so a query yields instead of blocking the worker."""
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
