"""The one client Genisys uses for every compute: satellites (signed) and external connectors."""
import requests
from django.conf import settings

from boatload.remote import RemoteClient
from boatload.signing import HmacAuth


class BearerAuth(requests.auth.AuthBase):
    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class ConnectorClient(RemoteClient):
    """The connector protocol: PUT /service/<name>, POST /service/<name>/scale, GET …/status."""

    kind = "connector"

    def __init__(self, compute, timeout=None):
        if compute.host is not None:
            auth = HmacAuth(compute.host.key_id, compute.host.secret)
        elif compute.token:
            auth = BearerAuth(compute.token)
        else:
            auth = None
        super().__init__(compute.connector, remote=compute.name, auth=auth,
                         timeout=timeout or settings.CONNECTOR_TIMEOUT,
                         certificate=compute.host.tls_certificate or None if compute.host is not None else None)

    def put_service(self, definition):
        return self.put(f"/service/{definition['name']}", json=definition)

    def scale(self, name, number):
        return self.post(f"/service/{name}/scale", json={"number": number})["running_resources"]

    def status(self, name):
        return self.get(f"/service/{name}/status", read_timeout=10)["running_resources"]
