"""django-db-geventpool's Postgres backend, with a checkout that costs no round trip when it need not.

The pool checks every connection it hands out with `SELECT 1`: a round trip and a query per request,
on every heartbeat (100 a second for 1,000 hosts) a tenth of its CPU. A connection that Postgres ended
(a restart, pg_terminate_backend, an idle timeout) has something to read: the server's last error
message, then the end of the stream; a healthy idle one in autocommit has nothing. So a connection
given back less than CHECK_IDLE_AFTER seconds ago with nothing to read on its socket is handed out
as it is; one with something to read, or idle longer (a peer that vanished without a word, as across
a network), is checked with `SELECT 1` as before and replaced when that fails.
"""
import time
import weakref

from django_db_geventpool.backends.postgresql_psycopg2 import base
from gevent.monkey import get_original

_poll, POLLIN, POLLERR, POLLHUP = get_original("select", ["poll", "POLLIN", "POLLERR", "POLLHUP"])
CHECK_IDLE_AFTER = 10.0  # seconds


def has_input(connection):
    """True when the connection's socket has something to read (or an error): not a quiet idle connection.

    poll(2) with no wait (select(2) would refuse descriptors over 1023; gevent's patched module has no poll)."""
    poller = _poll()
    poller.register(connection.fileno(), POLLIN | POLLERR | POLLHUP)
    return bool(poller.poll(0))


class PostgresConnectionPool(base.PostgresConnectionPool):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.returned = weakref.WeakKeyDictionary()  # connection: when it was last given back (monotonic)

    def put(self, item):
        self.returned[item] = time.monotonic()
        super().put(item)

    def check_usable(self, connection):
        if connection.closed:
            raise self.DBERROR("the connection is closed")
        returned = self.returned.get(connection)
        if returned is not None and time.monotonic() - returned < CHECK_IDLE_AFTER and not has_input(connection):
            return
        super().check_usable(connection)


class DatabaseWrapper(base.DatabaseWrapper):
    pool_class = PostgresConnectionPool
