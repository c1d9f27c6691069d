"""Helpers that keep streams streaming and close them when the client goes away."""
import select
import socket
import threading

_open = 0
_open_lock = threading.Lock()


def open_streams():
    """How many streams this process is passing through right now."""
    return _open


def _count(delta):
    global _open
    with _open_lock:
        _open += delta


class DisconnectWatch:
    """Closes `upstream` as soon as the client socket of this WSGI request is closed.

    A follow stream blocks on its upstream read while nothing is written, so a dead
    client would only be noticed at the next write; this watcher notices it within
    `poll_interval` and closes the upstream, which ends the blocked read.
    """

    def __init__(self, environ, upstream, poll_interval=0.5):
        self.upstream = upstream
        self.poll_interval = poll_interval
        self.finished = threading.Event()
        self.client_left = False
        self.client = environ.get("gunicorn.socket")
        if self.client is not None:
            threading.Thread(target=self._watch, name="disconnect-watch", daemon=True).start()

    def _watch(self):
        # poll, not select: select() refuses descriptors above 1023, which a process serving
        # hundreds of streams soon holds (and gevent makes poll cooperative too).
        poller = select.poll()
        poller.register(self.client, select.POLLIN | select.POLLHUP | select.POLLERR)
        while not self.finished.is_set():
            try:
                readable = poller.poll(self.poll_interval * 1000)
                if readable and self.client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    break
            except BlockingIOError:
                continue
            except (OSError, ValueError):
                break
        if not self.finished.is_set():
            self.client_left = True
            try:
                # A requests response being read elsewhere: urllib3 (2.3+) shuts its socket down, which
                # ends that read; close() alone leaves the connection open while the read holds it.
                shutdown = getattr(getattr(self.upstream, "raw", None), "shutdown", None)
                if shutdown is not None:
                    shutdown()
                self.upstream.close()
            except Exception:  # an upstream that already failed is closed enough
                pass


def iter_closing(chunks, upstream, environ, *, follow=False):
    """`chunks` as a stream that closes `upstream` when done, on error, when the client leaves, or
    when the server closes the response before reading it (ClosingStream.close)."""
    return ClosingStream(_chunks(chunks, upstream, environ, follow), upstream)


class ClosingStream:
    """Streaming content whose close() always reaches the upstream: Django closes the content of a
    response it is done with, and a generator that never started would skip its `finally`."""

    def __init__(self, generator, upstream):
        self.generator, self.upstream = generator, upstream

    def __iter__(self):
        return self.generator

    def close(self):
        self.generator.close()
        self.upstream.close()


def _chunks(chunks, upstream, environ, follow):
    """Yield `chunks`; close `upstream` when done, on error, or when the client leaves.

    Only a `follow` stream can block on its upstream with nothing to write, so only it
    gets a watcher; others notice a gone client at their next write.
    """
    watch = DisconnectWatch(environ if follow else {}, upstream)
    _count(+1)
    try:
        if follow:
            yield b""  # the server sends the headers now: a follow stream is open before its first line
        for chunk in chunks:
            if chunk:
                yield chunk
    except Exception:
        if not watch.client_left:
            raise
    finally:
        watch.finished.set()
        _count(-1)
        upstream.close()
