"""The API server's client of satellites: one method per satellite operation, in the order of
satellite/urls.py, each route written once (`@operation`). Requests are signed with the host's key,
over HTTPS pinned to the certificate the satellite enrolled with (plain HTTP only for loopback
satellites). Failures arrive as SatelliteUnavailable, SatelliteTimeout or ContainerNotFound.

The connector routes a satellite also serves belong to connectors.client.ConnectorClient.
"""
from django.conf import settings

from common.errors import ContainerNotFound, SatelliteTimeout, SatelliteUnavailable
from common.remote import RemoteClient, operation
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
                         timeout=timeout or settings.SATELLITE_TIMEOUT, certificate=host.tls_certificate or None)

    @operation("GET", "healthz")
    def healthz(self, op):
        return self.call(op)

    @operation("GET", "info")
    def info(self, op):
        return self.call(op)

    @operation("GET", "images")
    def images(self, op):
        return self.call(op)

    @operation("GET", "stats")
    def stats_all(self, op):
        return self.call(op)

    @operation("GET", "containers")
    def list_containers(self, op, *, labels=(), include_stopped=True):
        """BoatLoad's containers on the host, those with every `key=value` of `labels`."""
        params = {"label": list(labels)} if labels else {}
        if not include_stopped:
            params["all"] = "false"
        return self.call(op, params=params or None)

    @operation("POST", "containers")
    def create_container(self, op, body):
        return self.call(op, json=body)

    @operation("POST", "containers/raw")
    def create_container_raw(self, op, body):
        return self.call(op, json=body)

    @operation("GET", "containers/<container_id>")
    def inspect_container(self, op, container_id):
        return self.call(op, container_id=container_id)

    @operation("DELETE", "containers/<container_id>")
    def remove_container(self, op, container_id):
        """Remove every container labelled `container_id` (idempotent)."""
        self.call(op, container_id=container_id)

    @operation("GET", "containers/<container_id>/state")
    def container_state(self, op, container_id):
        return self.call(op, container_id=container_id)

    @operation("GET", "containers/<container_id>/logs")
    def logs(self, op, container_id, **query):
        return self.stream(op, container_id=container_id, params=query)

    @operation("GET", "containers/<container_id>/script")
    def script(self, op, container_id):
        return self.call(op, container_id=container_id)

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

    @operation("GET", "containers/<container_id>/stats")
    def stats(self, op, container_id):
        return self.call(op, container_id=container_id)

    @operation("POST", "containers/<container_id>/<action>")
    def container_action(self, op, container_id, action, *, timeout=None):
        """start, stop or restart; Docker's State afterwards."""
        if action not in ACTIONS:
            raise ValueError(f"not an action: {action}")
        return self.call(op, container_id=container_id, action=action,
                         params={"timeout": timeout} if timeout is not None else None)

    def _page(self, op, container_id, limit, cursor):
        params = {"limit": limit, **({"cursor": cursor} if cursor is not None else {})}
        response = self.request(op.method, op.path(container_id=container_id), params=params)
        return response.json(), response.headers.get("X-Next-Cursor")
