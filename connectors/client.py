"""The one client Genisys uses for every compute: satellites (signed) and external connectors.

What a connector answers is checked here, once: any 2xx to a definition push or a scale
is success whatever its body (the original genisys-connector-docker answers 200 with an
empty body), and a status that is not `{"running_resources": <int >= 0>}` is a 502 naming
the compute. The original answers 501 "Undefined service" where a satellite answers 404:
both are the connector not knowing the service (`NotFound`), which a definition push repairs.
Nothing else a connector sends can surface as anything but a RemoteError.
"""
import requests
from django.conf import settings

from common.errors import BoatLoadError, ConnectorError, ConnectorTimeout, NotFound
from common.remote import RemoteClient, operation, plain
from common.signing import HmacAuth


class BearerAuth(requests.auth.AuthBase):
    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class ConnectorClient(RemoteClient):
    """The connector protocol, one method per route (what a satellite serves in satellite/urls.py)."""

    kind = "connector"
    unavailable_error = ConnectorError
    timeout_error = ConnectorTimeout

    def __init__(self, compute, timeout=None):
        host = compute.satellite()
        self.satellite = host is not None
        if host is not None:  # a satellite: signed, at the URL and certificate its host enrolled with
            super().__init__(host.satellite_url, remote=compute.name, auth=HmacAuth(host.key_id, host.secret),
                             timeout=timeout or settings.CONNECTOR_TIMEOUT, certificate=host.tls_certificate or None,
                             connect_timeout=settings.CONNECT_TIMEOUT)
            return
        # An external connector: a bearer token, or the credentials its URL carries (user:password@, sent as
        # HTTP Basic by requests, as the original Genisys does), or none.
        super().__init__(compute.connector, remote=compute.name, auth=BearerAuth(compute.token) if compute.token
                         else None, timeout=timeout or settings.CONNECTOR_TIMEOUT,
                         connect_timeout=settings.CONNECT_TIMEOUT)

    services = plain("GET", "service", "{name: definition} of what the connector knows.")
    create_service = plain("POST", "service", "Define a service.")
    service = plain("GET", "service/<name>", "One definition.")

    def _raise_for_status(self, response, method):
        if response.status_code == 501:  # the original connector's "Undefined service: <name>."
            message = response.text[:200] or response.reason
            response.close()
            raise NotFound(f"{self.remote}: {message}", code="connector_undefined_service",
                           detail={"remote": self.remote})
        super()._raise_for_status(response, method)

    @operation("PUT", "service/<name>")
    def put_service(self, op, definition):
        """Push a definition; any 2xx is success (nothing of the body is used). A connector that
        takes new definitions only as `POST /service` (it answers the PUT 404, 405 or 501) gets that."""
        try:
            self.request(op.method, op.path(name=definition["name"]), json=definition, route=op.route).close()
        except NotFound:
            self.create_service(definition)
        except BoatLoadError as error:
            if error.status_code != 405:
                raise
            self.create_service(definition)

    @operation("POST", "service/<name>/scale")
    def scale(self, op, name, number):
        """Order `number` resources; any 2xx is success. Returns the running number the connector gave,
        or None when its body does not say (the protocol does not require it to)."""
        response = self.request(op.method, op.path(name=name), json={"number": number}, route=op.route)
        try:
            return running_of(response.json())
        except ValueError:
            return None
        finally:
            response.close()

    slots = plain("GET", "service/<name>/slots",
                  "[{slot, id, name, state, health, created, version}] of every container of the service.")

    @operation("POST", "service/<name>/slots/<slot>")
    def slot_start(self, op, name, slot, definition):
        """A container of `definition` (with its version) in `slot`, unless one of that version is there."""
        return self.call(op, name=name, slot=slot, json=definition)

    @operation("DELETE", "service/<name>/slots/<slot>")
    def slot_clear(self, op, name, slot, keep=None):
        """Remove the containers of `slot` of every version but `keep` (None: all)."""
        return self.call(op, name=name, slot=slot, params={"keep": keep} if keep is not None else None)

    @operation("POST", "service/<name>/rollout")
    def rollout(self, op, name, definition, number, policy, observe=False, resume=None):
        """A connector that rolls its own updates (the Swarm backend): give the service `definition` (with its
        version) rolled with `policy`, unless it has it, and answer its progress, checked here: desired,
        updated, healthy, failed (ints >= 0), versions, state, message, failure (why the update stopped or
        was rolled back, or None) and done. Anything else is a 502 naming the compute."""
        body = self.call(op, name=name, json={"definition": definition, "number": number, "policy": policy,
                                              "observe": observe, **({"resume": resume} if resume else {})})
        counts = ("desired", "updated", "healthy", "failed")
        if not isinstance(body, dict) or any(type(body.get(key)) is not int or body[key] < 0 for key in counts) \
                or not isinstance(body.get("versions"), dict) or not isinstance(body.get("failure"), (str, type(None))):
            raise ConnectorError(f"The connector of {self.remote} answered a rollout that is not a progress: "
                                 f"{str(body)[:100]!r}", remote=self.remote, code="connector_bad_answer")
        return {**{key: body[key] for key in counts}, "versions": body["versions"],
                "state": str(body.get("state") or ""), "message": str(body.get("message") or "")[:2000],
                "failure": body["failure"], "done": body.get("done") is True, "nodes": nodes_of(body)}

    def status(self, name):
        """The running number; an answer that is not `{"running_resources": n}` (n an int >= 0) is a 502."""
        return self.status_nodes(name)[0]

    @operation("GET", "service/<name>/status")
    def status_nodes(self, op, name):
        """(running number, {node: running tasks} or None): a Swarm satellite's status also gives the
        service's tasks per node it may place one on (`nodes`); any other connector gives None."""
        response = self.request(op.method, op.path(name=name), read_timeout=10, route=op.route)
        try:
            body = response.json()
            return running_of(body), nodes_of(body)
        except ValueError:
            kind = response.headers.get("Content-Type", "no content type")
            raise ConnectorError(f"The connector of {self.remote} answered a status that is not "
                                 f'{{"running_resources": n}} ({response.status_code}, {kind}): '
                                 f"{response.text[:100]!r}", remote=self.remote, code="connector_bad_answer") from None
        finally:
            response.close()


def running_of(body):
    """n of `{"running_resources": n}`, n an int >= 0 (not a bool, a float or a string); else ValueError."""
    running = body.get("running_resources") if isinstance(body, dict) else None
    if type(running) is not int or running < 0:
        raise ValueError(f"not a running number: {running!r}")
    return running


def nodes_of(body):
    """`nodes` of a Swarm satellite's answer ({node id: int >= 0}), or None when it has none that is one."""
    nodes = body.get("nodes") if isinstance(body, dict) else None
    if not isinstance(nodes, dict) or not nodes or any(
            not isinstance(key, str) or type(value) is not int or value < 0 for key, value in nodes.items()):
        return None
    return nodes
