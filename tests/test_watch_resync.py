"""WatchCheck resyncs from storage when an event is lost: a result stored whose live event never went
out (as when Redis restarts between the write and the publish) still reaches the watcher, then `done`."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from hostcheck.core.timestamps import now_ts
from hostcheck.services.results import service as results_service
from hostcheck.services.results.ingest import judge
from hostcheck.services.results.store import ResultsStore
from hostcheck.services.storage import db
from hostcheck.v1 import http_pb2, results_pb2, scheduler_pb2


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
