"""The API's connection pool under gevent (boatload.dbpool): a connection given back moments ago with nothing
to read is handed out without a query; any other is checked with `SELECT 1` first. Real Postgres, the pool's
own connections; what a connection last ran is read from pg_stat_activity on another connection."""
import time

import pytest
from django.db import connection

from boatload.dbpool.base import CHECK_IDLE_AFTER, PostgresConnectionPool

MARKER = "SELECT 'boatload-pool-test'"


@pytest.fixture
def pool(db):
    params = connection.get_connection_params()
    pool = PostgresConnectionPool(MAX_CONNS=2, REUSE_CONNS=2, **params)
    yield pool
    pool.close()


def last_query(pid):
    """What the backend `pid` ran last; None once it is gone."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # else a transaction sees its first snapshot throughout
        cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
        return row[0] if row else None


def used_then_given_back(pool):
    """A connection of the pool that ran MARKER and went back; its backend's pid."""
    conn = pool.get()
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
        cursor.execute(MARKER)
    pool.put(conn)
    return conn, pid


def test_a_connection_given_back_moments_ago_is_handed_out_without_a_query(pool):
    conn, pid = used_then_given_back(pool)
    assert pool.get() is conn
    assert last_query(pid) == MARKER  # no SELECT 1 ran on it


def test_a_connection_idle_for_long_is_checked_first(pool):
    conn, pid = used_then_given_back(pool)
    pool.returned[conn] = time.monotonic() - CHECK_IDLE_AFTER - 1
    assert pool.get() is conn
    assert last_query(pid) == "SELECT 1"


def test_a_connection_postgres_ended_is_replaced(pool):
    conn, pid = used_then_given_back(pool)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    deadline = time.monotonic() + 30
    while last_query(pid) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    fresh = pool.get()
    assert fresh is not conn and not fresh.closed
    with fresh.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)

