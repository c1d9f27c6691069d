"""BoatLoad satellite: the per-host agent that does the Docker work on the local socket."""
