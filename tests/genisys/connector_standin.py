"""A STAND-IN of genisys-connector-docker 0.1.0 (cyberdyne-corp), for tests only.

The original connector is another project (Python 3.6, its own pins) and can not be
installed here; this reproduces its HTTP behaviour where it differs from a satellite's:
`PUT /service/<name>` and `POST /service/<name>/scale` answer 200 with an empty body, an
unknown service answers 501 "Undefined service", definitions live in memory only. It runs
nothing: the running number is whatever was last scaled to.

`status_answer = (content_type, body bytes)` makes `/status` answer that instead (200), to
reproduce a connector that answers an HTML page or a malformed status.
"""
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = re.compile(r"^/service/(?P<name>[^/]+)(?P<action>/scale|/status)?/?$")


class OriginalConnectorStandIn:
    def __init__(self, address="127.0.0.1"):
        self.definitions, self.running, self.calls = {}, {}, []
        self.status_answer = None
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

            def body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def route(self, method):
                state.calls.append((method, self.path))
                match = SERVICE.match(self.path)
                if match is None:
                    return self.send(404, b"<h1>Not Found</h1>")
                name, action = match["name"], match["action"]
                if method == "PUT" and action is None:
                    state.definitions[name] = {**self.body(), "name": name}
                    return self.send(200)
                if name not in state.definitions:
                    return self.send(501, b"Undefined service")
                if method == "POST" and action == "/scale":
                    state.running[name] = int(self.body()["number"])
                    return self.send(200)
                if method == "GET" and action == "/status":
                    if state.status_answer is not None:
                        content_type, raw = state.status_answer
                        return self.send(200, raw, content_type)
                    return self.send(200, json.dumps({"running_resources": state.running.get(name, 0)}).encode(),
                                     "application/json")
                return self.send(405, b"<h1>Method Not Allowed</h1>")

            def do_GET(self):
                self.route("GET")

            def do_PUT(self):
                self.route("PUT")

            def do_POST(self):
                self.route("POST")

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.url = f"http://{address}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
