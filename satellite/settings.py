"""Settings of a satellite, read from the environment (see README, Configuration). No database."""
import secrets
import socket
from pathlib import Path

from common.env import env_bool, env_duration, env_int, env_list, env_str, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = False
# Nothing a satellite serves uses sessions or signed cookies; the key only satisfies Django.
SECRET_KEY = env_str("SATELLITE_SECRET_KEY") or secrets.token_urlsafe(32)
ALLOWED_HOSTS = ["*"]  # every request is authenticated by its HMAC signature instead
INSTALLED_APPS = ["rest_framework", "satellite"]
MIDDLEWARE = ["common.requestid.RequestIdMiddleware", "common.logfmt.AccessLogMiddleware",
              "django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "satellite.urls"
WSGI_APPLICATION = "satellite.wsgi.application"
DATABASES = {}
USE_TZ = True
TIME_ZONE = "UTC"
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024
APPEND_SLASH = False

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["satellite.auth.SignatureAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["common.parsers.JSONParser"],  # objects only, depth-limited: bad bodies are 400
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "satellite.engine.exception_handler",  # common.errors' handler, engine errors mapped
}

# Identity, enrolment and heartbeats.
NAME = env_str("SATELLITE_NAME", socket.gethostname().split(".")[0].lower())
BIND = env_str("SATELLITE_BIND", "127.0.0.1")
PORT = env_int("SATELLITE_PORT", 7051)
# https (the default) serves TLS with the satellite's own certificate; http only on a loopback bind.
URL = env_str("SATELLITE_URL", f"https://{'127.0.0.1' if BIND in ('0.0.0.0', '::') else BIND}:{PORT}")
STATE_DIR = Path(env_str("SATELLITE_STATE_DIR", str(BASE_DIR / "var" / "satellite")))
API_URL = env_str("BOATLOAD_API_URL")
JOIN_TOKEN = env_str("SATELLITE_JOIN_TOKEN")
HEARTBEAT_INTERVAL = env_duration("SATELLITE_HEARTBEAT_INTERVAL", 0)  # 0: as the API says at enrolment
# How the satellite verifies the API before it sends its join token: the SHA-256 fingerprint of the
# API's certificate (from the join command), or a CA file; else the system's CAs for https.
API_FINGERPRINT = env_str("BOATLOAD_API_FINGERPRINT")
API_CA = env_str("BOATLOAD_API_CA")
ADDRESSES = {
    "internal": env_str("SATELLITE_ADDRESS_INTERNAL", ""),
    "cloud": env_str("SATELLITE_ADDRESS_CLOUD", ""),
    "public": env_str("SATELLITE_ADDRESS_PUBLIC", ""),
}
LABELS = dict(item.split("=", 1) for item in env_list("SATELLITE_LABELS") if "=" in item)
# Labels put on every container this satellite creates, besides the boatload.* ones.
CONTAINER_LABELS = dict(item.split("=", 1) for item in env_list("SATELLITE_CONTAINER_LABELS") if "=" in item)
# Label key prefixes users may not set (besides the keys of CONTAINER_LABELS and boatload.*).
RESERVED_LABEL_PREFIXES = ["boatload.", *env_list("SATELLITE_RESERVED_LABEL_PREFIXES")]
# Fair shares (satellite/limits.py): (per host, per user) at once of each kind; over them: 429.
LIMITS = {
    "fetch": (env_int("SATELLITE_MAX_FETCHES", 16), env_int("SATELLITE_MAX_FETCHES_PER_USER", 4)),
    "follow": (env_int("SATELLITE_MAX_FOLLOWS", 2000), env_int("SATELLITE_MAX_FOLLOWS_PER_USER", 200)),
    "download": (env_int("SATELLITE_MAX_DOWNLOADS", 32), env_int("SATELLITE_MAX_DOWNLOADS_PER_USER", 8)),
}
BUSY_RETRY_AFTER = env_int("SATELLITE_BUSY_RETRY_AFTER", 5)  # seconds, in a 429's Retry-After
# Open connections the satellite serves at once (each a greenlet: streams, slow clients, calls).
MAX_CONNECTIONS = env_int("SATELLITE_MAX_CONNECTIONS", 4096)
# How long an idle connection from the API stays open. gunicorn's 2 s was shorter than the API's gaps between
# calls on its pooled connections: a call sent as the timer ran out, or while the satellite stalled (load, a
# pause), was reset unread, and a create's outcome then unknown.
KEEPALIVE = env_duration("SATELLITE_KEEPALIVE", 75)
DOCKER_POOL = env_int("SATELLITE_DOCKER_POOL", 64)  # keep-alive connections to the engine
# Stats streams of own running containers opened before anyone asks (satellite/metrics.keep_warm);
# an interval of 0 turns it off. Each open stream is one engine connection sampling once a second.
STATS_WARM_INTERVAL = env_duration("SATELLITE_STATS_WARM_INTERVAL", 10)
STATS_WARM_MAX = env_int("SATELLITE_STATS_WARM_MAX", 100)

# Limits of what a satellite accepts.
SCRIPT_MAX_BYTES = env_int("SATELLITE_SCRIPT_MAX_BYTES", 4096)
DATA_MAX_BYTES = env_int("SATELLITE_DATA_MAX_BYTES", 100 * 1024 * 1024)
DATA_MAX_ENTRIES = env_int("SATELLITE_DATA_MAX_ENTRIES", 1000)
DATA_MAX_UNPACKED_BYTES = env_int("SATELLITE_DATA_MAX_UNPACKED_BYTES", 512 * 1024 * 1024)
DATA_MAX_RATIO = env_int("SATELLITE_DATA_MAX_RATIO", 100)
FETCH_TIMEOUT = env_duration("SATELLITE_FETCH_TIMEOUT", 10)
FETCH_ALLOW = env_list("SATELLITE_FETCH_ALLOW")  # networks (CIDR) or host names a fetch may reach though private
HOST_PATHS = env_list("SATELLITE_HOST_PATHS")  # host folders a host-path volume may be under
RAW_ALLOW_HOST_NAMESPACES = env_bool("SATELLITE_RAW_ALLOW_HOST_NAMESPACES", False)
RAW_ALLOW_DEVICES = env_bool("SATELLITE_RAW_ALLOW_DEVICES", False)
RAW_ALLOW_CAPABILITIES = env_bool("SATELLITE_RAW_ALLOW_CAPABILITIES", False)
# Raw create may join other containers (container:<id> namespaces, VolumesFrom, Links, named
# networks and named volumes), loosen seccomp/AppArmor and /proc masking, and set sysctls.
RAW_ALLOW_SHARING = env_bool("SATELLITE_RAW_ALLOW_SHARING", False)
RAW_ALLOW_SECURITY_OPTIONS = env_bool("SATELLITE_RAW_ALLOW_SECURITY_OPTIONS", False)
RAW_ALLOW_SYSCTLS = env_bool("SATELLITE_RAW_ALLOW_SYSCTLS", False)
STOP_TIMEOUT = env_int("SATELLITE_STOP_TIMEOUT", 10)
PUBLISH_ADDRESS = env_str("SATELLITE_PUBLISH_ADDRESS", "0.0.0.0")  # where ports of scopes wider than host are published
DOCKER_TIMEOUT = env_duration("SATELLITE_DOCKER_TIMEOUT", 60)

# Plain lines, or JSON lines (SATELLITE_LOG_FORMAT, else BOATLOAD_LOG_FORMAT); SATELLITE_ACCESS_LOG logs every
# request with its duration (gunicorn's line when plain, a JSON line of common/logfmt.py when json).
LOGGING = logging_config("SATELLITE_LOG_LEVEL", ("SATELLITE_LOG_FORMAT", "BOATLOAD_LOG_FORMAT"), host=NAME)
LOG_JSON = LOGGING["handlers"]["stdout"]["formatter"] == "json"
ACCESS_LOG = env_bool("SATELLITE_ACCESS_LOG", False) and LOG_JSON

# The Genisys connector protocol on this satellite.
CONNECTOR = env_str("SATELLITE_CONNECTOR", "docker")  # docker: plain containers; swarm: Swarm services
CONNECTOR_AUTH = env_str("SATELLITE_CONNECTOR_AUTH", "signed")  # signed | token | none
CONNECTOR_TOKEN = env_str("SATELLITE_CONNECTOR_TOKEN")
SERVICES_FILE = env_str("SATELLITE_SERVICES_FILE")  # services.py (seed format) or JSON, merged at start-up
MAX_SCALE = env_int("SATELLITE_MAX_SCALE", 100)
SCALE_PARALLELISM = env_int("SATELLITE_SCALE_PARALLELISM", 16)
SCALE_TIMEOUT = env_duration("SATELLITE_SCALE_TIMEOUT", 120)
# Output of the service slots the connector removes (satellite/connector/slot_logs.py): the last
# SLOT_LOG_KEEP bytes of each (0: none kept), at most SLOT_LOG_COUNT a service, none older than SLOT_LOG_RETENTION.
SLOT_LOG_KEEP = max(0, env_int("SATELLITE_SLOT_LOG_KEEP", 1024 * 1024))
SLOT_LOG_COUNT = max(1, env_int("SATELLITE_SLOT_LOG_COUNT", 50))
SLOT_LOG_RETENTION = env_duration("SATELLITE_SLOT_LOG_RETENTION", 7 * 86400)
