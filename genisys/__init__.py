"""Genisys: computes, services and scale orders balanced over connectors."""
