"""The API server's client of satellites: requests signed with the host's key, over HTTPS pinned to the
certificate the satellite enrolled with (plain HTTP only for loopback satellites)."""
from django.conf import settings

from boatload.remote import RemoteClient
from boatload.signing import HmacAuth


class SatelliteClient(RemoteClient):
    kind = "satellite"

    def __init__(self, host, timeout=None):
        self.host = host
        super().__init__(host.satellite_url, remote=host.name, auth=HmacAuth(host.key_id, host.secret),
                         timeout=timeout or settings.SATELLITE_TIMEOUT, certificate=host.tls_certificate or None)
