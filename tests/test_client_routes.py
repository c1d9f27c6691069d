"""The satellite's URL conf and the API's typed clients describe one protocol: every route a satellite
serves (with each of its methods) is one operation of SatelliteClient or ConnectorClient, and every
operation of those clients is a route a satellite serves. Adding one without the other fails here."""
import re

from django.urls import URLPattern, URLResolver

from boatload.satellite_client import SatelliteClient
from common.remote import operations
from connectors.client import ConnectorClient
from satellite import urls as satellite_urls

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def _route(pattern):
    """A URL pattern in the clients' form: `containers/<container_id>/logs`, `service/<name>/scale`."""
    text = str(pattern.pattern)
    if text.startswith("^"):  # a re_path: named groups become parameters, the optional slash goes
        text = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", text).lstrip("^").rstrip("$").removesuffix("/?")
    return re.sub(r"<\w+:(\w+)>", r"<\1>", text)


def _methods(callback):
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if view_class is None:  # a plain Django view: the satellite's are GET only (healthz)
        return ["GET"]
    return [method.upper() for method in HTTP_METHODS if hasattr(view_class, method)]


def served_operations():
    served = set()
    for pattern in satellite_urls.urlpatterns:
        assert isinstance(pattern, URLPattern) and not isinstance(pattern, URLResolver)
        served.update((method, _route(pattern)) for method in _methods(pattern.callback))
    return served


def test_every_satellite_route_is_one_client_operation_and_back():
    declared = {**operations(SatelliteClient), **operations(ConnectorClient)}
    served = served_operations()
    assert served - set(declared) == set(), "served by a satellite, but no client method calls it"
    assert set(declared) - served == set(), "a client method whose route no satellite serves"
    assert len(operations(SatelliteClient)) + len(operations(ConnectorClient)) == len(declared)  # no route twice


def test_an_operation_builds_its_path_from_its_route():
    op = SatelliteClient.file.operation
    assert op.path(container_id="c1", path="out/a b?.txt") == "/containers/c1/files/out/a%20b%3F.txt"
    assert ConnectorClient.scale.operation.path(name="web/x") == "/service/web%2Fx/scale"
