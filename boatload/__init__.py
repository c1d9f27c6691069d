"""BoatLoad API server: settings, URLs and the container/host/template API (v1)."""
