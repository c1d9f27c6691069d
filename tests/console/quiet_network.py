"""Run chromedriver and Chromium in a network namespace of their own, reached over loopback tunnels.

Chromium watches the machine's addresses over netlink (net/base/address_tracker_linux.cc) and, on
any change, fails every request that is connecting or waiting for a socket with
ERR_NETWORK_CHANGED. Each container the engine starts or removes gives its host-side veth an IPv6
link-local address (tentative, then permanent after DAD, then deleted): on a machine that runs
containers, the addresses change every few seconds, and a page load, a form post or a `fetch`
of the console fails now and then. Chromium has no switch to stop watching.

So the browser runs where no address ever changes: a new network namespace holding only its own
`lo`. Two tunnels join it to this one, both loopback to loopback:
- the API's port, listened on inside the namespace and connected out here (the browser opens
  the same http://127.0.0.1:<port> URLs as the test, so links and cookies match);
- chromedriver's port, listened on here and connected inside (Selenium drives it from here).

A socket belongs to the namespace it was made in, whatever thread uses it later, so a tunnel
makes its namespace-side sockets in a short-lived thread that has entered the namespace
(setns(2) changes only the calling thread).
"""
import ctypes
import os
import socket
import subprocess
import threading
import time

from tests.conftest import end_process

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _in_namespace(ns_path, make):
    """make() run on a thread inside the network namespace at `ns_path`; its result or its error."""
    out = {}

    def run():
        fd = os.open(ns_path, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                errno = ctypes.get_errno()
                raise OSError(errno, f"setns({ns_path}): {os.strerror(errno)}")
            out["value"] = make()
        except BaseException as error:  # handed to the caller's thread
            out["error"] = error
        finally:
            os.close(fd)

    thread = threading.Thread(target=run, name="netns-enter")
    thread.start()
    thread.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def _listener(port=0):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


def _connect(port):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(None)  # a followed log may stay quiet for long
    return sock


def _pump(source, sink):
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


class Tunnel:
    """Accept on `listener`; for each connection open one with `connect()` and copy bytes both ways."""

    def __init__(self, listener, connect):
        self.listener, self.connect = listener, connect
        self.port = listener.getsockname()[1]
        threading.Thread(target=self._serve, name=f"tunnel-{self.port}", daemon=True).start()

    def _serve(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._join, args=(client,), daemon=True).start()

    def _join(self, client):
        try:
            upstream = self.connect()
        except OSError:
            client.close()
            return
        back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
        back.start()
        _pump(client, upstream)
        back.join()
        client.close()
        upstream.close()

    def close(self):
        self.listener.close()


class QuietNetwork:
    """chromedriver in a fresh network namespace; `driver_url` reaches it from here, and inside it
    127.0.0.1:`port` of each `expose(port)` reaches that port here."""

    DRIVER_PORT = 9515  # inside the namespace: nothing else listens there

    def __init__(self, chromedriver, log_path):
        self.log = open(log_path, "ab")
        # unshare(1) without --fork execs in place: the pid is chromedriver's, its namespace ours to enter.
        self.process = subprocess.Popen(
            ["unshare", "--net", "sh", "-c",
             f'ip link set lo up && exec "$0" --port={self.DRIVER_PORT} --allowed-ips=127.0.0.1', chromedriver],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.ns_path = f"/proc/{self.process.pid}/ns/net"
        self.tunnels = []
        driver = Tunnel(_listener(), lambda: _in_namespace(
            self.ns_path, lambda: _connect(self.DRIVER_PORT)))
        self.tunnels.append(driver)
        self.driver_url = f"http://127.0.0.1:{driver.port}"
        self._wait_for_driver()

    def _wait_for_driver(self):
        import requests

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"chromedriver in its namespace exited with {self.process.returncode} "
                                     "(unshare needs CAP_SYS_ADMIN: run the tests as root)")
            try:
                if requests.get(f"{self.driver_url}/status", timeout=2).json()["value"]["ready"]:
                    return
            except (requests.RequestException, ValueError, KeyError):
                pass
            time.sleep(0.1)
        raise AssertionError("chromedriver in its namespace did not answer")

    def expose(self, port):
        """127.0.0.1:`port` inside the namespace leads to 127.0.0.1:`port` here."""
        listener = _in_namespace(self.ns_path, lambda: _listener(port))
        self.tunnels.append(Tunnel(listener, lambda: _connect(port)))

    def close(self):
        for tunnel in self.tunnels:
            tunnel.close()
        end_process(self.process)
        self.log.close()
