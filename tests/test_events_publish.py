"""Events: a write's task events go out in one publish_many, only to checks someone watches (issue 17)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hostcheck.services.results.service import UNCHECKED_WRITE_EVENTS, Events
from hostcheck.services.results.store import Changes, CheckState, TaskSnapshot
from hostcheck.services.storage.livestate import MemoryLiveState, check_channel
from hostcheck.v1 import results_pb2


class RecordingLive(MemoryLiveState):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []
        self.asked: list[list[str]] = []  # the channels of each `subscribed` call (PUBSUB NUMSUB)

    async def subscribed(self, channels: list[str]) -> set[str]:
        self.asked.append(list(channels))
        return await super().subscribed(channels)

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        self.batches.append([channel for channel, _ in messages])
        await super().publish_many(messages)


def changed(check_id: uuid.UUID, n: int) -> tuple[list[uuid.UUID], CheckState]:
    now = datetime.now(UTC)
    tasks = [TaskSnapshot(id=uuid.uuid4(), check_id=check_id, agent_id=uuid.uuid4(), agent_name="a", location="",
                          region="", country="", city="", check_type="tcp", status="completed", reason="",
                          created_at=now, started_at=now, completed_at=now, deadline_at=now) for _ in range(n)]
    return [t.id for t in tasks], CheckState(status="in_progress", tasks_done=n, tasks_total=n + 1,
                                             tasks={t.id: t for t in tasks})


async def test_task_events_go_out_together_and_only_to_watched_checks():
    live = RecordingLive()
    events = Events(store=None, live=live)  # type: ignore[arg-type]  # no check finishes: no read back
    watched, unwatched = uuid.uuid4(), uuid.uuid4()
    changes = Changes()
    for check_id, n in ((watched, 3), (unwatched, UNCHECKED_WRITE_EVENTS)):  # a write too big to publish unasked
        task_ids, state = changed(check_id, n)
        changes.tasks[check_id] = task_ids
        changes.checks[check_id] = state
    async with live.subscribe(check_channel(watched)) as sub:
        await events.publish(changes)
        got = [results_pb2.WatchCheckResponse.FromString(await sub.get(timeout=5)) for _ in range(3)]
    assert [e.task.task_id for e in got] == [str(t) for t in changes.tasks[watched]]
    assert {e.event for e in got} == {"task"} and all(e.tasks_total == 4 for e in got)
    assert live.batches == [[check_channel(watched)] * 3]  # one call; nothing built for the unwatched check


async def test_a_small_write_publishes_without_asking_who_watches():
    """A write of a few task events (a small check's results: the create -> completed path) goes out
    without the PUBSUB NUMSUB round trip; building its events for nobody costs less than asking."""
    live = RecordingLive()
    events = Events(store=None, live=live)  # type: ignore[arg-type]
    watched, unwatched = uuid.uuid4(), uuid.uuid4()
    changes = Changes()
    for check_id in (watched, unwatched):
        task_ids, state = changed(check_id, 2)
        changes.tasks[check_id] = task_ids
        changes.checks[check_id] = state
    async with live.subscribe(check_channel(watched)) as sub:
        await events.publish(changes)
        got = [results_pb2.WatchCheckResponse.FromString(await sub.get(timeout=5)) for _ in range(2)]
    assert [e.task.task_id for e in got] == [str(t) for t in changes.tasks[watched]]
    assert live.asked == []
    assert live.batches == [[check_channel(watched)] * 2 + [check_channel(unwatched)] * 2]
