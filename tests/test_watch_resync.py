"""WatchCheck resyncs from storage when an event is lost: a result stored whose live event never went
out (as when Redis restarts between the write and the publish) still reaches the watcher, then `done`;
so does one published while the subscription to Redis was down (at once). A watcher whose events are
only late (stored, still on their way) does not re-read the whole check (issue 17)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio

from hostcheck.core.timestamps import now_ts
from hostcheck.services.results import service as results_service
from hostcheck.services.results.ingest import judge
from hostcheck.services.results.store import IncomingResult, ResultsStore
from hostcheck.services.storage import db
from hostcheck.v1 import http_pb2, results_pb2, scheduler_pb2
from tests.conftest import REDIS_URL
from tests.helpers import within


async def test_a_lost_event_reaches_the_watcher_by_resync(system, tmp_path, http_target, monkeypatch):
    monkeypatch.setattr(results_service, "WATCH_RESYNC_S", 0.5)
    agent = await system.start_agent(tmp_path, "slowpoke")
    # The agent's own probe hangs: the only result this task gets is the one written below.
    created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target="127.0.0.1", checks=["http"], timeout_ms=20000,
        http=http_pb2.HttpOptions(port=http_target.port, path="/hang")))
    (task,) = created.check.tasks
    stream = system.checks.WatchCheck(results_pb2.WatchCheckRequest(check_id=created.check_id), timeout=15)
    assert (await stream.read()).event == "snapshot"

    # Stored straight into the database, never published: the live event is lost.
    result = scheduler_pb2.TaskResult(task_id=task.task_id, check_id=created.check_id, check_type="http",
                                      success=True, duration_ms=3.0, started_at=now_ts())
    result.data.http.status_code = 204
    incoming = judge(results_pb2.AgentResult(agent_id=agent.identity.agent_id, result=result), 0, datetime.now(UTC))
    store = ResultsStore(db.sessionmaker(system.results.engine))
    assert (await store.record_results([incoming])).stored == [task.task_id]
    written = time.monotonic()

    events = []
    while not events or events[-1].event != "done":
        events.append(await stream.read())
    took = time.monotonic() - written
    finished = [e for e in events if e.event == "task" and e.task.status == "completed"]
    assert len(finished) == 1 and finished[0].task.result.data.http.status_code == 204, events
    assert events[-1].event == "done" and events[-1].check.status == "completed"
    # Caught up by the resync (every 0.5 s here), not by waiting for the task's 20 s deadline.
    assert took < 5, took


async def _hanging_check(system, tmp_path, http_target):
    """A check of one task whose agent's probe hangs: its only result is one the test stores."""
    agent = await system.start_agent(tmp_path, "slowpoke")
    created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target="127.0.0.1", checks=["http"], timeout_ms=20000,
        http=http_pb2.HttpOptions(port=http_target.port, path="/hang")))
    (task,) = created.check.tasks
    return agent, created, task


def _store_result(system, agent, created, task) -> tuple[ResultsStore, IncomingResult]:
    """The task's result to store straight into the database, and a store (nothing is published)."""
    result = scheduler_pb2.TaskResult(task_id=task.task_id, check_id=created.check_id, check_type="http",
                                      success=True, duration_ms=3.0, started_at=now_ts())
    result.data.http.status_code = 204
    incoming = judge(results_pb2.AgentResult(agent_id=agent.identity.agent_id, result=result), 0, datetime.now(UTC))
    return ResultsStore(db.sessionmaker(system.results.engine)), incoming


async def _read_until_done(stream) -> list[results_pb2.WatchCheckResponse]:
    events = []
    while not events or events[-1].event != "done":
        events.append(await stream.read())
    return events


def _count_whole_reads(monkeypatch) -> list[str]:
    """Spies on the results service's reads of a whole check (snapshots and resyncs: ResultsStore.get_check)."""
    reads: list[str] = []
    get_check = ResultsStore.get_check

    async def counted(self, check_id):
        reads.append(str(check_id))
        return await get_check(self, check_id)

    monkeypatch.setattr(ResultsStore, "get_check", counted)
    return reads


async def test_events_on_their_way_are_not_read_again(system, tmp_path, http_target, monkeypatch):
    """A watcher that finds storage ahead of what it was sent (its events stored, still on their way,
    as in a burst) waits for them instead of reading the whole check: 2,000 watchers re-reading during
    a burst held the events back by seconds (issue 17)."""
    monkeypatch.setattr(results_service, "WATCH_RESYNC_S", 1.0)
    agent, created, task = await _hanging_check(system, tmp_path, http_target)
    whole_reads = _count_whole_reads(monkeypatch)
    stream = system.checks.WatchCheck(results_pb2.WatchCheckRequest(check_id=created.check_id), timeout=15)
    assert (await stream.read()).event == "snapshot"
    assert whole_reads == [created.check_id]

    store, incoming = _store_result(system, agent, created, task)
    assert (await store.record_results([incoming])).stored == [task.task_id]
    # The watcher's resync finds the result stored; its events go out right after that read, late,
    # the way a busy publisher sends them (Events.publish_read_back: the task's event, then done).
    check_progress = ResultsStore.check_progress
    live = system.results.live if system.live_url == "memory://" else system.live()
    late = []

    async def progress_then_publish(self, check_id):
        progress = await check_progress(self, check_id)
        if str(check_id) == created.check_id and not late:
            late.append(progress)
            await results_service.Events(store, live).publish_read_back({check_id: [uuid.UUID(task.task_id)]})
        return progress

    monkeypatch.setattr(ResultsStore, "check_progress", progress_then_publish)
    try:
        events = await _read_until_done(stream)
    finally:
        if live is not system.results.live:
            await live.close()
    assert late and late[0][1] == {"completed": 1}, late  # the resync saw storage ahead of the watcher
    finished = [e for e in events if e.event == "task" and e.task.status == "completed"]
    assert len(finished) == 1 and finished[0].task.result.data.http.status_code == 204, events
    assert events[-1].check.status == "completed"
    assert whole_reads == [created.check_id], "the watcher re-read the whole check although its events came"


async def test_a_lost_redis_connection_is_caught_up_at_once(system, tmp_path, http_target, monkeypatch):
    """Events published while the results service's subscription to Redis was down reached nobody: the
    watcher reads the check again as soon as the subscription is back, not at its next silence."""
    if system.live_url == "memory://":
        pytest.skip("the in-process live state has no connection to lose")
    monkeypatch.setattr(results_service, "WATCH_RESYNC_S", 600.0)
    agent, created, task = await _hanging_check(system, tmp_path, http_target)
    stream = system.checks.WatchCheck(results_pb2.WatchCheckRequest(check_id=created.check_id), timeout=30)
    assert (await stream.read()).event == "snapshot"

    store, incoming = _store_result(system, agent, created, task)
    assert (await store.record_results([incoming])).stored == [task.task_id]  # its event is lost
    # Close the results service's pub/sub connection from the Redis side (only that client).
    live = system.results.live
    host, port = live._pubsub.connection._writer.get_extra_info("sockname")[:2]
    admin = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        assert await admin.client_kill_filter(_type="pubsub", addr=f"{host}:{port}") == 1
    finally:
        await admin.aclose()
    lost = time.monotonic()
    events = await _read_until_done(stream)
    took = time.monotonic() - lost
    finished = [e for e in events if e.event == "task" and e.task.status == "completed"]
    assert len(finished) == 1 and finished[0].task.result.data.http.status_code == 204, events
    assert events[-1].check.status == "completed"
    assert took < within(5), took  # the resubscribe (reconnects back off up to 0.5 s), not the 600 s silence
