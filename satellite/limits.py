"""Fair shares of a satellite: fetches, follow streams and downloads, bounded per host and per user.

A satellite is one process, so the counts live here. Over a bound the answer is 429 with
Retry-After; the heartbeat reports the kinds at their host bound, and placement avoids a
satellite that is saturated.
"""
import threading

from django.conf import settings

from boatload.errors import BoatLoadError

KINDS = ("fetch", "follow", "download")


class Busy(BoatLoadError):
    status_code = 429
    code = "busy"


class Lease:
    """One unit of `kind` held for `user` until close() (idempotent), or the end of a `with`."""

    def __init__(self, gate, kind, user):
        self.gate, self.kind, self.user = gate, kind, user
        self.closed = False

    def close(self):
        if not self.closed:
            self.closed = True
            self.gate._release(self.kind, self.user)

    def holding(self, upstream):
        """An object whose close() closes `upstream`, then gives this lease back."""
        return _Closes(upstream, self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Closes:
    def __init__(self, *closeables):
        self.closeables = closeables

    def close(self):
        for closeable in self.closeables:
            closeable.close()


class Gate:
    def __init__(self):
        self._lock = threading.Lock()
        self._host = dict.fromkeys(KINDS, 0)
        self._users = {}

    def acquire(self, kind, user=""):
        """A Lease of one `kind` for `user`; Busy (429) when the host's or the user's share is used up."""
        host_limit, user_limit = settings.LIMITS[kind]
        with self._lock:
            if self._host[kind] >= host_limit:
                raise self._busy(kind, "host", host_limit)
            if user and self._users.get((kind, user), 0) >= user_limit:
                raise self._busy(kind, "user", user_limit)
            self._host[kind] += 1
            if user:
                self._users[(kind, user)] = self._users.get((kind, user), 0) + 1
        return Lease(self, kind, user)

    def opening(self, kind, user, opener):
        """(opener(), lease): a stream opened under a lease of `kind`, which is given back at once
        when the opening fails, and otherwise when the stream is closed (`lease.holding`)."""
        lease = self.acquire(kind, user)
        try:
            return opener(), lease
        except BaseException:
            lease.close()
            raise

    def _release(self, kind, user):
        with self._lock:
            self._host[kind] -= 1
            if user:
                left = self._users.pop((kind, user)) - 1
                if left:
                    self._users[(kind, user)] = left

    def saturated(self):
        """The kinds whose host share is used up right now."""
        with self._lock:
            return [kind for kind in KINDS if self._host[kind] >= settings.LIMITS[kind][0]]

    def usage(self):
        with self._lock:
            return dict(self._host)

    @staticmethod
    def _busy(kind, scope, limit):
        whose = "this host" if scope == "host" else "this user on this host"
        return Busy(f"{settings.NAME}: {limit} {kind} operations of {whose} are running; try again shortly.",
                    detail={"limit": kind, "scope": scope, "max": limit, "retry_after": settings.BUSY_RETRY_AFTER,
                            "remote": settings.NAME})


gate = Gate()
