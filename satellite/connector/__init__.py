"""The satellite's side of the Genisys connector protocol: its views, the definition store and
the Docker and Swarm backends. The protocol's shapes are connectors.definitions."""
