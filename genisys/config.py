"""Genisys configuration: `genisys.yml` in the documented format, then the environment's overrides.

    genisys:   bind, port, compute_file
    consul:    host, port, service_prefix, resources_key_prefix
    connector: poll_interval   (15s, 1m, …)

Settings read the environment (GENISYS_CONFIG, the path, and GENISYS_OVERRIDES, the keys
the GENISYS_* variables set); this module reads settings, never the other way round.
BoatLoad serves the Genisys paths on the API server's own port, so `bind` and `port` are
read for compatibility only.
"""
import functools
import json
from pathlib import Path

import yaml
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from common.env import parse_duration

DEFAULTS = {
    "genisys": {"bind": "127.0.0.1", "port": 7001, "compute_file": None},
    "consul": {"host": None, "port": 8500, "service_prefix": "skynet_", "resources_key_prefix": "resources/"},
    "connector": {"poll_interval": "15s"},
}


def current():
    """The configuration that settings name (cached per path and overrides)."""
    return _load_cached(settings.GENISYS_CONFIG, json.dumps(settings.GENISYS_OVERRIDES, sort_keys=True))


@functools.lru_cache(maxsize=16)
def _load_cached(path, overrides):
    return load(path, json.loads(overrides))


def _integer(where, value):
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(f"{where}: not an integer: {value!r}") from None


def load(path, overrides=None):
    """The merged configuration as a flat dict, with poll_interval in seconds: the file's keys over
    the defaults, then `overrides` ({section: {key: value}}) over them."""
    config = {section: dict(values) for section, values in DEFAULTS.items()}
    path = Path(path)
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ImproperlyConfigured(f"{path} is not valid YAML: {exc}") from None
        for section, values in data.items():
            if section not in config or not isinstance(values, dict):
                raise ImproperlyConfigured(f"{path}: unknown section {section!r}")
            config[section].update(values)
    for section, values in (overrides or {}).items():
        config[section].update(values)
    try:
        poll_interval = parse_duration(config["connector"]["poll_interval"])
    except ValueError as exc:
        raise ImproperlyConfigured(f"connector.poll_interval: {exc}") from None
    return {
        "bind": config["genisys"]["bind"], "port": _integer("genisys.port", config["genisys"]["port"]),
        "compute_file": config["genisys"]["compute_file"],
        "consul_host": config["consul"]["host"], "consul_port": _integer("consul.port", config["consul"]["port"]),
        "service_prefix": config["consul"]["service_prefix"],
        "resources_key_prefix": config["consul"]["resources_key_prefix"],
        "poll_interval": poll_interval,
    }
