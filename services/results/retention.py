"""Retention: checks older than HOSTCHECK_RETENTION_DAYS go, with their tasks and results.

A background job of the results service, every HOSTCHECK_RETENTION_INTERVAL_S (and at start):

- Postgres: check_tasks and check_results are partitioned by month of created_at (migration
  0006). The job keeps the current month's partition and AHEAD_MONTHS more made (CREATE TABLE
  + ATTACH, which takes no lock an insert waits on). A month goes as a whole once all of it is
  older than the window: DETACH PARTITION CONCURRENTLY, then DROP TABLE. Nothing of it is
  deleted row by row, and the partitioned tables have no foreign keys, so neither step locks
  anything RecordResults uses. Checks are removed with their month: a check stays between
  RETENTION_DAYS and RETENTION_DAYS + one month (like dropping whole chunks elsewhere).
- SQLite (the embedded default): checks older than the window exactly, by batched deletes.

Either way the check rows (one small row per check; `checks` is not partitioned) and whatever
of their tasks and results is left (a result written just after midnight on the first of a
month, of a check made just before) are deleted in batches: at most BATCH_CHECKS checks and
about BATCH_TASKS tasks (and as many results) a transaction, never one giant one. Watchers of
each removed check get a `deleted` event, and agents still running one of its tasks are told to
stop, as after DeleteCheck.

One replica sweeps at a time: the job holds a Postgres session advisory lock while it works;
a replica that cannot take it skips its turn. (SQLite is one process.)

Monitor runs (monitor_runs rows) scheduled more than RETENTION_DAYS ago go too, exactly, in
batches; monitors and their events (state changes) are kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import bindparam, delete, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker

from hostcheck.core.config import ConfigError
from hostcheck.services.results.models import CheckRow, ResultRow, TaskRow
from hostcheck.services.results.monitors import delete_runs_before, delete_uptime_before
from hostcheck.services.results.store import TERMINAL_TASK
from hostcheck.services.storage.livestate import CANCELS_CHANNEL, LiveState, check_channel
from hostcheck.services.storage.models import utcnow
from hostcheck.v1 import results_pb2

log = logging.getLogger(__name__)

PARTITIONED = ("check_tasks", "check_results")
# Months made ahead of the current one (migration 0006 makes as many).
AHEAD_MONTHS = 2
# `<table>_pYYYY_MM`: the partitions this job makes and drops (others are left alone).
PARTITION_NAME = re.compile(r"^(check_tasks|check_results)_p(\d{4})_(\d{2})$")
# Session advisory lock held by the replica that sweeps (migrations hold 7355608).
LOCK_KEY = 7355609
# One delete transaction: at most this many checks, and no more of their tasks than
# BATCH_TASKS unless a single check has more (a check has at most a few thousand).
BATCH_CHECKS = 200
BATCH_TASKS = 5000
# After each delete batch, a pause this many times as long as the batch took.
PAUSE_PER_BATCH = 1.0
# `deleted` events published at once.
PUBLISH_AT_ONCE = 32


def month_start(value: datetime) -> datetime:
    value = value.astimezone(UTC)
    return datetime(value.year, value.month, 1, tzinfo=UTC)


def add_months(month: datetime, n: int) -> datetime:
    index = month.year * 12 + month.month - 1 + n
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def partition_name(table: str, month: datetime) -> str:
    return f"{table}_p{month:%Y_%m}"


@dataclass
class SweepReport:
    """What one sweep did."""

    skipped: bool = False  # another replica holds the lock
    made: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    checks_deleted: int = 0
    monitor_runs_deleted: int = 0
    partitions_s: float = 0.0  # making and dropping partitions
    checks_s: float = 0.0  # the batched deletes


async def ensure_partitions(engine: AsyncEngine, first: datetime, last: datetime) -> list[str]:
    """Makes the monthly partitions of both tables from month `first` to `last` that are missing.

    CREATE TABLE (LIKE parent INCLUDING ALL) + ATTACH in one transaction: ATTACH takes SHARE
    UPDATE EXCLUSIVE on the parent, which inserts and reads do not wait for (CREATE TABLE ...
    PARTITION OF would take ACCESS EXCLUSIVE).
    """
    made = []
    async with engine.connect() as conn:
        existing = await _partitions(conn)
    months = [month_start(first)]
    while months[-1] < month_start(last):
        months.append(add_months(months[-1], 1))
    for table in PARTITIONED:
        for month in months:
            name = partition_name(table, month)
            if name in existing:
                continue
            async with engine.begin() as conn:
                await conn.exec_driver_sql(f'CREATE TABLE IF NOT EXISTS "{name}" (LIKE {table} INCLUDING ALL)')
                await conn.exec_driver_sql(
                    f"ALTER TABLE {table} ATTACH PARTITION \"{name}\" FOR VALUES FROM ('{month.isoformat()}') "
                    f"TO ('{add_months(month, 1).isoformat()}')")
            made.append(name)
    return made


async def _partitions(conn: AsyncConnection) -> dict[str, bool]:
    """Name -> detach pending, of the tables' attached partitions."""
    rows = (await conn.execute(text(
        "SELECT c.relname, i.inhdetachpending FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent IN ('check_tasks'::regclass, 'check_results'::regclass)"))).all()
    return dict(rows)


async def drop_partitions_before(conn: AsyncConnection, before: datetime
                                 ) -> tuple[list[str], list[tuple[uuid.UUID, uuid.UUID]]]:
    """Detaches and drops the monthly partitions that end at or before `before`; returns their names
    and the (agent, task) pairs of the tasks in them still open (to cancel on their agents).

    `conn` is in autocommit mode: DETACH ... CONCURRENTLY cannot run in a transaction. It waits
    for transactions that might still read the partition, holding no lock that blocks others.
    A detach or drop interrupted by a crash is finished by the next sweep.
    """
    attached = await _partitions(conn)
    leftovers = (await conn.execute(text(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
        "AND relnamespace = current_schema()::regnamespace "
        "AND (relname LIKE 'check\\_tasks\\_p%' OR relname LIKE 'check\\_results\\_p%')"))).scalars().all()
    dropped: list[str] = []
    open_tasks: list[tuple[uuid.UUID, uuid.UUID]] = []
    for name in sorted([*attached, *leftovers]):
        match = PARTITION_NAME.match(name)
        if match is None:
            continue
        table, year, month = match.group(1), int(match.group(2)), int(match.group(3))
        if add_months(datetime(year, month, 1, tzinfo=UTC), 1) > before:
            continue
        if table == "check_tasks":
            open_tasks += [(a, t) for a, t in (await conn.execute(text(
                f'SELECT agent_id, id FROM "{name}" WHERE status NOT IN :terminal').bindparams(
                    bindparam("terminal", TERMINAL_TASK, expanding=True)))).all()]
        if name in attached:
            how = "FINALIZE" if attached[name] else "CONCURRENTLY"
            await conn.exec_driver_sql(f'ALTER TABLE {table} DETACH PARTITION "{name}" {how}')
        await conn.exec_driver_sql(f'DROP TABLE "{name}"')
        dropped.append(name)
    return dropped, open_tasks


class Retention:
    """The retention job of one results replica."""

    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker, live: LiveState, *, days: int,
                 interval_s: float) -> None:
        if days < 0:
            raise ConfigError(f"HOSTCHECK_RETENTION_DAYS={days}: must be 0 (keep everything) or more")
        if not interval_s > 0:
            raise ConfigError(f"HOSTCHECK_RETENTION_INTERVAL_S={interval_s:g}: must be more than 0")
        self.engine = engine
        self.sessions = sessions
        self.live = live
        self.days = days
        self.interval_s = interval_s
        self.postgres = engine.dialect.name == "postgresql"

    def expire_before(self, now: datetime) -> datetime | None:
        """Checks created before this go; None: keep everything (days = 0).

        On Postgres the start of the month the window begins in: months go whole.
        """
        if self.days <= 0:
            return None
        cutoff = now - timedelta(days=self.days)
        return month_start(cutoff) if self.postgres else cutoff

    async def sweep_once(self, now: datetime | None = None) -> SweepReport:
        now = now or utcnow()
        before = self.expire_before(now)
        started = time.monotonic()
        if not self.postgres:
            deleted = await self.delete_checks_before(before) if before else 0
            return SweepReport(checks_deleted=deleted, checks_s=time.monotonic() - started,
                               monitor_runs_deleted=await self.delete_monitor_runs(now))
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            if not await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": LOCK_KEY}):
                return SweepReport(skipped=True)
            try:
                report = SweepReport(made=await ensure_partitions(
                    self.engine, month_start(now), add_months(month_start(now), AHEAD_MONTHS)))
                if before is not None:
                    # Partitions first: deleting their checks first would delete their rows one by one.
                    report.dropped, open_tasks = await drop_partitions_before(conn, before)
                    await self._announce([], open_tasks)
                    report.partitions_s = time.monotonic() - started
                    report.checks_deleted = await self.delete_checks_before(before)
                    report.checks_s = time.monotonic() - started - report.partitions_s
                report.monitor_runs_deleted = await self.delete_monitor_runs(now)
                return report
            finally:
                try:
                    await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": LOCK_KEY})
                except Exception:  # noqa: BLE001 - e.g. cancelled mid-query: closing the connection unlocks
                    await conn.invalidate()

    async def delete_monitor_runs(self, now: datetime) -> int:
        """Monitor runs scheduled more than `days` ago (exactly: they are small rows, deleted in
        batches); monitors and their events are kept. Uptime buckets older than 8 days go whatever
        `days` is (uptime looks back 7)."""
        await delete_uptime_before(self.sessions, now)
        if self.days <= 0:
            return 0
        return await delete_runs_before(self.sessions, now - timedelta(days=self.days))

    async def delete_checks_before(self, before: datetime) -> int:
        """Deletes checks created before `before` with their tasks and results, in bounded batches.

        Oldest first, each batch starting after the last check of the one before: starting from
        the beginning each time would step over every index entry deleted so far (dead until
        vacuumed), which made 20,000 checks take 13 s instead of 1. Between batches it pauses
        (PAUSE_PER_BATCH), so a sweep takes about half of what the database can give.
        """
        deleted = 0
        after: tuple[datetime, uuid.UUID] | None = None
        while True:
            started = time.monotonic()
            chosen, after, open_tasks = await self._delete_batch(before, after)
            deleted += len(chosen)
            await self._announce(chosen, open_tasks)
            if after is None:
                return deleted
            # Yield the database and this process to the work that cannot wait (RecordResults):
            # on 2 cores, back-to-back batches doubled its p99 (bench/retention.py).
            await asyncio.sleep((time.monotonic() - started) * PAUSE_PER_BATCH)

    async def _delete_batch(self, before: datetime, after: tuple[datetime, uuid.UUID] | None
                            ) -> tuple[list[uuid.UUID], tuple[datetime, uuid.UUID] | None,
                                       list[tuple[uuid.UUID, uuid.UUID]]]:
        """One transaction: the checks it deleted, where the next batch starts (None: done), and
        the (agent, task) pairs of their tasks still open."""
        async with self.sessions() as session, session.begin():
            stmt = select(CheckRow.id, CheckRow.created_at).where(CheckRow.created_at < before)
            if after is not None:
                stmt = stmt.where(CheckRow.created_at >= after[0],
                                  or_(CheckRow.created_at > after[0], CheckRow.id > after[1]))
            stmt = stmt.order_by(CheckRow.created_at, CheckRow.id).limit(BATCH_CHECKS)
            if self.postgres:
                # A check a write holds now (a late result) waits for the next sweep.
                stmt = stmt.with_for_update(skip_locked=True)
            found = [(check_id, created) for check_id, created in (await session.execute(stmt)).all()]
            if not found:
                return [], None, []
            ids = [check_id for check_id, _ in found]
            sizes = dict((await session.execute(select(TaskRow.check_id, func.count())
                                                .where(TaskRow.check_id.in_(ids))
                                                .group_by(TaskRow.check_id))).all())
            chosen: list[uuid.UUID] = []
            tasks = 0
            for check_id in ids:
                if chosen and tasks + sizes.get(check_id, 0) > BATCH_TASKS:
                    break
                chosen.append(check_id)
                tasks += sizes.get(check_id, 0)
            open_tasks = [(a, t) for a, t in (await session.execute(select(TaskRow.agent_id, TaskRow.id).where(
                TaskRow.check_id.in_(chosen), TaskRow.status.not_in(TERMINAL_TASK)))).all()]
            await session.execute(delete(ResultRow).where(ResultRow.check_id.in_(chosen)))
            await session.execute(delete(TaskRow).where(TaskRow.check_id.in_(chosen)))
            await session.execute(delete(CheckRow).where(CheckRow.id.in_(chosen)))
        more = len(found) == BATCH_CHECKS or len(chosen) < len(found)
        last_id, last_created = found[len(chosen) - 1]
        return chosen, (last_created, last_id) if more else None, open_tasks

    async def _announce(self, check_ids: list[uuid.UUID], open_tasks: list[tuple[uuid.UUID, uuid.UUID]]) -> None:
        """What DeleteCheck tells: a `deleted` event to each check's watchers; open tasks cancelled."""
        event = results_pb2.WatchCheckResponse(event="deleted", check_status="deleted").SerializeToString()
        try:
            # Asked after the delete committed: a watcher that subscribes later finds the check gone
            # when it reads it. Old checks are seldom watched, and a month of them can be a million.
            watched = sorted(await self.live.subscribed([check_channel(c) for c in check_ids]))
            for i in range(0, len(watched), PUBLISH_AT_ONCE):
                await asyncio.gather(*(self.live.publish(c, event) for c in watched[i:i + PUBLISH_AT_ONCE]))
            if open_tasks:
                await self.live.publish(CANCELS_CHANNEL, json.dumps({
                    "reason": f"check removed by retention (older than {self.days} days)",
                    "tasks": [[str(a), str(t)] for a, t in open_tasks]}).encode())
        except Exception as exc:  # noqa: BLE001 - the checks are gone; a watcher finds out at its resync
            log.warning("cannot publish the removal of %d check(s): %s", len(check_ids), exc)

    async def run(self) -> None:
        while True:
            try:
                report = await self.sweep_once()
                if report.made or report.dropped or report.checks_deleted or report.monitor_runs_deleted:
                    log.info("retention: made partitions %s, dropped %s, removed %d check(s), %d monitor run(s)",
                             report.made, report.dropped, report.checks_deleted, report.monitor_runs_deleted)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - storage outage: try again next round
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # stopping: an error raised while cancelling a query must not swallow the cancel
                log.warning("retention sweep failed: %s", exc)
            await asyncio.sleep(self.interval_s)
