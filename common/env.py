"""Typed helpers to read settings from the environment.

Both roles (API server and satellite) read their configuration through these, so
`NAME_FILE` works for every secret and a bad value fails at start-up with its name.
"""
import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def env_str(name, default=None, *, required=False):
    """Return `name` from the environment, or the content of the file named by `NAME_FILE`."""
    value = os.environ.get(name)
    if value is None and os.environ.get(f"{name}_FILE"):
        path = Path(os.environ[f"{name}_FILE"])
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path} can not be read: {exc}") from exc
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"The environment variable {name} (or {name}_FILE) must be set.")
        return default
    return value


def env_bool(name, default=False):
    value = env_str(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true or false).")


def env_int(name, default):
    value = env_str(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None


def parse_duration(value):
    """Seconds in `value`: a number, or a number with ms, s, m, h or d (`15s`, `1m`, `30d`)."""
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration such as 15s or 1m")
    return float(match.group(1)) * _UNITS[match.group(2)]


def env_duration(name, default):
    value = env_str(name)
    if value is None:
        return float(default)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: {exc}") from None


def logging_config(level_variable, format_variables=("BOATLOAD_LOG_FORMAT",), host=""):
    """Log lines on stdout, each with the request id, the request's user and the host (common.requestid,
    common.logfmt), key secrets masked (common.logmask): plain, or one JSON object a line when the first
    of `format_variables` set says `json`."""
    chosen = next((env_str(name) for name in format_variables if env_str(name)), "plain").lower()
    if chosen not in ("plain", "json"):
        raise ImproperlyConfigured(f"{format_variables[0]}={chosen!r}: give plain or json.")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "common.logfmt.ContextFilter", "host": host},
                    "secrets": {"()": "common.logmask.SecretMaskFilter"}},
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
                       "json": {"()": "common.logfmt.json_formatter"}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": chosen,
                                "filters": ["context", "secrets"]}},
        "root": {"handlers": ["stdout"], "level": env_str(level_variable, "INFO")},
    }


def env_list(name, default=()):
    """A comma-separated list; empty items are dropped."""
    value = env_str(name)
    if value is None:
        return list(default)
    return [item.strip() for item in value.split(",") if item.strip()]
