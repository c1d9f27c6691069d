"""Small servers on loopback for the channel tests: an impostor API, and a TLS proxy in front of the
real API (the deployment where the API sits behind a TLS-terminating proxy).

The impostor is not a stand-in for any BoatLoad process: it is the attacker the tests defend against.
"""
import json
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from common import tls


class ImpostorAPI:
    """Answers every request with `answer(handler, body)` -> (status, headers, body bytes), and
    records what it received (path, headers, body)."""

    def __init__(self, answer, *, certificate_dir=None):
        self.received = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append((self.path, dict(self.headers), body))
                status, headers, out = answer(self, body)
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if certificate_dir is not None:
            self.certificate = tls.ensure_self_signed(certificate_dir / "cert.pem", certificate_dir / "key.pem",
                                                      ["127.0.0.1"])
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(certificate_dir / "cert.pem", certificate_dir / "key.pem")
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.url = f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def json_answer(data):
    return json.dumps(data).encode()


class TLSProxy:
    """Terminates TLS on 127.0.0.1 with its own certificate and pipes the bytes to `upstream` (host, port)."""

    def __init__(self, upstream, certificate_dir):
        self.upstream = upstream
        cert, key = certificate_dir / "cert.pem", certificate_dir / "key.pem"
        self.certificate = tls.ensure_self_signed(cert, key, ["127.0.0.1"])
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(32)
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while self.running:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            secure = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()
            return
        upstream = socket.create_connection(self.upstream)

        def pipe(source, target):
            try:
                while data := source.recv(65536):
                    target.sendall(data)
            except OSError:
                pass
            finally:
                for side in (source, target):
                    try:
                        side.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(upstream, secure), daemon=True).start()
        pipe(secure, upstream)

    def close(self):
        self.running = False
        self.listener.close()
