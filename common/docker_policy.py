"""What BoatLoad lets through to Docker from a Docker create-container body (raw create, templates).

An allow-list, read the way Docker reads it. Docker decodes JSON with Go's encoding/json,
which matches struct keys case-insensitively (Unicode simple folding: `ſ` is `s`, the
Kelvin sign is `k`), reads the HostConfig fields at the top level too (deprecated), and
ignores unknown keys. So every key is matched here the same way and rewritten to its one
canonical spelling, a body holding two spellings of one key is refused, and every key not
in the tables below is refused by its path (`body.HostConfig.Sysctls`). The body sent on
is the rebuilt one, so what Docker reads is exactly what was checked.

Keys that reach past the container (host namespaces, devices, capabilities, other
containers, unconfined security, sysctls) pass only when the satellite's setting allows
them; host folders must lie under SATELLITE_HOST_PATHS whatever the settings say. The
module imports no settings: callers pass a RawPolicy (RawPolicy.from_settings on a
satellite).
"""
import dataclasses
import os
import re

from common.errors import BadInput

PORT_KEY_RE = re.compile(r"^([0-9]{1,5})(?:/(tcp|udp|sctp))?$")
BIND_OPTIONS = {"ro", "rw", "z", "Z", "nocopy", "private", "rprivate", "slave", "rslave"}
FREE_SECURITY_OPTIONS = {"no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"}
RESERVED_LABEL_PREFIX = "boatload."


@dataclasses.dataclass(frozen=True)
class RawPolicy:
    """Which gated parts of a create body this satellite's operator allows."""

    host_namespaces: bool = False
    devices: bool = False
    capabilities: bool = False
    sharing: bool = False
    security_options: bool = False
    sysctls: bool = False
    host_paths: tuple = ()

    @classmethod
    def from_settings(cls, settings):
        return cls(host_namespaces=settings.RAW_ALLOW_HOST_NAMESPACES, devices=settings.RAW_ALLOW_DEVICES,
                   capabilities=settings.RAW_ALLOW_CAPABILITIES, sharing=settings.RAW_ALLOW_SHARING,
                   security_options=settings.RAW_ALLOW_SECURITY_OPTIONS, sysctls=settings.RAW_ALLOW_SYSCTLS,
                   host_paths=tuple(settings.HOST_PATHS))


SETTING = {
    "host_namespaces": "SATELLITE_RAW_ALLOW_HOST_NAMESPACES", "devices": "SATELLITE_RAW_ALLOW_DEVICES",
    "capabilities": "SATELLITE_RAW_ALLOW_CAPABILITIES", "sharing": "SATELLITE_RAW_ALLOW_SHARING",
    "security_options": "SATELLITE_RAW_ALLOW_SECURITY_OPTIONS", "sysctls": "SATELLITE_RAW_ALLOW_SYSCTLS",
}


def go_fold(key):
    """The key as Go's encoding/json compares it (bytes.EqualFold against an ASCII field name)."""
    return key.replace("\u017f", "s").replace("\u212a", "k").lower()


def require(policy, gate, path, what):
    if not getattr(policy, gate):
        raise BadInput(path, f"{what} is not allowed on this satellite ({SETTING[gate]})")


def host_path_allowed(source, host_paths):
    real = os.path.realpath(source)
    return any(real == folder or real.startswith(folder.rstrip("/") + "/")
               for folder in map(os.path.realpath, host_paths))


def require_host_path(source, policy, path):
    if not source.startswith("/") or not host_path_allowed(source, policy.host_paths):
        raise BadInput(path, f"{source} is not under a host folder this satellite allows (SATELLITE_HOST_PATHS)")


# Validators: (value, path, policy) -> the value to send on. None (JSON null) is Docker's zero value.

def string(value, path, policy):
    if not isinstance(value, str):
        raise BadInput(path, "must be a string")
    return value


def boolean(value, path, policy):
    if not isinstance(value, bool):
        raise BadInput(path, "must be true or false")
    return value


def integer(minimum=None, maximum=None):
    def check(value, path, policy):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadInput(path, "must be an integer")
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise BadInput(path, f"must be between {minimum} and {maximum}")
        return value
    return check


def choice(*values):
    def check(value, path, policy):
        if value not in values:
            raise BadInput(path, f"must be one of {', '.join(map(repr, values))}")
        return value
    return check


def list_of(item):
    def check(value, path, policy):
        if not isinstance(value, list):
            raise BadInput(path, "must be a list")
        return [item(entry, f"{path}[{index}]", policy) for index, entry in enumerate(value)]
    return check


def map_of(item, key=None):
    def check(value, path, policy):
        if not isinstance(value, dict):
            raise BadInput(path, "must be an object")
        for name in value:
            if key:
                key(name, f"{path}.{name}", policy)
        return {name: item(entry, f"{path}.{name}", policy) for name, entry in value.items()}
    return check


def strslice(value, path, policy):
    """Docker's StrSlice: a string is a one-word list."""
    if isinstance(value, str):
        return [value]
    return list_of(string)(value, path, policy)


def empty_object(value, path, policy):
    if not isinstance(value, dict):
        raise BadInput(path, "must be an object ({})")
    return {}


def port_key(name, path, policy):
    match = PORT_KEY_RE.match(name)
    if not match or not 1 <= int(match.group(1)) <= 65535:
        raise BadInput(path, "must be <port>/<tcp|udp|sctp> with a port from 1 to 65535")


def container_path(value, path, policy):
    string(value, path, policy)
    if not value.startswith("/"):
        raise BadInput(path, "must be an absolute path in the container")
    return value


def label_key(name, path, policy):
    if name.startswith(RESERVED_LABEL_PREFIX):
        raise BadInput(path, "labels starting with boatload. are reserved")


def gated(gate, what, item=None):
    def check(value, path, policy):
        require(policy, gate, path, what)
        return item(value, path, policy) if item else value
    return check


class Struct:
    """A Go struct: its keys are matched the way encoding/json matches them, and nothing else passes."""

    def __init__(self, fields, after=None):
        self.fields = fields
        self.canonical = {go_fold(name): name for name in fields}
        self.after = after

    def __call__(self, value, path, policy):
        if not isinstance(value, dict):
            raise BadInput(path, "must be an object")
        rebuilt, spelled = {}, {}
        for key, item in value.items():
            name = self.canonical.get(go_fold(key)) if isinstance(key, str) else None
            where = f"{path}.{name or key}"
            if name is None:
                raise BadInput(where, "is not a key BoatLoad lets through (see docs/security.md)")
            if name in spelled:
                raise BadInput(where, f"given twice, as {spelled[name]!r} and {key!r} (Docker reads keys "
                                      "case-insensitively)")
            spelled[name] = key
            rebuilt[name] = None if item is None else self.fields[name](item, where, policy)
        if self.after:
            self.after(rebuilt, path, policy)
        return rebuilt

    def only(self, *names, **replaced):
        """A narrower struct (templates): some of these keys, some checked differently."""
        return Struct({name: replaced.get(name, self.fields[name]) for name in names})


def namespace_mode(*plain, named_is_network=False):
    """host needs the host-namespaces setting; container:<id> (and named networks) the sharing one."""
    def check(value, path, policy):
        string(value, path, policy)
        if value in plain:
            return value
        if value == "host":
            require(policy, "host_namespaces", path, "a host namespace")
        elif value.startswith("container:"):
            require(policy, "sharing", path, "another container's namespace")
        elif named_is_network and value:
            require(policy, "sharing", path, "a named network")
        else:
            raise BadInput(path, f"must be one of {', '.join(map(repr, plain + ('host', 'container:<id>')))}")
        return value
    return check


def bind(value, path, policy):
    """source:target[:options]; the source a folder under SATELLITE_HOST_PATHS (a volume name: sharing)."""
    string(value, path, policy)
    parts = value.split(":")
    if len(parts) not in (2, 3) or not parts[1].startswith("/"):
        raise BadInput(path, "must be <host path or volume>:<container path>[:options]")
    if len(parts) == 3 and not set(parts[2].split(",")) <= BIND_OPTIONS:
        raise BadInput(path, f"options must be among {', '.join(sorted(BIND_OPTIONS))}")
    if parts[0].startswith("/"):
        require_host_path(parts[0], policy, path)
    else:
        require(policy, "sharing", path, "a named volume (it may be another container's)")
    return value


def security_option(value, path, policy):
    string(value, path, policy)
    if value not in FREE_SECURITY_OPTIONS:
        require(policy, "security_options", path, f"security option {value!r}")
    return value


def privileged(value, path, policy):
    boolean(value, path, policy)
    if value and not (policy.devices and policy.capabilities and policy.security_options):
        raise BadInput(path, "privileged containers need SATELLITE_RAW_ALLOW_DEVICES, "
                             "SATELLITE_RAW_ALLOW_CAPABILITIES and SATELLITE_RAW_ALLOW_SECURITY_OPTIONS")
    return value


def driver_options(value, path, policy):
    """The local volume driver's mount options: a bind of an allowed host folder, or tmpfs; never a device."""
    options = map_of(string)(value, path, policy)
    for name in options:
        if name not in ("type", "o", "device"):
            raise BadInput(f"{path}.{name}", "only type, o and device are allowed")
    if not options:
        return options
    if {"bind", "rbind"} & set(options.get("o", "").split(",")):
        require_host_path(options.get("device", ""), policy, f"{path}.device")
    elif options.get("type") != "tmpfs":
        raise BadInput(f"{path}.type", "only binds of host folders under SATELLITE_HOST_PATHS and tmpfs are "
                                       "allowed as volume driver options")
    return options


def check_mount(mount, path, policy):
    kind, source = mount.get("Type"), mount.get("Source") or ""
    if not kind:
        raise BadInput(f"{path}.Type", "a mount needs a Type (bind, volume or tmpfs)")
    if kind == "bind":
        require_host_path(source, policy, f"{path}.Source")
    elif kind == "volume" and source:
        require(policy, "sharing", f"{path}.Source", "a named volume (it may be another container's)")
    elif kind == "tmpfs" and source:
        raise BadInput(f"{path}.Source", "a tmpfs mount has no source")
    if not mount.get("Target"):
        raise BadInput(f"{path}.Target", "a mount needs a Target")


MOUNT = Struct({
    "Type": choice("bind", "volume", "tmpfs"), "Source": string, "Target": container_path, "ReadOnly": boolean,
    "Consistency": string,
    "BindOptions": Struct({"Propagation": choice("private", "rprivate", "slave", "rslave"),
                           "NonRecursive": boolean}),
    "VolumeOptions": Struct({"NoCopy": boolean, "Labels": map_of(string),
                             "DriverConfig": Struct({"Name": choice("", "local"), "Options": driver_options})}),
    "TmpfsOptions": Struct({"SizeBytes": integer(0), "Mode": integer(0, 0o7777)}),
}, after=check_mount)

PORT_BINDING = Struct({"HostIp": string, "HostPort": string})
DEVICE = Struct({"PathOnHost": string, "PathInContainer": string, "CgroupPermissions": string})
DEVICE_REQUEST = Struct({"Driver": string, "Count": integer(-1), "DeviceIDs": list_of(string),
                         "Capabilities": list_of(list_of(string)), "Options": map_of(string)})

HOST_CONFIG = Struct({
    # resources
    "Memory": integer(0), "MemoryReservation": integer(0), "MemorySwap": integer(-1),
    "MemorySwappiness": integer(-1, 100), "NanoCpus": integer(0), "CpuShares": integer(0),
    "CpuPeriod": integer(0), "CpuQuota": integer(-1), "CpusetCpus": string, "CpusetMems": string,
    "BlkioWeight": integer(0, 1000), "PidsLimit": integer(-1), "ShmSize": integer(0),
    "OomScoreAdj": integer(0, 1000),
    "Ulimits": list_of(Struct({"Name": string, "Soft": integer(), "Hard": integer()})),
    # lifecycle and ports
    "RestartPolicy": Struct({"Name": choice("", "no", "always", "unless-stopped", "on-failure"),
                             "MaximumRetryCount": integer(0)}),
    "AutoRemove": boolean, "Init": boolean, "ReadonlyRootfs": boolean, "PublishAllPorts": boolean,
    "PortBindings": map_of(list_of(PORT_BINDING), key=port_key),
    "ConsoleSize": list_of(integer(0)),
    # names and files inside the container
    "Dns": list_of(string), "DnsOptions": list_of(string), "DnsSearch": list_of(string),
    "ExtraHosts": list_of(string), "GroupAdd": list_of(string), "Tmpfs": map_of(string, key=container_path),
    "CapDrop": list_of(string),
    # gated: host folders, namespaces, other containers, devices, capabilities, security, sysctls
    "Binds": list_of(bind), "Mounts": list_of(MOUNT),
    "NetworkMode": namespace_mode("", "default", "bridge", "none", named_is_network=True),
    "PidMode": namespace_mode(""), "IpcMode": namespace_mode("", "private", "shareable", "none"),
    "UTSMode": namespace_mode(""), "UsernsMode": namespace_mode(""), "CgroupnsMode": namespace_mode("", "private"),
    "Cgroup": namespace_mode(""),
    "VolumesFrom": gated("sharing", "another container's volumes", list_of(string)),
    "Links": gated("sharing", "a link to another container", list_of(string)),
    "Devices": gated("devices", "a device", list_of(DEVICE)),
    "DeviceRequests": gated("devices", "a device request", list_of(DEVICE_REQUEST)),
    "DeviceCgroupRules": gated("devices", "a device cgroup rule", list_of(string)),
    "CapAdd": gated("capabilities", "an added capability", list_of(string)),
    "Privileged": privileged,
    "SecurityOpt": list_of(security_option),
    "MaskedPaths": gated("security_options", "changing the masked paths", list_of(string)),
    "ReadonlyPaths": gated("security_options", "changing the read-only paths", list_of(string)),
    "Sysctls": gated("sysctls", "a sysctl", map_of(string)),
})

ENDPOINT = Struct({"Aliases": list_of(string), "Links": gated("sharing", "a link", list_of(string)),
                   "IPAMConfig": Struct({"IPv4Address": string, "IPv6Address": string})})


def endpoints(value, path, policy):
    rebuilt = map_of(ENDPOINT)(value, path, policy)
    for name in rebuilt:
        if name != "bridge":
            require(policy, "sharing", f"{path}.{name}", "a named network")
    return rebuilt


def image(value, path, policy):
    if not isinstance(value, str) or not value.strip():
        raise BadInput(path, "a Docker create body needs an Image")
    return value


def check_image_present(body, path, policy):
    if not body.get("Image"):
        raise BadInput(f"{path}.Image", "a Docker create body needs an Image")


HEALTHCHECK = Struct({"Test": strslice, "Interval": integer(0), "Timeout": integer(0), "StartPeriod": integer(0),
                      "Retries": integer(0)})

CREATE_BODY = Struct({
    "Image": image, "Cmd": strslice, "Entrypoint": strslice, "Env": list_of(string), "WorkingDir": string,
    "User": string, "Hostname": string, "Domainname": string, "Labels": map_of(string, key=label_key),
    "ExposedPorts": map_of(empty_object, key=port_key), "Volumes": map_of(empty_object, key=container_path),
    "Tty": boolean, "OpenStdin": boolean, "StdinOnce": boolean, "AttachStdin": boolean, "AttachStdout": boolean,
    "AttachStderr": boolean, "NetworkDisabled": boolean, "StopSignal": string, "StopTimeout": integer(0),
    "Shell": strslice, "Healthcheck": HEALTHCHECK,
    "HostConfig": HOST_CONFIG, "NetworkingConfig": Struct({"EndpointsConfig": endpoints}),
}, after=check_image_present)


def check_create_body(body, policy, *, schema=CREATE_BODY, path="body"):
    """The body rebuilt with canonical keys, or BadInput naming the first key path it refuses."""
    if not isinstance(body, dict):
        raise BadInput(path, "must be an object")
    return schema(body, path, policy)
