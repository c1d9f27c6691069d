"""A STAND-IN for Consul, for tests only: no Consul binary can be installed on the test machine.

It implements just the HTTP endpoints BoatLoad calls through py-consul — the catalog's
service list and the KV store — plus service registration and KV writes so tests can set
it up through py-consul too. With `consul` on PATH the same tests run against
`consul agent -dev` instead (see tests/genisys/conftest.py).
"""
import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class ConsulStandIn:
    def __init__(self):
        self.services = {"consul": []}
        self.kv = {}
        self.index = 1
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def answer(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Consul-Index", str(state.index))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = urlsplit(self.path).path
                if path == "/v1/catalog/services":
                    return self.answer(200, state.services)
                if path.startswith("/v1/kv/"):
                    key = path[len("/v1/kv/"):]
                    if key not in state.kv:
                        return self.answer(404, None)
                    value = base64.b64encode(state.kv[key]).decode()
                    return self.answer(200, [{"Key": key, "Value": value, "Flags": 0, "CreateIndex": state.index,
                                              "ModifyIndex": state.index, "LockIndex": 0}])
                return self.answer(404, None)

            def do_PUT(self):
                path = urlsplit(self.path).path
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                state.index += 1
                if path.startswith("/v1/kv/"):
                    state.kv[path[len("/v1/kv/"):]] = body
                    return self.answer(200, True)
                if path == "/v1/agent/service/register":
                    registration = json.loads(body)
                    name = registration.get("Name") or registration.get("name")  # py-consul sends "name"
                    state.services[name] = registration.get("Tags") or registration.get("tags") or []
                    return self.answer(200, None)
                return self.answer(404, None)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host, self.port = self.server.server_address
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
