"""What the API server and the satellites share: the error shape, the container spec, request
signing, sealing and TLS pinning, streams, settings helpers, the raw-create policy and the remote
client base. It imports nothing of boatload/, genisys/, connectors/ or satellite/."""
