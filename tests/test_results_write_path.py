"""The results store's write path (issue 17): on Postgres raw statements in one or two round trips,
on SQLite through SQLAlchemy; what it stores and answers is the same on both.

- A write that ends a small check hands over the check as stored (`Changes.done`, read inside the
  write on Postgres): its done event is the same as one built from a read afterwards.
- OpenCheck of an id taken already is refused with INVALID_ARGUMENT (on Postgres by the primary key,
  with no SELECT first), and stores nothing.
- A batch the database refuses as a whole is stored result by result (the savepoint path), and a
  resend is acknowledged without a second result.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from hostcheck.core.errors import InvalidArgument
from hostcheck.services.results.models import ResultRow
from hostcheck.services.results.store import (
    DONE_READ_TASKS,
    IncomingResult,
    PlannedTask,
    ResultsStore,
)
from hostcheck.services.results.views import check_view
from hostcheck.services.storage import db


@pytest.fixture
def store(migrated_engine):
    return ResultsStore(db.sessionmaker(migrated_engine))


def planned(n: int) -> list[PlannedTask]:
    return [PlannedTask(task_id=uuid.uuid4(), agent_id=uuid.uuid4(), check_type="tcp",
                        deadline=datetime.now(UTC) + timedelta(minutes=1)) for _ in range(n)]


async def open_check(store: ResultsStore, tasks: list[PlannedTask], check_id: uuid.UUID | None = None) -> uuid.UUID:
    check_id = check_id or uuid.uuid4()
    await store.open_check(check_id=check_id, target="127.0.0.1:9", check_types=["tcp"],
                           request={"target": "127.0.0.1:9", "checks": ["tcp"], "timeout_ms": 900},
                           tasks=tasks, deadline=datetime.now(UTC) + timedelta(minutes=1), client_ip="10.0.0.1")
    return check_id


def result(task: PlannedTask, *, success: bool = True, data: dict | None = None) -> IncomingResult:
    return IncomingResult(
        agent_id=task.agent_id, task_id=task.task_id, success=success,
        data={"tcp": {"address": "127.0.0.1", "port": 9, "connect_ms": 0.081}} if data is None else data,
        error="" if success else "refused", error_code="" if success else "refused", duration_ms=0.12,
        started_at=datetime.now(UTC) - timedelta(milliseconds=5))


async def test_the_write_that_ends_a_check_hands_it_over_as_stored(store):
    tasks = planned(3)
    check_id = await open_check(store, tasks)
    first = await store.record_results([result(tasks[0])])
    assert first.finished_checks == set() and first.done == {}
    last = await store.record_results([result(tasks[1], success=False), result(tasks[2])])
    assert last.finished_checks == {check_id}
    read = check_view(await store.get_check(check_id))
    assert read.status == "completed" and read.tasks_done == 3 and len(read.results) == 3
    if store.postgres:
        # The same store reading through SQLAlchemy (as SQLite does): the raw reads give the same.
        orm = ResultsStore(store.sessions)
        orm.postgres = False
        assert check_view(await orm.get_check(check_id)) == read
        # What the done event carries, without a read after the write: the same as the read.
        assert check_view(last.done[check_id]).SerializeToString(deterministic=True) == \
            read.SerializeToString(deterministic=True)
    else:
        assert last.done == {}  # SQLite: the done event reads the check back


async def test_a_bigger_check_is_read_back_for_its_done_event(store):
    tasks = planned(DONE_READ_TASKS + 1)
    check_id = await open_check(store, tasks)
    changes = await store.record_results([result(t) for t in tasks])
    assert changes.finished_checks == {check_id} and changes.done == {}
    assert changes.checks[check_id].tasks_done == DONE_READ_TASKS + 1


async def test_a_taken_check_id_is_refused_and_nothing_is_stored(store):
    tasks = planned(2)
    check_id = await open_check(store, tasks)
    with pytest.raises(InvalidArgument, match="exists already"):
        await open_check(store, planned(1), check_id)
    row = await store.get_check(check_id)
    assert sorted(t.id for t in row.tasks) == sorted(t.task_id for t in tasks)
    # The store still works on the same pool afterwards.
    assert (await store.record_results([result(tasks[0])])).stored == [str(tasks[0].task_id)]


async def test_a_refused_batch_is_stored_result_by_result_and_resends_are_not_stored_twice(store):
    tasks = planned(3)
    check_id = await open_check(store, tasks)
    # A float the database cannot hold (jsonb refuses NaN) fails the batch as a whole; alone, it is quarantined.
    bad = result(tasks[1])
    bad = IncomingResult(**{**vars(bad), "data": {"tcp": {"connect_ms": float("nan")}}, "data_json": None})
    changes = await store.record_results([result(tasks[0]), bad])
    stored = set(changes.stored) | set(changes.quarantined)
    assert stored == {str(tasks[0].task_id), str(tasks[1].task_id)} and not changes.rejected
    again = await store.record_results([result(tasks[0]), result(tasks[2])])
    assert set(again.stored) == {str(tasks[0].task_id), str(tasks[2].task_id)}
    assert again.finished_checks == {check_id}
    async with store.sessions() as session:
        n = await session.scalar(select(func.count()).select_from(ResultRow).where(ResultRow.check_id == check_id))
    assert n == 3


async def test_results_of_unknown_and_other_agents_tasks_are_not_stored(store):
    tasks = planned(2)
    await open_check(store, tasks)
    other = result(tasks[0])
    other = IncomingResult(**{**vars(other), "agent_id": uuid.uuid4()})
    stray = IncomingResult(**{**vars(result(tasks[1])), "task_id": uuid.uuid4()})
    changes = await store.record_results([other, stray, result(tasks[1])])
    assert sorted(changes.unknown) == sorted([str(other.task_id), str(stray.task_id)])
    assert changes.stored == [str(tasks[1].task_id)] and not changes.finished_checks
