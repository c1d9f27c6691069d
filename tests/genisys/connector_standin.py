"""A STAND-IN of genisys-connector-docker 0.1.0 (cyberdyne-corp), for tests only.

The original connector is another project (Python 3.6, its own pins) and can not be
installed here; this reproduces its HTTP behaviour (its main.py, read from its public code)
where it differs from a satellite's:

- `POST /service`, `PUT /service/<name>` and `POST /service/<name>/scale` answer 200 with an
  empty body (bottle's answer to a handler that returns nothing);
- `GET /service` answers every definition keyed by name, `GET /service/<name>` one;
- an unknown service answers 501 "Undefined service: <name>." (definition, scale and status);
- definitions live in memory only: `restart()` loses them, as a restart of the original does
  (the containers it started keep running, so the running numbers stay).

It runs nothing: the running number is whatever was last scaled to.
`status_answer = (content_type, body bytes)` makes `/status` answer that instead (200), to
reproduce a connector that answers an HTML page or a malformed status; `put_creates = False`
makes `PUT /service/<name>` of an unknown service answer 501 (a connector written to the docs,
which name no PUT, that defines services by `POST /service` only).
"""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = re.compile(r"^/service(?:/(?P<name>[^/]+)(?P<action>/scale|/status)?)?/?$")


class OriginalConnectorStandIn:
    def __init__(self, address="127.0.0.1", port=0):
        self.definitions, self.running, self.calls, self.authorizations = {}, {}, [], []
        self.status_answer = None
        self.put_creates = True  # False: a connector written to the docs that defines new services by POST only
        self.address = address
        self._serve(port)

    def _serve(self, port):
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, status, body=b"", content_type="text/html; charset=UTF-8"):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def send_json(self, value):
                return self.send(200, json.dumps(value).encode(), "application/json")

            def body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def define(self, name, data):
                state.definitions[name] = {"name": name, "image": data["image"], "command": data.get("command"),
                                           "environment": data.get("environment"), "ports": data.get("ports")}

            def route(self, method):
                state.calls.append((method, self.path))
                state.authorizations.append(self.headers.get("Authorization"))
                match = SERVICE.match(self.path)
                if match is None:
                    return self.send(404, b"<h1>Not Found</h1>")
                name, action = match["name"], match["action"]
                if name is None:
                    if method == "GET":
                        return self.send_json(state.definitions)
                    if method == "POST":
                        data = self.body()
                        self.define(data["name"], data)
                        return self.send(200)
                    return self.send(405, b"<h1>Method Not Allowed</h1>")
                if method == "PUT" and action is None and (state.put_creates or name in state.definitions):
                    self.define(name, self.body())
                    return self.send(200)
                if name not in state.definitions:
                    return self.send(501, f"Undefined service: {name}.".encode())
                if method == "GET" and action is None:
                    return self.send_json(state.definitions[name])
                if method == "POST" and action == "/scale":
                    state.running[name] = int(self.body()["number"])
                    return self.send(200)
                if method == "GET" and action == "/status":
                    if state.status_answer is not None:
                        content_type, raw = state.status_answer
                        return self.send(200, raw, content_type)
                    return self.send_json({"running_resources": state.running.get(name, 0)})
                return self.send(405, b"<h1>Method Not Allowed</h1>")

            def do_GET(self):
                self.route("GET")

            def do_PUT(self):
                self.route("PUT")

            def do_POST(self):
                self.route("POST")

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer((self.address, port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://{self.address}:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def restart(self):
        """Stop and start again on the same port: every definition is gone (they were in memory)."""
        self.close()
        self.definitions = {}
        self._serve(self.port)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
