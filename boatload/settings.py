"""Settings of the BoatLoad API server, read from the environment (see README, Configuration)."""
import ipaddress
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from common.env import env_bool, env_duration, env_int, env_list, env_str, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("BOATLOAD_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("BOATLOAD_DEBUG", False)
SECRET_KEY = env_str("BOATLOAD_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "BOATLOAD_SECRET_KEY (or BOATLOAD_SECRET_KEY_FILE) must be set when BOATLOAD_DEBUG is off."
        )
    SECRET_KEY = "insecure-development-key-only-used-with-BOATLOAD_DEBUG"

ALLOWED_HOSTS = env_list("BOATLOAD_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("BOATLOAD_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",  # refresh tokens die with a password change, deactivation, deletion
    "rest_framework_api_key",  # its AbstractAPIKey is the base of boatload.logins.APIKey (its own model unused)
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the docs viewer's assets, served by us: no CDN needed
    "boatload",
    "boatload.logins",
    "genisys",
    "console",  # the operator console (console/), its admin branding in console/admin.py
    "observe",  # /metrics and the audit log (observe/)
]

MIDDLEWARE = [
    "observe.metrics.RequestMetricsMiddleware",  # counts and times every request, errors too
    "common.requestid.RequestIdMiddleware",
    "common.logfmt.AccessLogMiddleware",  # BOATLOAD_ACCESS_LOG: one line per request, its user and duration
    "boatload.heartbeat.HeartbeatMiddleware",  # answers heartbeats itself: none of what follows serves them
    "observe.audit.AuditMiddleware",  # every changing request leaves one audit entry (observe/audit.py)
    "common.errors.JsonErrorMiddleware",  # no HTML from any error path, DEBUG on or off
    "boatload.outage.DatabaseOutageMiddleware",  # a database that is down answers 503, not 500
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "boatload.urls"
WSGI_APPLICATION = "boatload.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates" / "html"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def _gevent_patched():
    """True in a process gevent monkey-patched (gunicorn's gevent worker patches before it loads the app)."""
    monkey = sys.modules.get("gevent.monkey")  # imported by whoever patched; never imported here
    return monkey is not None and monkey.is_module_patched("threading")


_database_url = env_str("DATABASE_URL")
if _database_url:
    DATABASES = {"default": dj_database_url.parse(_database_url, conn_max_age=env_int("BOATLOAD_CONN_MAX_AGE", 0),
                                                  conn_health_checks=True)}
    if _gevent_patched() and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # Under gevent (the API's gunicorn workers) every request is a greenlet of its own, so Django's
        # per-thread connections would connect to Postgres for every request (most of a heartbeat's
        # CPU). A per-process pool of gevent-aware connections instead (django-db-geventpool): a request
        # takes one and gives it back when it ends (CONN_MAX_AGE 0 makes Django "close" it, which returns
        # it); one given back moments ago with nothing to read is taken as it is, any other is checked
        # with `SELECT 1` first (boatload/dbpool). At most DB_POOL_MAX at once per worker (the next
        # request waits for one), DB_POOL_KEEP kept open between requests.
        DATABASES["default"].update(ENGINE="boatload.dbpool", CONN_MAX_AGE=0,
                                    CONN_HEALTH_CHECKS=False)
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            MAX_CONNS=env_int("BOATLOAD_DB_POOL_MAX", 32), REUSE_CONNS=env_int("BOATLOAD_DB_POOL_KEEP", 8))
# The heartbeat's UPDATE as a statement prepared once per connection (boatload.services._execute_prepared). Off
# behind a pooler that hands each transaction another server connection (PgBouncer's transaction mode), where a
# session's prepared statements are not there on the next one.
DB_PREPARED_STATEMENTS = env_bool("BOATLOAD_DB_PREPARED", True)
if not _database_url:
    # The embedded default (`make run`) under concurrent writers: WAL lets readers run beside the
    # one writer, every transaction takes the write lock when it begins (IMMEDIATE, so none fails
    # upgrading a read lock) and a writer waits up to BOATLOAD_SQLITE_TIMEOUT for the lock
    # instead of failing at once with "database is locked".
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": VAR_DIR / "boatload.sqlite3",
        "OPTIONS": {
            "timeout": env_duration("BOATLOAD_SQLITE_TIMEOUT", 20),
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout={};".format(
                int(env_duration("BOATLOAD_SQLITE_TIMEOUT", 20) * 1000)),
        },
    }}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("BOATLOAD_STATIC_ROOT", str(VAR_DIR / "static")))
try:  # WhiteNoise warns about a missing folder; collectstatic fills it
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
except OSError:
    pass
WHITENOISE_USE_FINDERS = DEBUG

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "boatload.logins.authentication.APIKeyAuthentication",  # Authorization: Token <key>, X-API-Key
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Bodies that are not objects, nest too deep or do not parse are 400s (boatload/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "common.parsers.JSONParser", "common.parsers.FormParser", "common.parsers.MultiPartParser",
    ],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "common.parsers.FormatNegotiation",  # ?format=xyz: 400, not 404
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "common.pagination.CursorPage",  # cursors everywhere (common/pagination.py)
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "boatload.api.schema.BoatLoadAutoSchema",
    "EXCEPTION_HANDLER": "boatload.outage.exception_handler",  # common.errors', database outages as 503
    # Client addresses of throttles: REMOTE_ADDR, or the Nth X-Forwarded-For entry behind N proxies.
    # (DRF's default, None, would trust any X-Forwarded-For a client sends.)
    "NUM_PROXIES": env_int("BOATLOAD_TRUSTED_PROXIES", 0),
}

# Login throttles (boatload/logins/throttles.py): N/s, N/m, N/h or N/d; shared by every worker
# through the database cache (its table comes from the boatload_logins migration).
LOGIN_RATE_USER = env_str("BOATLOAD_LOGIN_RATE_USER", "10/m")
LOGIN_RATE_ADDRESS = env_str("BOATLOAD_LOGIN_RATE_ADDRESS", "30/m")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "boatload_cache"}}

# /v1/schema/ and /v1/docs/ need authentication like every endpoint but /healthz, unless opened.
PUBLIC_SCHEMA = env_bool("BOATLOAD_PUBLIC_SCHEMA", False)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env_duration("BOATLOAD_ACCESS_TOKEN_LIFETIME", 15 * 60)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env_duration("BOATLOAD_REFRESH_TOKEN_LIFETIME", 24 * 3600)),
    "AUTH_HEADER_TYPES": ("Bearer",),
    # Revocation (boatload/logins/tokens.py): access tokens carry a hash of the password hash.
    "CHECK_REVOKE_TOKEN": True,
    "TOKEN_REFRESH_SERIALIZER": "boatload.logins.tokens.RefreshSerializer",
    "TOKEN_OBTAIN_SERIALIZER": "observe.audit.TokenObtainSerializer",  # a token login is an audited login
}

SPECTACULAR_SETTINGS = {
    "TITLE": "BoatLoad API",
    "DESCRIPTION": "One API in front of a fleet of Docker hosts.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"DefinitionSourceEnum": "genisys.models.DEFINED_BY"},  # a model field and an answer's
}

# Satellites and their enrolment.
JOIN_TOKEN_TTL = env_duration("BOATLOAD_JOIN_TOKEN_TTL", 3600)
HOST_DOWN_AFTER = env_duration("BOATLOAD_HOST_DOWN_AFTER", 30)
SATELLITE_TIMEOUT = env_duration("BOATLOAD_SATELLITE_TIMEOUT", 30)
# What a satellite gives a stopping container by default (SATELLITE_STOP_TIMEOUT), so a stop
# without ?timeout= is not cut short by SATELLITE_TIMEOUT.
SATELLITE_STOP_GRACE = env_duration("BOATLOAD_SATELLITE_STOP_GRACE", 10)
CREATE_PARALLELISM = env_int("BOATLOAD_CREATE_PARALLELISM", 16)
CLUSTER_READ_TIMEOUT = env_duration("BOATLOAD_CLUSTER_READ_TIMEOUT", 5)
# How long a call to a satellite or connector waits for its connection, at most: never longer than the
# call's own timeout, nor than what is left of a fan-out's deadline (common.remote.RemoteClient.timeouts).
CONNECT_TIMEOUT = env_duration("BOATLOAD_CONNECT_TIMEOUT", 5)
SCRIPT_MAX_BYTES = env_int("BOATLOAD_SCRIPT_MAX_BYTES", 4096)
MAX_INSTANCES = env_int("BOATLOAD_MAX_INSTANCES", 100)
ORPHAN_GRACE = env_duration("BOATLOAD_ORPHAN_GRACE", 300)
PUBLIC_URL = env_str("BOATLOAD_PUBLIC_URL", "http://127.0.0.1:8000")
# SHA-256 fingerprint of the certificate a satellite sees at PUBLIC_URL (the API's or its TLS
# proxy's); join commands carry it so a satellite sends its join token only to this API.
PUBLIC_FINGERPRINT = env_str("BOATLOAD_PUBLIC_FINGERPRINT", "").replace(":", "").lower()
SATELLITE_IMAGE = env_str("BOATLOAD_SATELLITE_IMAGE", "boatload:latest")

# Genisys: the path of genisys.yml and the environment's overrides of its keys ({section: {key:
# raw value}}, unset ones left out); genisys/config.py reads the file and merges these over it.
GENISYS_CONFIG = env_str("GENISYS_CONFIG", str(BASE_DIR / "genisys.yml"))
GENISYS_OVERRIDES = {section: {key: value for key, value in keys.items() if value is not None} for section, keys in {
    "genisys": {"bind": env_str("GENISYS_BIND"), "port": env_str("GENISYS_PORT"),
                "compute_file": env_str("GENISYS_COMPUTE_FILE")},
    "consul": {"host": env_str("GENISYS_CONSUL_HOST"), "port": env_str("GENISYS_CONSUL_PORT"),
               "service_prefix": env_str("GENISYS_SERVICE_PREFIX"),
               "resources_key_prefix": env_str("GENISYS_RESOURCES_KEY_PREFIX")},
    "connector": {"poll_interval": env_str("GENISYS_POLL_INTERVAL")},
}.items()}
CONNECTOR_TIMEOUT = env_duration("GENISYS_CONNECTOR_TIMEOUT", 300)
# Deployments (genisys/deploy.py): versions kept per service, how long a reconciler holds a service for one
# deployment step, and the longest `?wait=` a request may ask for.
GENISYS_VERSION_HISTORY = env_int("GENISYS_VERSION_HISTORY", 20)
GENISYS_DEPLOY_CLAIM = env_duration("GENISYS_DEPLOY_CLAIM", 30)
# Between the reconciler's passes, a step of each running deployment this often (0: only in the passes).
GENISYS_DEPLOY_INTERVAL = env_duration("GENISYS_DEPLOY_INTERVAL", 0.25)
GENISYS_MAX_WAIT = env_duration("GENISYS_MAX_WAIT", 900)
# A spread service (scaled with compute "*") is rebalanced by the reconciler when a healthy compute joins.
GENISYS_REBALANCE_ON_JOIN = env_bool("GENISYS_REBALANCE_ON_JOIN", False)

# Production hardening; TLS-only cookies and HSTS when BOATLOAD_TLS says the API is behind TLS.
TLS = env_bool("BOATLOAD_TLS", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = TLS
SECURE_HSTS_SECONDS = env_int("BOATLOAD_HSTS_SECONDS", 31536000 if TLS else 0)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TLS else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
if TLS:
    # Documented exceptions of `check --deploy` behind TLS: the TLS proxy redirects plain HTTP
    # (W008), and HSTS for subdomains or the preload list is the domain owner's call (W005, W021).
    SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W008", "security.W021"]

# Observability (observe/): who may read /metrics (refused to everybody until one is set; with both,
# a scraper needs both), and how often the reconciler collects the fleet's container metrics.
try:
    METRICS_ALLOW = [ipaddress.ip_network(value, strict=False) for value in env_list("BOATLOAD_METRICS_ALLOW")]
except ValueError as _error:
    raise ImproperlyConfigured(f"BOATLOAD_METRICS_ALLOW: {_error} (give addresses or CIDRs, comma-separated)") from None
METRICS_TOKEN = env_str("BOATLOAD_METRICS_TOKEN", "")
FLEET_INTERVAL = env_duration("BOATLOAD_FLEET_INTERVAL", 15)
FLEET_WORKERS = max(1, env_int("BOATLOAD_FLEET_WORKERS", 32))  # threads of one fleet collection pass, at most
AUDIT_PAGE_SIZE = env_int("BOATLOAD_AUDIT_PAGE_SIZE", 100)
# Metrics history (observe/history.py): every fleet collection kept raw for HISTORY_RAW_RETENTION,
# rolled up to HISTORY_ROLLUP_STEP buckets kept for HISTORY_RETENTION; written and pruned by the
# reconciler only. An answer of /metrics/history has at most HISTORY_MAX_POINTS points.
HISTORY = env_bool("BOATLOAD_HISTORY", True)
HISTORY_RAW_RETENTION = int(env_duration("BOATLOAD_HISTORY_RAW_RETENTION", 24 * 3600))
HISTORY_ROLLUP_STEP = max(1, int(env_duration("BOATLOAD_HISTORY_ROLLUP_STEP", 300)))
HISTORY_RETENTION = int(env_duration("BOATLOAD_HISTORY_RETENTION", 30 * 86400))
HISTORY_MAX_POINTS = env_int("BOATLOAD_HISTORY_MAX_POINTS", 10000)
# Logs that outlive their container (observe/logs.py): the last LOG_KEEP bytes of a deleted or exited
# container's output, kept LOG_RETENTION (Postgres large objects).
LOG_KEEP = max(1, env_int("BOATLOAD_LOG_KEEP", 4 * 1024 * 1024))
LOG_RETENTION = env_duration("BOATLOAD_LOG_RETENTION", 7 * 86400)
# ...and every LOG_SNAPSHOT_INTERVAL while it runs (0: never), at most LOG_SNAPSHOTS_PER_PASS containers a
# host in one reconcile pass, so one that vanishes while running leaves its output up to then.
LOG_SNAPSHOT_INTERVAL = env_duration("BOATLOAD_LOG_SNAPSHOT_INTERVAL", 300)
LOG_SNAPSHOTS_PER_PASS = max(1, env_int("BOATLOAD_LOG_SNAPSHOTS_PER_PASS", 10))

# Logs: plain lines, or JSON lines for log shippers (BOATLOAD_LOG_FORMAT=json, common/logfmt.py); an access
# line per request with its user and duration when BOATLOAD_ACCESS_LOG is on (by default with json).
LOGGING = logging_config("BOATLOAD_LOG_LEVEL")
ACCESS_LOG = env_bool("BOATLOAD_ACCESS_LOG", LOGGING["handlers"]["stdout"]["formatter"] == "json")
