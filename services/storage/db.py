"""Engines and sessions: Postgres (psycopg 3) in production, a SQLite file for the embedded default."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

import sqlalchemy.exc
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

if TYPE_CHECKING:
    import psycopg

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def async_url(url: str) -> str:
    """postgresql://... -> postgresql+psycopg://...; sqlite:///f -> sqlite+aiosqlite:///f."""
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        return str(u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    if u.get_backend_name() == "sqlite":
        return u.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    raise ValueError(f"unsupported database URL {u.render_as_string()!r}: use postgresql:// or sqlite:///")


def sync_url(url: str) -> str:
    u = make_url(url)
    if u.get_backend_name() == "postgresql":
        return u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return u.set(drivername="sqlite").render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    aurl = async_url(url)
    if aurl.startswith("sqlite"):
        engine = create_async_engine(aurl, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            # FKs are off by default in SQLite. WAL (so readers never wait for the writer) is set
            # once by migrate(): it is a property of the file, and switching needs an exclusive lock.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
        return engine
    engine = create_async_engine(aurl, pool_size=pool_size, max_overflow=2 * pool_size, pool_timeout=5,
                                 connect_args={"connect_timeout": 5})
    _ping_when_idle(engine)
    return engine


# A pooled connection idle longer than this is checked (SELECT 1) before use (see _ping_when_idle).
PING_AFTER_IDLE_S = 1.0


def _ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's `pool_pre_ping`, but only for a connection that sat in the pool over
    PING_AFTER_IDLE_S: that check is a round trip before every transaction, and the connections of a
    busy service go back out within milliseconds (issue 17: it was one of a write's round trips).
    A connection that dies while idle (Postgres restarted, a proxy timed it out) is still found and
    replaced before use; one that dies in use fails that transaction, which callers treat as an
    outage (`is_outage`) and retry, and SQLAlchemy then drops the pool's older connections too."""
    import time

    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checked_in(dbapi_connection, record) -> None:
        record.info["hostcheck_idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection, record, proxy) -> None:
        since = record.info.pop("hostcheck_idle_since", None)
        if since is None or time.monotonic() - since <= PING_AFTER_IDLE_S:
            return  # new, or back from a recent use
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure: a fresh connection instead
            raise sqlalchemy.exc.DisconnectionError(f"pooled connection failed its check: {exc}") from exc
        if not alive:
            raise sqlalchemy.exc.DisconnectionError("pooled connection failed its check")


@contextlib.asynccontextmanager
async def pg_transaction(engine: AsyncEngine) -> AsyncIterator[psycopg.AsyncConnection]:
    """A transaction on a pooled connection's own psycopg connection, in pipeline mode (Postgres only).

    For the hottest statements (issue 17): each statement through SQLAlchemy (a Core statement
    built, its cache key, the compiled form, the greenlet hops) cost 0.5-1.5 ms of CPU, against
    ~0.1 ms here. Statements queue until the code awaits rows or commits, then go together with
    the BEGIN before them: the block may `await pg.commit()` itself after queueing its last
    statements (the COMMIT goes in the same round trip, their rows can be read after it);
    otherwise it is committed when the block ends. Give constant SQL texts (psycopg converts
    each once and prepares it after a few runs).

    The connection is the pool's (its size, timeout and idle check apply). An error is raised as
    SQLAlchemy's (`DBAPIError.instance`: IntegrityError, OperationalError, ...), so `is_outage` and
    the callers' handling are as for SQLAlchemy statements; the transaction is rolled back, and a
    connection that broke or cannot be rolled back (a cancellation) is invalidated, not reused.
    """
    import psycopg
    from psycopg.pq import TransactionStatus

    async with engine.connect() as conn:
        pg = cast("psycopg.AsyncConnection", (await conn.get_raw_connection()).driver_connection)
        try:
            async with pg.pipeline():
                yield pg
                await pg.commit()
        except BaseException as exc:
            broken = pg.broken or pg.closed
            if not broken and pg.info.transaction_status != TransactionStatus.IDLE:
                try:
                    await pg.rollback()
                except BaseException:  # noqa: BLE001 - the connection is dropped instead
                    broken = True
            if broken or pg.info.transaction_status != TransactionStatus.IDLE:
                await conn.invalidate()
            if isinstance(exc, psycopg.Error):
                raise sqlalchemy.exc.DBAPIError.instance(None, None, exc, psycopg.Error,
                                                         connection_invalidated=broken) from exc
            raise


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_outage(exc: BaseException) -> bool:
    """True when the database or live state is unreachable or went away (retryable), not a bug."""
    import psycopg
    import redis.exceptions

    if isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.TimeoutError,
                        sqlalchemy.exc.InterfaceError)):
        return True
    if isinstance(exc, (psycopg.OperationalError, sqlite3.OperationalError, ConnectionError,
                        asyncio.TimeoutError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                        redis.exceptions.BusyLoadingError)):
        return True
    return False


@functools.cache
def _migration_heads() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory(str(MIGRATIONS_DIR)).get_heads())


async def schema_at_head(engine: AsyncEngine) -> bool:
    """Whether the database's schema is at the newest migration (what `hostcheck migrate` makes it)."""
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        current = await conn.run_sync(lambda sync: set(MigrationContext.configure(sync).get_current_heads()))
    return current == _migration_heads()


def migrate(url: str) -> None:
    """Brings the schema to the newest migration (alembic upgrade head)."""
    from alembic import command
    from alembic.config import Config

    sqlite_file = make_url(url).database if make_url(url).get_backend_name() == "sqlite" else None
    if sqlite_file:
        Path(sqlite_file).parent.mkdir(parents=True, exist_ok=True)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    command.upgrade(cfg, "head")
    if sqlite_file:
        with sqlite3.connect(sqlite_file, timeout=30) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
