"""The fleet fixtures of the API tests, for the observability tests."""
from tests.api.conftest import fleet, fleet_hosts  # noqa: F401
