"""REST API v1 of the BoatLoad API server."""
