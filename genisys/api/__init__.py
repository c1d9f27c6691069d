"""Genisys HTTP API at the documented paths (/compute, /service)."""
