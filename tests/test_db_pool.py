"""The pool checks a connection that sat idle before handing it out (services/storage/db.py).

SQLAlchemy's `pool_pre_ping` cost a round trip before every transaction (issue 17); the check now
runs only for a connection idle over PING_AFTER_IDLE_S. A connection whose server side went away while
it sat in the pool (Postgres restarted, a proxy dropped it) must still be replaced before use, and a
connection back from a recent use must go out without the extra round trip.
"""

from __future__ import annotations

import psycopg
import pytest
import sqlalchemy
import sqlalchemy.exc

from hostcheck.services.storage import db


async def _backend_pid(engine) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(sqlalchemy.text("select pg_backend_pid()"))).scalar_one()


def _terminate(url: str, pid: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute("select pg_terminate_backend(%s)", (pid,)).fetchone()[0]


async def test_an_idle_connection_whose_server_went_away_is_replaced_before_use(pg_url, monkeypatch):
    engine = db.create_engine(pg_url, pool_size=1)
    try:
        first = await _backend_pid(engine)
        _terminate(pg_url, first)
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # it has sat in the pool "long enough"
        second = await _backend_pid(engine)  # no error: checked, found dead, replaced
        assert second != first
    finally:
        await engine.dispose()


async def test_a_connection_back_from_a_recent_use_goes_out_unchecked(pg_url, monkeypatch):
    """The other side of the same rule: a recently used connection is not checked (no extra round
    trip), so one that died meanwhile fails its transaction as an outage, which callers retry."""
    engine = db.create_engine(pg_url, pool_size=1)
    try:
        first = await _backend_pid(engine)
        _terminate(pg_url, first)
        monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 3600.0)
        with pytest.raises(sqlalchemy.exc.DBAPIError) as raised:
            await _backend_pid(engine)
        assert db.is_outage(raised.value)
        assert await _backend_pid(engine) != first  # the broken connection was not reused
    finally:
        await engine.dispose()
