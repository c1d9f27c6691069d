"""The API server's client of satellites: one method per satellite operation, in the order of
satellite/urls.py, each route written once (`@operation`). Requests are signed with the host's key,
over HTTPS pinned to the certificate the satellite enrolled with (plain HTTP only for loopback
satellites). Failures arrive as SatelliteUnavailable, SatelliteTimeout or ContainerNotFound.

The connector routes a satellite also serves belong to connectors.client.ConnectorClient; the output of a
service's containers (service/<name>/logs) is the satellite's own, always signed, so it is here.
"""
from django.conf import settings

from common.errors import ContainerNotFound, SatelliteTimeout, SatelliteUnavailable
from common.remote import RemoteClient, operation, plain
from common.signing import HmacAuth

ACTIONS = ("start", "stop", "restart")


def _user(as_user):
    """The `as_user` query of a stream: the satellite's fair shares of streams are per user."""
    return {"as_user": as_user} if as_user else {}


class SatelliteClient(RemoteClient):
    kind = "satellite"
    unavailable_error = SatelliteUnavailable
    timeout_error = SatelliteTimeout
    not_found_error = ContainerNotFound

    def __init__(self, host, timeout=None):
        self.host = host
        super().__init__(host.satellite_url, remote=host.name, auth=HmacAuth(host.key_id, host.secret),
                         timeout=timeout or settings.SATELLITE_TIMEOUT, certificate=host.tls_certificate or None,
                         connect_timeout=settings.CONNECT_TIMEOUT)

    healthz = plain("GET", "healthz", "Unsigned liveness of the satellite and its engine.")
    info = plain("GET", "info", "The engine's facts and the satellite's own.")
    images = plain("GET", "images", "The host's images.")
    stats_all = plain("GET", "stats", "Metrics of every BoatLoad container on the host.")

    @operation("GET", "containers")
    def list_containers(self, op, *, labels=(), include_stopped=True):
        """BoatLoad's containers on the host, those with every `key=value` of `labels`."""
        params = {"label": list(labels)} if labels else {}
        if not include_stopped:
            params["all"] = "false"
        return self.call(op, params=params or None)

    create_container = plain("POST", "containers", "Create (and start) a container: a checked spec, its row identity.")
    create_container_raw = plain("POST", "containers/raw", "From a Docker create body (staff), its row identity.")
    inspect_container = plain("GET", "containers/<container_id>", "Docker's inspect of the row's container.")
    remove_container = plain("DELETE", "containers/<container_id>", "Remove what carries the row label (idempotent).")
    container_state = plain("GET", "containers/<container_id>/state", "Docker's State of the row's container.")

    @operation("GET", "containers/<container_id>/logs")
    def logs(self, op, container_id, **query):
        return self.stream(op, container_id=container_id, params=query)

    script = plain("GET", "containers/<container_id>/script", "The injected script, read back.")

    @operation("GET", "containers/<container_id>/changes")
    def changes(self, op, container_id, *, limit, cursor=None):
        """(a page of the engine's diff, the next page's cursor or None)."""
        return self._page(op, container_id, limit, cursor)

    @operation("GET", "containers/<container_id>/files")
    def files(self, op, container_id, *, limit, cursor=None):
        """(a page of the changed regular files, the next page's cursor or None)."""
        return self._page(op, container_id, limit, cursor)

    @operation("GET", "containers/<container_id>/files/<path>")
    def file(self, op, container_id, path, *, as_user=None):
        return self.stream(op, container_id=container_id, path=path.lstrip("/"), params=_user(as_user))

    @operation("GET", "containers/<container_id>/filebynum/<number>")
    def file_by_number(self, op, container_id, number, *, as_user=None):
        return self.stream(op, container_id=container_id, number=int(number), params=_user(as_user))

    @operation("GET", "containers/<container_id>/archive")
    def archive(self, op, container_id, *, compression="", as_user=None):
        return self.stream(op, container_id=container_id,
                           params={**({"compression": compression} if compression else {}), **_user(as_user)} or None)

    stats = plain("GET", "containers/<container_id>/stats", "CPU, memory, network and block I/O, pids.")

    @operation("POST", "containers/<container_id>/<action>")
    def container_action(self, op, container_id, action, *, timeout=None):
        """start, stop or restart; Docker's State afterwards."""
        if action not in ACTIONS:
            raise ValueError(f"not an action: {action}")
        return self.call(op, container_id=container_id, action=action,
                         params={"timeout": timeout} if timeout is not None else None)

    service_logs = plain("GET", "service/<name>/logs",
                         "[{container, name, slot, version, state: live|archived, created, removed_at, reason, …}] "
                         "of the service's containers on the host, the removed ones whose output was kept too.")

    @operation("GET", "service/<name>/logs/<container>")
    def service_log(self, op, name, container, **query):
        """(response, chunks) of one container's output: live, or its kept copy (X-BoatLoad-Archived)."""
        return self.stream(op, name=name, container=container, params=query)

    def _page(self, op, container_id, limit, cursor):
        params = {"limit": limit, **({"cursor": cursor} if cursor is not None else {})}
        response = self.request(op.method, op.path(container_id=container_id), params=params, route=op.route)
        return response.json(), response.headers.get("X-Next-Cursor")
