"""The floor of bench/heartbeats.py: a bare WSGI app under the API's very gunicorn config (boatload/gunicorn_conf.py,
its gevent worker class, keepalive, access log), so what a request costs the server itself is measured apart from
BoatLoad's own work. It reads the request body and answers a fixed 200 body of a heartbeat answer's size and
header count; nothing of Django is loaded.

  gunicorn -c python:boatload.gunicorn_conf bench.floor_app
"""
BODY = b'{"host": "hb-00000", "state": "active", "key_id": "' + b"k" * 22 + b'"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY))),
           ("X-BoatLoad-Signature", "s" * 64), ("X-BoatLoad-Timestamp", "1764633600"),
           ("X-BoatLoad-Key", "k" * 22), ("X-Content-Type-Options", "nosniff"), ("X-Request-ID", "r" * 16)]


def application(environ, start_response):
    if environ["PATH_INFO"] == "/healthz":
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]
    environ["wsgi.input"].read()
    start_response("200 OK", HEADERS)
    return [BODY]
