"""Retention (issue 13): old checks go with their tasks and results, on Postgres by dropping their
month's partitions, on SQLite by batched deletes; watchers get `deleted`; one replica sweeps."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
from google.protobuf import timestamp_pb2
from sqlalchemy import func, select, text, update

from hostcheck.core.config import ConfigError, ResultsConfig, load
from hostcheck.core.errors import NotFound
from hostcheck.services.results import retention
from hostcheck.services.results.models import CheckRow, ResultRow, TaskRow
from hostcheck.services.results.retention import Retention, ensure_partitions, month_start
from hostcheck.services.results.store import IncomingResult, PlannedTask, ResultsStore
from hostcheck.services.storage import db
from hostcheck.services.storage.livestate import MemoryLiveState, check_channel
from hostcheck.v1 import results_pb2, scheduler_pb2
from tests.conftest import fresh_postgres_db
from tests.helpers import assert_eventually

# The sweeps here run "at" NOW with a 30-day window: cutoff 2026-10-21 12:00. On Postgres
# months ending by 2026-10-01 go whole; October stays (not all of it is 30 days old yet).
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EXPIRED = datetime(2026, 8, 15, 9, 0, tzinfo=UTC)
LAST_SECOND_OF_SEPTEMBER = datetime(2026, 9, 30, 23, 59, 59, tzinfo=UTC)
OLDER_THAN_WINDOW_IN_OCTOBER = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
FRESH = datetime(2026, 11, 19, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["postgres", "sqlite"])
async def engine(request, tmp_path):
    if request.param == "postgres":
        with fresh_postgres_db() as url:
            db.migrate(url)
            eng = db.create_engine(url)
            # The months these tests write to (the migration made the current one and two more).
            await ensure_partitions(eng, datetime(2026, 8, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
            yield eng
            await eng.dispose()
    else:
        url = f"sqlite:///{tmp_path / 'retention.db'}"
        db.migrate(url)
        eng = db.create_engine(url)
        yield eng
        await eng.dispose()


def postgres(engine) -> bool:
    return engine.dialect.name == "postgresql"


async def make_check(store: ResultsStore, *, created: datetime, tasks: int = 2, results: int = 1,
                     result_at: datetime | None = None) -> uuid.UUID:
    """A check with `tasks` tasks, `results` of them answered, moved back to `created` (results to
    `result_at`, default a minute later): rows move to that month's partition, as if written then."""
    check_id = uuid.uuid4()
    planned = [PlannedTask(task_id=uuid.uuid4(), agent_id=uuid.uuid4(), check_type="tcp",
                           deadline=datetime.now(UTC) + timedelta(minutes=1)) for _ in range(tasks)]
    await store.open_check(check_id=check_id, target="example.com", check_types=["tcp"], request={},
                           tasks=planned, deadline=datetime.now(UTC) + timedelta(minutes=1), client_ip="")
    await store.record_results([IncomingResult(agent_id=t.agent_id, task_id=t.task_id, success=True, data={},
                                               error="", error_code="", duration_ms=1.0, started_at=None)
                                for t in planned[:results]])
    async with store.sessions() as session, session.begin():
        await backdate(session, check_id, created, result_at or created + timedelta(minutes=1))
    return check_id


async def backdate(conn, check_id: uuid.UUID, created: datetime, result_at: datetime) -> None:
    await conn.execute(update(CheckRow).where(CheckRow.id == check_id).values(created_at=created))
    await conn.execute(update(TaskRow).where(TaskRow.check_id == check_id).values(created_at=created))
    await conn.execute(update(ResultRow).where(ResultRow.check_id == check_id).values(created_at=result_at))


async def exists(store: ResultsStore, check_id: uuid.UUID) -> bool:
    try:
        await store.get_check(check_id)
    except NotFound:
        return False
    return True


async def rows_of(engine, check_id: uuid.UUID) -> tuple[int, int]:
    async with engine.connect() as conn:
        tasks = await conn.scalar(select(func.count()).where(TaskRow.check_id == check_id))
        results = await conn.scalar(select(func.count()).where(ResultRow.check_id == check_id))
    return tasks or 0, results or 0


async def tables(engine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.scalars(text("SELECT relname FROM pg_class WHERE relkind IN ('r', 'p')"))).all())


@contextlib.asynccontextmanager
async def watching(live: MemoryLiveState, *check_ids: uuid.UUID):
    """Subscribes to each check's events; yields a function returning check id -> the names of the
    events its watchers got so far (the memory live state delivers on publish)."""
    async with contextlib.AsyncExitStack() as stack:
        subs = {c: await stack.enter_async_context(live.subscribe(check_channel(c))) for c in check_ids}

        def received() -> dict[uuid.UUID, list[str]]:
            got: dict[uuid.UUID, list[str]] = {}
            for check_id, sub in subs.items():
                got[check_id] = []
                while not sub.queue.empty():
                    got[check_id].append(results_pb2.WatchCheckResponse.FromString(sub.queue.get_nowait()).event)
            return got
        yield received


async def test_an_expired_check_goes_at_the_next_sweep(engine):
    store = ResultsStore(db.sessionmaker(engine))
    live = MemoryLiveState()
    expired = await make_check(store, created=EXPIRED)
    # Made in September, answered in October: the check goes with September; its result is deleted.
    straddling = await make_check(store, created=LAST_SECOND_OF_SEPTEMBER,
                                  result_at=datetime(2026, 10, 1, 0, 0, 1, tzinfo=UTC))
    october = await make_check(store, created=OLDER_THAN_WINDOW_IN_OCTOBER)
    fresh = await make_check(store, created=FRESH)
    sweeper = Retention(engine, store.sessions, live, days=30, interval_s=3600)

    async with watching(live, expired, straddling, october, fresh) as received:
        report = await sweeper.sweep_once(NOW)
        seen = received()
    assert seen[expired] == seen[straddling] == ["deleted"], "watchers of removed checks get `deleted`"

    assert not await exists(store, expired) and not await exists(store, straddling)
    assert await rows_of(engine, expired) == await rows_of(engine, straddling) == (0, 0)
    assert await exists(store, fresh) and await rows_of(engine, fresh) == (2, 1)
    if postgres(engine):
        gone = {f"{t}_p2026_{m}" for t in ("check_tasks", "check_results") for m in ("08", "09")}
        assert set(report.dropped) == gone
        assert not gone & await tables(engine), "the expired months' partitions are dropped"
        assert {"check_tasks_p2026_10", "check_results_p2026_10", "check_results_p2026_11"} <= await tables(engine)
        # Months go whole: October is not all past the window yet, so its check stays.
        assert report.checks_deleted == 2
        assert await exists(store, october) and await rows_of(engine, october) == (2, 1)
        assert seen[october] == seen[fresh] == []
    else:
        assert report.dropped == []
        assert report.checks_deleted == 3
        assert not await exists(store, october) and await rows_of(engine, october) == (0, 0)
        assert seen[october] == ["deleted"] and seen[fresh] == []

    again = await sweeper.sweep_once(NOW)
    assert (again.dropped, again.checks_deleted) == ([], 0)


async def test_deletes_go_in_bounded_batches(engine, monkeypatch):
    monkeypatch.setattr(retention, "BATCH_CHECKS", 3)
    monkeypatch.setattr(retention, "BATCH_TASKS", 4)
    store = ResultsStore(db.sessionmaker(engine))
    # Only the batched deletes run here (no partition is dropped), on both databases.
    old = [await make_check(store, created=OLDER_THAN_WINDOW_IN_OCTOBER - timedelta(days=30) + timedelta(hours=i),
                            tasks=2) for i in range(5)]
    big = await make_check(store, created=OLDER_THAN_WINDOW_IN_OCTOBER - timedelta(days=20), tasks=6)
    kept = await make_check(store, created=FRESH)
    sweeper = Retention(engine, store.sessions, MemoryLiveState(), days=30, interval_s=3600)
    batches: list[int] = []
    delete_batch = sweeper._delete_batch

    async def counted(*args):
        chosen, after, open_tasks = await delete_batch(*args)
        batches.append(len(chosen))
        return chosen, after, open_tasks
    monkeypatch.setattr(sweeper, "_delete_batch", counted)
    deleted = await sweeper.delete_checks_before(datetime(2026, 10, 1, tzinfo=UTC))

    assert deleted == 6 and sum(batches) == 6
    # At most 3 checks and 4 tasks a transaction, except a check bigger than that alone: 2+2, 2+2, 2, 6.
    assert batches == [2, 2, 1, 1], batches
    for check_id in [*old, big]:
        assert not await exists(store, check_id) and await rows_of(engine, check_id) == (0, 0)
    assert await exists(store, kept)


async def test_open_tasks_of_a_removed_check_are_cancelled(engine):
    store = ResultsStore(db.sessionmaker(engine))
    live = MemoryLiveState()
    check_id = await make_check(store, created=EXPIRED, tasks=2, results=1)
    async with live.subscribe("cancels") as cancels:
        await Retention(engine, store.sessions, live, days=30, interval_s=3600).sweep_once(NOW)
        raw = await cancels.get(timeout=5)
    assert raw is not None and b"retention" in raw
    assert not await exists(store, check_id)


async def test_one_replica_sweeps_at_a_time():
    with fresh_postgres_db() as url:
        db.migrate(url)
        eng = db.create_engine(url)
        try:
            store = ResultsStore(db.sessionmaker(eng))
            await ensure_partitions(eng, EXPIRED, EXPIRED)
            check_id = await make_check(store, created=EXPIRED)
            sweeper = Retention(eng, store.sessions, MemoryLiveState(), days=30, interval_s=3600)
            with psycopg.connect(url, autocommit=True) as other_replica:
                other_replica.execute("SELECT pg_advisory_lock(%s)", (retention.LOCK_KEY,))
                skipped = await sweeper.sweep_once(NOW)
                assert skipped.skipped and skipped.dropped == [] and await exists(store, check_id)
                other_replica.execute("SELECT pg_advisory_unlock(%s)", (retention.LOCK_KEY,))
            done = await sweeper.sweep_once(NOW)
            assert not done.skipped and "check_results_p2026_08" in done.dropped
            assert not await exists(store, check_id)
        finally:
            await eng.dispose()


async def test_stopping_mid_sweep_ends_the_job_and_frees_the_lock():
    """Cancelled while its own connection waits (DETACH ... CONCURRENTLY waits for a reader of the
    partition), the job ends, and the replica's advisory lock is released."""
    with fresh_postgres_db() as url:
        db.migrate(url)
        eng = db.create_engine(url)
        try:
            await ensure_partitions(eng, EXPIRED, EXPIRED)
            sweeper = Retention(eng, db.sessionmaker(eng), MemoryLiveState(), days=30, interval_s=3600)
            with psycopg.connect(url) as reader, psycopg.connect(url, autocommit=True) as observer:
                reader.execute("SELECT count(*) FROM check_results_p2026_08")  # and its transaction stays open
                job = asyncio.create_task(sweeper.run())

                def detach_waits() -> bool:
                    return observer.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'ALTER TABLE % DETACH PARTITION %' "
                        "AND wait_event_type = 'Lock'").fetchone()[0] > 0
                await assert_eventually(detach_waits, message="the sweep waits to detach a partition")
                job.cancel()
                done, _ = await asyncio.wait([job], timeout=10)
                assert done, "the job ends when cancelled mid-query"
                reader.rollback()
            with psycopg.connect(url, autocommit=True) as other_replica:
                def lock_free() -> bool:
                    if other_replica.execute("SELECT pg_try_advisory_lock(%s)", (retention.LOCK_KEY,)).fetchone()[0]:
                        other_replica.execute("SELECT pg_advisory_unlock(%s)", (retention.LOCK_KEY,))
                        return True
                    return False
                await assert_eventually(lock_free, message="another replica can sweep")
        finally:
            await eng.dispose()


async def test_a_result_is_stored_once_without_a_unique_task_id(engine):
    """Partitioned check_results cannot hold UNIQUE (task_id): resends racing each other still store one."""
    store = ResultsStore(db.sessionmaker(engine))
    task = PlannedTask(task_id=uuid.uuid4(), agent_id=uuid.uuid4(), check_type="tcp",
                       deadline=datetime.now(UTC) + timedelta(minutes=1))
    other = PlannedTask(task_id=uuid.uuid4(), agent_id=task.agent_id, check_type="tcp",
                        deadline=task.deadline)
    check_id = uuid.uuid4()
    await store.open_check(check_id=check_id, target="example.com", check_types=["tcp"], request={},
                           tasks=[task, other], deadline=task.deadline, client_ip="")
    result = IncomingResult(agent_id=task.agent_id, task_id=task.task_id, success=True, data={}, error="",
                            error_code="", duration_ms=1.0, started_at=None)
    await asyncio.gather(*(store.record_results([result]) for _ in range(8)))
    await store.record_results([result])  # and once more, later
    assert await rows_of(engine, check_id) == (2, 1)


def test_settings_come_from_the_environment():
    conf = load(ResultsConfig, {"HOSTCHECK_RETENTION_DAYS": "7", "HOSTCHECK_RETENTION_INTERVAL_S": "0.5"})
    assert (conf.retention_days, conf.retention_interval_s) == (7, 0.5)
    defaults = load(ResultsConfig, {})
    assert (defaults.retention_days, defaults.retention_interval_s) == (30, 3600.0)
    with pytest.raises(ConfigError, match="HOSTCHECK_RETENTION_DAYS"):
        load(ResultsConfig, {"HOSTCHECK_RETENTION_DAYS": "a week"})


async def test_bad_settings_fail_at_start(tmp_path):
    eng = db.create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(ConfigError, match="HOSTCHECK_RETENTION_DAYS=-1"):
            Retention(eng, db.sessionmaker(eng), MemoryLiveState(), days=-1, interval_s=60)
        with pytest.raises(ConfigError, match="HOSTCHECK_RETENTION_INTERVAL_S=0"):
            Retention(eng, db.sessionmaker(eng), MemoryLiveState(), days=30, interval_s=0)
    finally:
        await eng.dispose()


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


@pytest.mark.system_config(results_overrides={"retention_days": 30, "retention_interval_s": 0.1})
async def test_the_results_service_sweeps_in_the_background(system):
    """The service's own job, with its settings: a watcher of a check backdated past the window gets
    `deleted` and the check is gone."""
    check_id, agent_id = str(uuid.uuid4()), str(uuid.uuid4())
    deadline = ts(datetime.now(UTC) + timedelta(minutes=1))
    await system.ingest.OpenCheck(results_pb2.OpenCheckRequest(
        check_id=check_id, request=scheduler_pb2.CreateCheckRequest(target="example.com:80", checks=["tcp"]),
        tasks=[results_pb2.PlannedTask(task_id=str(uuid.uuid4()), agent_id=agent_id, check_type="tcp",
                                       deadline=deadline)], deadline=deadline))
    fresh = str(uuid.uuid4())
    await system.ingest.OpenCheck(results_pb2.OpenCheckRequest(
        check_id=fresh, request=scheduler_pb2.CreateCheckRequest(target="example.com:80", checks=["tcp"]),
        deadline=deadline))
    watch = system.checks.WatchCheck(results_pb2.WatchCheckRequest(check_id=check_id))
    events = [await watch.read()]
    assert events[0].event == "snapshot"

    old = month_start(datetime.now(UTC) - timedelta(days=100)) + timedelta(days=3)
    eng = db.create_engine(system.database_url)
    try:
        async with contextlib.AsyncExitStack() as stack:
            if postgres(eng):
                # As the sweeping replica would: hold the lock while the check is moved to its old month,
                # so the service's sweep does not drop the fresh (still empty) partition in between.
                conn = await stack.enter_async_context(eng.connect())
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": retention.LOCK_KEY})
                stack.push_async_callback(conn.execute, text("SELECT pg_advisory_unlock(:k)"),
                                          {"k": retention.LOCK_KEY})
                await ensure_partitions(eng, old, old)
            async with eng.begin() as conn:
                await backdate(conn, uuid.UUID(check_id), old, old)
    finally:
        await eng.dispose()

    async def ended() -> bool:
        event = await asyncio.wait_for(watch.read(), 10)
        if event is grpc.aio.EOF:
            return True
        events.append(event)
        return False
    await assert_eventually(ended, timeout=10, message="the watch ends")
    assert [e.event for e in events] == ["snapshot", "deleted"]
    assert await watch.code() == grpc.StatusCode.OK
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=check_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=fresh))).check.check_id == fresh


async def test_hostcheck_dev_honours_the_retention_settings(tmp_path):
    """`hostcheck dev` with HOSTCHECK_RETENTION_DAYS=10 and HOSTCHECK_RETENTION_INTERVAL_S=0.2: a check
    15 days old (kept by the 30-day default) goes within moments of being written; one 5 days old stays."""
    import os

    import httpx
    import sqlalchemy as sa

    from tests.helpers import Proc, free_port, hostcheck_cmd

    port, data = free_port(), tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    env.update({"HOSTCHECK_RETENTION_DAYS": "10", "HOSTCHECK_RETENTION_INTERVAL_S": "0.2"})
    proc = Proc(hostcheck_cmd("dev", "--port", str(port), "--data-dir", str(data), "--agents", "0"), env=env,
                log_path=tmp_path / "dev.log")
    try:
        def running() -> bool:
            assert proc.alive(), proc.output()[-3000:]
            return "Host Checker is running" in proc.output()
        await assert_eventually(running, timeout=60, interval=0.1, message="dev system running")

        now = datetime.now(UTC)
        ages = {"old": now - timedelta(days=15), "recent": now - timedelta(days=5)}
        ids = {name: uuid.uuid4() for name in ages}
        engine = sa.create_engine(f"sqlite:///{data / 'hostcheck.db'}", connect_args={"timeout": 30})
        try:
            with engine.begin() as conn:
                conn.execute(sa.insert(CheckRow.__table__), [{
                    "id": ids[name], "target": "example.com:80", "check_types": ["tcp"], "request": {},
                    "status": "completed", "created_at": created, "completed_at": created, "deadline_at": created,
                    "client_ip": ""} for name, created in ages.items()])
        finally:
            engine.dispose()

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            async def old_gone() -> bool:
                return (await http.get(f"/api/checks/{ids['old']}")).status_code == 404
            await assert_eventually(old_gone, timeout=10, message="the 15-day-old check is removed")
            kept = await http.get(f"/api/checks/{ids['recent']}")
            assert kept.status_code == 200 and kept.json()["check_id"] == str(ids["recent"])
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]
