"""Monitor uptime from the hourly rollup (monitor_uptime, issue 16): the evaluator counts each judged
run once in its hour's bucket (also when evaluators race), uptime over whole-hour windows for a
known mix, one query for a page of monitors, retention and deletion of buckets, and a timing note
for a ListMonitors page at 1,000 monitors x 168 buckets on Postgres (printed, not asserted).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from sqlalchemy import Table, event, func, insert, select, text

from hostcheck.services.results.monitoreval import MonitorEvaluator
from hostcheck.services.results.monitormodels import MonitorRow, MonitorUptimeRow
from hostcheck.services.results.monitors import MonitorStore, aware, count_verdict, hour_of
from hostcheck.services.results.retention import Retention
from hostcheck.services.storage import db
from hostcheck.services.storage.livestate import MemoryLiveState
from tests.monitordb import (  # noqa: F401 - fixtures
    migrated_postgres_fixture,
    migrated_sqlite_fixture,
    postgres_copy,
    sessions_fixture,
)
from tests.test_monitor_eval import Lab

# Half past the hour: the current bucket began 30 minutes ago.
NOW = datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
_MONITORS = cast(Table, MonitorRow.__table__)


def monitor_columns(monitor_id: uuid.UUID, n: int = 0) -> dict:
    return {"id": monitor_id, "name": f"m{n}", "target": "example.com:443", "check_types": ["tcp"],
            "spec": {"target": "example.com:443", "checks": ["tcp"]}, "interval_s": 10, "quorum": 1, "for_runs": 1,
            "webhook_url": "", "webhook_secret": "s" * 64, "paused": False, "status_slug": None,
            "created_by_key_id": None, "created_at": NOW - timedelta(seconds=n), "updated_at": NOW,
            "next_run_at": NOW + timedelta(days=1), "run_seq": 0, "state": "up", "state_since": NOW,
            "failing_runs": 0, "last_evaluated_seq": 0}


async def add_monitors(sessions, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    async with sessions() as session, session.begin():
        await session.execute(insert(_MONITORS), [monitor_columns(m, n) for n, m in enumerate(ids)])
    return ids


async def buckets(sessions, monitor_id: uuid.UUID) -> dict[datetime, tuple[int, int, int]]:
    async with sessions() as session:
        rows = (await session.execute(select(MonitorUptimeRow.hour, MonitorUptimeRow.up, MonitorUptimeRow.degraded,
                                             MonitorUptimeRow.failing)
                                      .where(MonitorUptimeRow.monitor_id == monitor_id))).all()
    return {aware(hour): (up, degraded, failing) for hour, up, degraded, failing in rows}


async def test_uptime_of_a_known_mix_in_whole_hours(sessions):
    store = MonitorStore(sessions)
    mixed, old_only, empty, day_only = await add_monitors(sessions, 4)
    runs = [  # (monitor, hours before NOW, verdict)
        (mixed, 0, "up"), (mixed, 0, "up"), (mixed, 0, "failing"),  # the current hour's bucket
        (mixed, 5, "degraded"), (mixed, 5, "unknown"), (mixed, 5, "missed"),  # neither counted
        # 23.5 h ago: 13:00 yesterday, the 24th bucket counting the current one: in "24 h".
        (mixed, 23.5, "failing"),
        # 24 h ago: 12:30 yesterday, in the 12:00 bucket, the 25th: only in "7 d".
        (mixed, 24, "failing"), (mixed, 24, "up"),
        (mixed, 167.5, "up"),  # the 168th bucket: in "7 d"
        (mixed, 168, "failing"),  # the 169th: out
        (old_only, 200, "up"),
        (day_only, 1, "failing"),
    ]
    async with sessions() as session, session.begin():
        for monitor_id, hours, verdict in runs:
            await count_verdict(session, monitor_id, NOW - timedelta(hours=hours), verdict)
    current = hour_of(NOW)
    assert current == datetime(2026, 11, 29, 12, tzinfo=UTC)
    assert await buckets(sessions, mixed) == {
        current: (2, 0, 1), current - timedelta(hours=5): (0, 1, 0), current - timedelta(hours=23): (0, 0, 1),
        current - timedelta(hours=24): (1, 0, 1), current - timedelta(hours=167): (1, 0, 0),
        current - timedelta(hours=168): (0, 0, 1)}

    uptime = await store.uptime([mixed, old_only, empty, day_only], now=NOW)
    # 24 h: up up failing | degraded | failing(23.5 h) -> 3 of 5; 7 d adds failing, up (24 h) and up (167.5 h).
    assert uptime[mixed].day == pytest.approx(3 / 5)
    assert uptime[mixed].week == pytest.approx(5 / 8)
    assert (uptime[day_only].day, uptime[day_only].week) == (0.0, 0.0)
    assert old_only not in uptime and empty not in uptime
    # An hour later the 23.5 h run has left "24 h" and the current bucket is a new, empty one.
    later = await store.uptime([mixed], now=NOW + timedelta(hours=1))
    assert later[mixed].day == pytest.approx(3 / 4)
    assert await store.uptime([], now=NOW) == {}


async def test_the_evaluator_counts_each_judged_run_in_its_hour(sessions):
    lab = Lab(sessions)
    evaluator = MonitorEvaluator(sessions)
    monitor_id = await lab.monitor(quorum=2)
    for seq, failing in enumerate((0, 1, 2, 3, 0), start=1):  # up, degraded, failing, failing, up
        await evaluator.on_checks_finished([await lab.run(monitor_id, seq, failing)])
    await lab.claim(monitor_id, 6, verdict="unknown", reason="FAILED_PRECONDITION: no agents match")
    await evaluator.sweep_once()
    await evaluator.sweep_once()  # evaluating again counts nothing again
    _, runs, _ = await lab.read(monitor_id)
    assert [r.verdict for r in runs] == ["up", "degraded", "failing", "failing", "up", "unknown"]
    totals = [sum(c) for c in zip(*(await buckets(sessions, monitor_id)).values(), strict=True)]
    assert totals == [2, 1, 2]
    uptime = (await MonitorStore(sessions).uptime([monitor_id]))[monitor_id]
    assert (uptime.day, uptime.week) == (pytest.approx(3 / 5), pytest.approx(3 / 5))


async def test_racing_evaluators_count_each_run_once(migrated_postgres):
    """Two replicas (own engines) evaluate the same finished runs at once, by notification and by
    sweep: every bucket holds each run once."""
    with postgres_copy(migrated_postgres) as url:
        engines = [db.create_engine(url) for _ in range(2)]
        try:
            sessions = db.sessionmaker(engines[0])
            lab = Lab(sessions)
            evaluators = [MonitorEvaluator(db.sessionmaker(e)) for e in engines]
            monitors = [await lab.monitor() for _ in range(6)]
            for seq, failing in enumerate((3, 0, 3, 0, 0), start=1):
                checks = [await lab.run(m, seq, failing) for m in monitors]
                await asyncio.gather(*(ev.on_checks_finished(checks) for ev in evaluators),
                                     *(ev.sweep_once() for ev in evaluators))
            for monitor_id in monitors:
                totals = [sum(c) for c in zip(*(await buckets(sessions, monitor_id)).values(), strict=True)]
                assert totals == [3, 0, 2], monitor_id
        finally:
            for engine in engines:
                await engine.dispose()


def count_statements(engine) -> Counter:
    """Counts the SELECTs run on `engine` from now on (by their first table)."""
    seen: Counter = Counter()

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            seen["select"] += 1
    return seen


async def test_a_page_of_monitors_costs_one_query(sessions):
    store = MonitorStore(sessions)
    ids = await add_monitors(sessions, 50)
    async with sessions() as session, session.begin():
        for n, monitor_id in enumerate(ids):
            for hours in range(0, 168, 12):
                await count_verdict(session, monitor_id, NOW - timedelta(hours=hours), "failing" if n % 2 else "up")
    seen = count_statements(sessions.kw["bind"])
    uptime = await store.uptime(ids, now=NOW)
    assert seen["select"] == 1
    assert {uptime[m].day for m in ids} == {0.0, 1.0} and len(uptime) == 50


async def test_retention_and_deletion_remove_buckets(sessions):
    store = MonitorStore(sessions)
    kept, deleted = await add_monitors(sessions, 2)
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        for monitor_id in (kept, deleted):
            for days in (10, 8.1, 7.9, 0):
                await count_verdict(session, monitor_id, now - timedelta(days=days), "up")
    engine = sessions.kw["bind"]
    # Buckets go after 8 days even when checks and runs are kept forever (days=0).
    await Retention(engine, sessions, MemoryLiveState(), days=0, interval_s=60).sweep_once(now)
    assert set(await buckets(sessions, kept)) == {hour_of(now - timedelta(days=7.9)), hour_of(now)}
    await store.delete(deleted)
    assert await buckets(sessions, deleted) == {}
    assert len(await buckets(sessions, kept)) == 2


async def test_timing_a_list_page_at_1000_monitors_x_168_buckets(migrated_postgres):
    """Not asserted (machines differ): prints how long a ListMonitors page of 50 takes in the store
    (the page, its last runs, its uptime) with 168,000 buckets. Goal: < 50 ms."""
    with postgres_copy(migrated_postgres) as url:
        engine = db.create_engine(url)
        try:
            sessions = db.sessionmaker(engine)
            store = MonitorStore(sessions)
            await add_monitors(sessions, 1000)
            async with engine.begin() as conn:
                await conn.execute(text(
                    "INSERT INTO monitor_uptime (monitor_id, hour, up, degraded, failing) "
                    "SELECT m.id, date_trunc('hour', now()) - g * interval '1 hour', 350, 5, 5 "
                    "FROM monitors m CROSS JOIN generate_series(0, 167) g"))
                await conn.execute(text("ANALYZE monitors"))
                await conn.execute(text("ANALYZE monitor_uptime"))
            async with sessions() as session:
                assert await session.scalar(select(func.count()).select_from(MonitorUptimeRow)) == 168_000

            async def page() -> tuple[float, float]:
                started = time.perf_counter()
                rows, _ = await store.list_monitors(owner=None, every_owner=True, page_size=50, page_token="")
                ids = [r.id for r in rows]
                await store.last_runs(ids)
                before_uptime = time.perf_counter()
                uptime = await store.uptime(ids)
                assert len(uptime) == 50
                done = time.perf_counter()
                return done - started, done - before_uptime

            await page()  # warm: connections, statement caches
            took = sorted([await page() for _ in range(10)])
            uptime_took = sorted(u for _, u in took)
            print(f"\nListMonitors page of 50 at 1,000 monitors x 168 buckets (Postgres): "
                  f"median {took[5][0] * 1000:.1f} ms (uptime query {uptime_took[5] * 1000:.1f} ms), "
                  f"max {took[-1][0] * 1000:.1f} ms (goal < 50 ms)")
        finally:
            await engine.dispose()
