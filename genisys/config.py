"""Genisys configuration: `genisys.yml` in the documented format, then environment overrides.

    genisys:   bind, port, compute_file
    consul:    host, port, service_prefix, resources_key_prefix
    connector: poll_interval   (15s, 1m, …)

BoatLoad serves the Genisys paths on the API server's own port, so `bind` and `port` are
read for compatibility and only used by `make run` when BOATLOAD_BIND/PORT are not set.
"""
from pathlib import Path

import yaml
from django.core.exceptions import ImproperlyConfigured

from common.env import env_int, env_str, parse_duration

DEFAULTS = {
    "genisys": {"bind": "127.0.0.1", "port": 7001, "compute_file": None},
    "consul": {"host": None, "port": 8500, "service_prefix": "skynet_", "resources_key_prefix": "resources/"},
    "connector": {"poll_interval": "15s"},
}
OVERRIDES = {  # environment variable → (section, key)
    "GENISYS_BIND": ("genisys", "bind"), "GENISYS_COMPUTE_FILE": ("genisys", "compute_file"),
    "GENISYS_CONSUL_HOST": ("consul", "host"), "GENISYS_SERVICE_PREFIX": ("consul", "service_prefix"),
    "GENISYS_RESOURCES_KEY_PREFIX": ("consul", "resources_key_prefix"),
    "GENISYS_POLL_INTERVAL": ("connector", "poll_interval"),
}


def load(path):
    """The merged configuration as a flat dict, with poll_interval in seconds."""
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
    for variable, (section, key) in OVERRIDES.items():
        if env_str(variable) is not None:
            config[section][key] = env_str(variable)
    config["genisys"]["port"] = env_int("GENISYS_PORT", int(config["genisys"]["port"]))
    config["consul"]["port"] = env_int("GENISYS_CONSUL_PORT", int(config["consul"]["port"]))
    try:
        poll_interval = parse_duration(config["connector"]["poll_interval"])
    except ValueError as exc:
        raise ImproperlyConfigured(f"connector.poll_interval: {exc}") from None
    return {
        "bind": config["genisys"]["bind"], "port": config["genisys"]["port"],
        "compute_file": config["genisys"]["compute_file"],
        "consul_host": config["consul"]["host"], "consul_port": config["consul"]["port"],
        "service_prefix": config["consul"]["service_prefix"],
        "resources_key_prefix": config["consul"]["resources_key_prefix"],
        "poll_interval": poll_interval,
    }
