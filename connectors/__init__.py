"""The Genisys connector protocol: client, server views, Docker and Swarm backends."""
