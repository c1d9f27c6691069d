"""Run a satellite: `python -m satellite`.

Makes its TLS key and self-signed certificate at first start (unless SATELLITE_URL is plain
http on loopback), enrols once with BOATLOAD_API_URL and SATELLITE_JOIN_TOKEN when the state
folder holds no keys yet, then serves HTTPS on SATELLITE_BIND:SATELLITE_PORT with gunicorn
and heartbeats. One process with gevent: every connection is a greenlet, so a thousand open
follow streams or slow clients cost memory, not threads, and the nonce memory and stats
streams stay shared (docs/serving.md).
"""
from gevent import monkey

monkey.patch_all()  # first of all: every socket, lock and thread made after this cooperates

import logging  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
import warnings  # noqa: E402

os.environ["DJANGO_SETTINGS_MODULE"] = "satellite.settings"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from gunicorn.app.base import BaseApplication  # noqa: E402

from common.logfmt import gunicorn_logconfig  # noqa: E402
from satellite import credentials, metrics  # noqa: E402
from satellite.connector.store import store  # noqa: E402
from satellite.containers import satellite_id  # noqa: E402
from satellite.wsgi import application  # noqa: E402

log = logging.getLogger("satellite")


class SatelliteServer(BaseApplication):
    def __init__(self, stop_event):
        self.stop_event = stop_event
        super().__init__()

    def load_config(self):
        self.cfg.set("bind", f"{settings.BIND}:{settings.PORT}" if ":" not in settings.BIND
                     else f"[{settings.BIND}]:{settings.PORT}")
        self.cfg.set("workers", 1)
        self.cfg.set("worker_class", "gevent")
        self.cfg.set("worker_connections", settings.MAX_CONNECTIONS)
        self.cfg.set("control_socket_disable", True)
        self.cfg.set("limit_request_line", 8190)  # room for a page cursor of a long path
        self.cfg.set("timeout", 0)  # follow streams may last
        self.cfg.set("graceful_timeout", 5)
        self.cfg.set("keepalive", int(settings.KEEPALIVE))
        # With JSON logs the access lines come from common.logfmt.AccessLogMiddleware instead.
        self.cfg.set("accesslog", "-" if os.environ.get("SATELLITE_ACCESS_LOG") and not settings.LOG_JSON else None)
        self.cfg.set("access_log_format", "%(h)s \"%(r)s\" %(s)s %(B)s %(L)ss")
        if settings.LOG_JSON:
            self.cfg.set("logconfig_dict", gunicorn_logconfig(settings.NAME))
        self.cfg.set("post_worker_init", self.start_heartbeats)
        if credentials.serves_tls():
            cert_path, key_path = credentials.tls_paths()
            self.cfg.set("certfile", str(cert_path))
            self.cfg.set("keyfile", str(key_path))

    def start_heartbeats(self, worker):
        threading.Thread(target=credentials.heartbeat_forever, args=(self.stop_event,),
                         name="heartbeat", daemon=True).start()
        if settings.STATS_WARM_INTERVAL:
            threading.Thread(target=metrics.keep_warm, args=(self.stop_event,), name="stats-warm", daemon=True).start()

    def load(self):
        return application


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_connector_auth():
    """Connector auth `none` is for Genisys clients that can not sign: loopback only, and loud."""
    if settings.CONNECTOR_AUTH not in ("signed", "token", "none"):
        raise SystemExit("SATELLITE_CONNECTOR_AUTH must be signed, token or none.")
    if settings.CONNECTOR_AUTH == "token" and not settings.CONNECTOR_TOKEN:
        raise SystemExit("SATELLITE_CONNECTOR_AUTH=token needs SATELLITE_CONNECTOR_TOKEN.")
    if settings.CONNECTOR_AUTH == "none":
        if not settings.BIND.startswith("127.") and settings.BIND not in LOOPBACK:
            raise SystemExit("SATELLITE_CONNECTOR_AUTH=none is only allowed on a loopback SATELLITE_BIND.")
        log.warning("!!! SATELLITE_CONNECTOR_AUTH=none: anyone who reaches %s:%s can define and scale services "
                    "on this host (container endpoints stay signed) !!!", settings.BIND, settings.PORT)


def main():
    check_connector_auth()
    if settings.BIND not in LOOPBACK:
        log.info("serving on %s:%s; every request but /healthz must be signed", settings.BIND, settings.PORT)
    store()  # merge SATELLITE_SERVICES_FILE now, so a bad file fails at start-up
    credentials.check_transport()
    credentials.ensure_tls()  # first start: this satellite's own key and certificate
    data = credentials.enrol()
    log.info("containers of this satellite carry boatload.satellite=%s", satellite_id())
    log.info("satellite of host %s on %s (%s)", data["host"], settings.URL,
             "HTTPS, own certificate" if credentials.serves_tls() else "plain HTTP, loopback")
    warnings.filterwarnings("ignore", module="gunicorn")
    SatelliteServer(threading.Event()).run()


if __name__ == "__main__":
    main()
