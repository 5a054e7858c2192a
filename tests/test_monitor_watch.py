"""watch_monitor (WatchMonitor's stream, services/results/monitorwatch.py) on a real store and real
live state: a snapshot, then the monitor's events as published, the webhook secret never sent,
a change no event showed caught up by the periodic re-read, `deleted` ending the stream, and a
client that reads nothing dropped instead of piling up events.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from sqlalchemy import Table, delete, insert, update

from hostcheck.core.errors import NotFound, ResourceExhausted
from hostcheck.services.results.monitormodels import MonitorRow, MonitorRunRow
from hostcheck.services.results.monitors import MonitorStore, count_verdict
from hostcheck.services.results.monitorwatch import WATCH_MAX_PENDING, MonitorEvents, watch_monitor
from hostcheck.services.storage import db
from hostcheck.services.storage.livestate import MemoryLiveState, RedisLiveState
from hostcheck.v1 import monitors_pb2
from tests.conftest import REDIS_URL, fresh_postgres_db

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(params=["postgres+redis", "sqlite+memory"])
async def backends(request, tmp_path, live_prefix):
    def made(url: str):
        db.migrate(url)
        return db.create_engine(url)
    if request.param == "postgres+redis":
        with fresh_postgres_db() as url:
            engine = made(url)
            live = RedisLiveState(REDIS_URL, prefix=live_prefix)
            yield MonitorStore(db.sessionmaker(engine)), live
            await live.close()
            await engine.dispose()
    else:
        engine = made(f"sqlite:///{tmp_path / 'results.db'}")
        live = MemoryLiveState()
        yield MonitorStore(db.sessionmaker(engine)), live
        await live.close()
        await engine.dispose()


async def add_monitor(store: MonitorStore, *, state: str = "up", evaluated_seq: int = 1) -> uuid.UUID:
    monitor_id = uuid.uuid4()
    async with store.sessions() as session, session.begin():
        await session.execute(insert(cast(Table, MonitorRow.__table__)), [{
            "id": monitor_id, "name": "web", "target": "example.com", "check_types": ["tcp"],
            "spec": {"target": "example.com", "checks": ["tcp"]}, "interval_s": 10, "quorum": 1, "for_runs": 1,
            "webhook_url": "", "webhook_secret": "s" * 64, "paused": False, "status_slug": None,
            "created_by_key_id": None, "created_at": NOW, "updated_at": NOW, "next_run_at": NOW, "run_seq": 1,
            "state": state, "state_since": NOW, "failing_runs": 0, "last_evaluated_seq": evaluated_seq}])
        await session.execute(insert(cast(Table, MonitorRunRow.__table__)), [{
            "monitor_id": monitor_id, "seq": 1, "check_id": uuid.uuid4(), "scheduled_at": NOW, "claimed_at": NOW,
            "claimed_by": "s1", "started_at": NOW, "finished_at": NOW, "verdict": "up", "agents_total": 1,
            "agents_failing": 0, "agents": [], "state_after": state, "reason": "", "evaluated": True}])
        await count_verdict(session, monitor_id, NOW, "up")  # the evaluator's uptime rollup
    return monitor_id


class Reads:
    """The store, counting reads of the monitor (the watcher's re-reads), so a test waits on them."""

    def __init__(self, store: MonitorStore) -> None:
        self.store = store
        self.sessions = store.sessions
        self.count = 0
        self.changed = asyncio.Event()

    async def get(self, monitor_id):
        self.count += 1
        self.changed.set()
        return await self.store.get(monitor_id)

    async def last_runs(self, ids):
        return await self.store.last_runs(ids)

    async def uptime(self, ids):
        return await self.store.uptime(ids)

    async def reads(self, at_least: int) -> None:
        async with asyncio.timeout(10):
            while self.count < at_least:
                self.changed.clear()
                await self.changed.wait()


async def next_event(stream) -> monitors_pb2.WatchMonitorResponse:
    async with asyncio.timeout(10):
        return await anext(stream)


async def test_snapshot_then_events_until_deleted(backends):
    store, live = backends
    monitor_id = await add_monitor(store)
    stream = watch_monitor(store, live, monitor_id)
    first = await next_event(stream)
    assert first.event == "snapshot" and first.monitor.monitor_id == str(monitor_id)
    assert first.monitor.state == "up" and first.monitor.last_run.seq == 1 and first.monitor.webhook_secret == ""

    events = MonitorEvents(live)
    await events.run(monitor_id, monitors_pb2.MonitorRun(seq=2, verdict="running"))
    run = await next_event(stream)
    assert run.event == "run" and run.run.seq == 2 and run.run.verdict == "running"

    # A state event carries the monitor: never with its secret, even if a publisher put it there.
    changed = monitors_pb2.Monitor(monitor_id=str(monitor_id), state="down", webhook_secret="leaked")
    await events.state(monitor_id, changed, monitors_pb2.MonitorEvent(from_state="up", to_state="down"))
    state = await next_event(stream)
    assert state.event == "state" and state.monitor.state == "down" and state.change.to_state == "down"
    assert state.monitor.webhook_secret == ""

    await events.deleted(monitor_id)
    assert (await next_event(stream)).event == "deleted"
    with pytest.raises(StopAsyncIteration):
        await next_event(stream)


async def test_a_missed_change_is_caught_up_by_the_re_read(backends):
    store, live = backends
    monitor_id = await add_monitor(store)
    reads = Reads(store)
    stream = watch_monitor(reads, live, monitor_id, resync_s=0.05)
    assert (await next_event(stream)).event == "snapshot"

    # Changed in storage with no event published (as if the publish was lost).
    async with store.sessions() as session, session.begin():
        await session.execute(update(MonitorRow).where(MonitorRow.id == monitor_id).values(
            state="degraded", state_since=NOW + timedelta(seconds=5)))
    caught_up = await next_event(stream)
    assert caught_up.event == "snapshot" and caught_up.monitor.state == "degraded"

    # Re-reads that find nothing new send nothing: the next event is the next one published.
    pending = asyncio.ensure_future(next_event(stream))
    await reads.reads(reads.count + 3)
    assert not pending.done()
    await MonitorEvents(live).run(monitor_id, monitors_pb2.MonitorRun(seq=2, verdict="running"))
    assert (await pending).event == "run"

    # Deleted with its `deleted` event lost: the re-read ends the stream.
    async with store.sessions() as session, session.begin():
        await session.execute(delete(MonitorRow).where(MonitorRow.id == monitor_id))
    assert (await next_event(stream)).event == "deleted"
    with pytest.raises(StopAsyncIteration):
        await next_event(stream)


async def test_a_missing_monitor_is_not_found(backends):
    store, live = backends
    with pytest.raises(NotFound):
        await next_event(watch_monitor(store, live, uuid.uuid4()))


async def test_a_client_that_reads_nothing_is_dropped(tmp_path):
    engine = db.create_engine(f"sqlite:///{tmp_path / 'results.db'}")
    db.migrate(f"sqlite:///{tmp_path / 'results.db'}")
    store, live = MonitorStore(db.sessionmaker(engine)), MemoryLiveState()
    try:
        monitor_id = await add_monitor(store)
        stream = watch_monitor(store, live, monitor_id)
        assert (await next_event(stream)).event == "snapshot"
        events = MonitorEvents(live)
        for seq in range(WATCH_MAX_PENDING + 1):
            await events.run(monitor_id, monitors_pb2.MonitorRun(seq=seq + 2, verdict="running"))
        with pytest.raises(ResourceExhausted):
            await next_event(stream)
    finally:
        await live.close()
        await engine.dispose()


async def test_a_quiet_watch_gets_a_snapshot_before_the_gateway_would_cut_it(backends):
    """Envoy resets a stream with no bytes for 300 s; a paused monitor publishes nothing."""
    store, live = backends
    monitor_id = await add_monitor(store)
    stream = watch_monitor(store, live, monitor_id, resync_s=0.05, keepalive_s=0.2)
    assert (await next_event(stream)).event == "snapshot"
    again = await next_event(stream)
    assert again.event == "snapshot" and again.monitor.state == "up"
    await stream.aclose()
