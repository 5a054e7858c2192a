"""The Postgres write of a batch (issue 17, fourth pass): Postgres decides what to store in the
statement that writes it (_RECORD_SQL, sent with the checks' locks and the COMMIT in one round trip,
so the locks are never held across the service's Python), and the events are built afterwards
from the rows it returns by the same rules (_plan, _ends). Both must agree, on Postgres as on
SQLite (which still decides in Python): every kind of result of a batch, as stored and as the
write's changes tell it, is the same.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hostcheck.services.results.store import QUARANTINED, IncomingResult, PlannedTask, ResultsStore
from hostcheck.services.results.views import check_view
from hostcheck.services.storage import db


@pytest.fixture
def store(migrated_engine):
    return ResultsStore(db.sessionmaker(migrated_engine))


def planned(n: int, check_type: str = "tcp") -> list[PlannedTask]:
    return [PlannedTask(task_id=uuid.uuid4(), agent_id=uuid.uuid4(), check_type=check_type,
                        deadline=datetime.now(UTC) + timedelta(minutes=1)) for _ in range(n)]


async def open_check(store: ResultsStore, tasks: list[PlannedTask]) -> uuid.UUID:
    check_id = uuid.uuid4()
    await store.open_check(check_id=check_id, target="127.0.0.1:9", check_types=["tcp"],
                           request={"target": "127.0.0.1:9", "checks": ["tcp"], "timeout_ms": 900},
                           tasks=tasks, deadline=datetime.now(UTC) + timedelta(minutes=1), client_ip="10.0.0.1")
    return check_id


def result(task: PlannedTask, *, success: bool = True, data: dict | None = None, check_type: str = "",
           check_id: uuid.UUID | None = None, agent_id: uuid.UUID | None = None) -> IncomingResult:
    return IncomingResult(
        agent_id=agent_id or task.agent_id, task_id=task.task_id, success=success,
        data={"tcp": {"address": "127.0.0.1", "port": 9, "connect_ms": 0.081}} if data is None else data,
        error="" if success else "refused", error_code="" if success else "refused", duration_ms=0.12,
        started_at=datetime.now(UTC) - timedelta(milliseconds=5), check_type=check_type, check_id=check_id)


def stored_view(result) -> tuple:
    return (result.success, result.data, result.error or None, result.error_code, result.late, result.check_type,
            round(result.duration_ms, 6))


async def test_every_kind_of_result_is_stored_as_the_changes_tell_it(store):
    """Fit, failed, of another check type (quarantined by the store), quarantined by the service
    already, late (its task timed out), a resend, another agent's and an unknown task: one batch."""
    tasks = planned(7)
    check_id = await open_check(store, tasks)
    other_check_tasks = planned(1)
    other_check = await open_check(store, other_check_tasks)
    await store.time_out({tasks[4].task_id: "agent_offline"}, datetime.now(UTC))
    first = await store.record_results([result(tasks[5])])
    assert first.stored == [str(tasks[5].task_id)]
    sent_nul = result(tasks[3]).quarantined("text", "error holds a NUL or unencodable character at 3")
    batch = [
        result(tasks[0]),
        result(tasks[1], success=False),
        result(tasks[2], data={"http": {"status_code": 200}}),  # an http result for a tcp task
        sent_nul,
        result(tasks[4]),  # late: its task timed out
        result(tasks[5]),  # a resend
        result(tasks[6], agent_id=uuid.uuid4()),  # not this agent's task
        result(planned(1)[0]),  # no such task
        result(other_check_tasks[0], data={}, check_type="dns"),  # the agent says dns: quarantined
    ]
    changes = await store.record_results(batch)
    assert sorted(changes.stored) == sorted(str(t.task_id) for t in (tasks[0], tasks[1], tasks[4], tasks[5]))
    assert sorted(changes.quarantined) == sorted(str(t.task_id) for t in (tasks[2], tasks[3], other_check_tasks[0]))
    assert sorted(changes.quarantine_kinds) == ["data_type", "data_type", "text"]
    assert sorted(changes.unknown) == sorted([str(tasks[6].task_id), str(batch[7].task_id)])
    # The other check's only task ended with this write (quarantined: failed, with a result).
    assert changes.finished_checks == {other_check}
    assert changes.checks[other_check].status == "completed"
    # tasks[6] never gets a result: the check stays in progress, 6 of 7 tasks done.
    state = changes.checks[check_id]
    assert (state.status, state.tasks_done, state.tasks_total) == ("in_progress", 6, 7)

    for cid in (check_id, other_check):
        stored = await store.get_check(cid)
        by_task = {t.id: t for t in stored.tasks}
        for task_id, told in changes.checks[cid].tasks.items():
            row = by_task[task_id]
            assert (told.status, told.reason, told.completed_at) == (row.status, row.reason, row.completed_at)
            assert told.result is not None and row.result is not None
            assert stored_view(told.result) == stored_view(row.result), task_id
            assert told.result.created_at == row.result.created_at
    quarantined = (await store.get_check(check_id))
    by_task = {t.id: t for t in quarantined.tasks}
    assert by_task[tasks[2].task_id].result.error == "result quarantined: a http result for a tcp task"
    assert by_task[tasks[2].task_id].result.error_code == QUARANTINED
    assert by_task[tasks[2].task_id].reason == QUARANTINED
    assert by_task[tasks[2].task_id].result.data == {}
    assert by_task[tasks[4].task_id].status == "timed_out" and by_task[tasks[4].task_id].result.late
    assert by_task[tasks[6].task_id].result is None
    other = (await store.get_check(other_check)).tasks[0]
    assert other.result.error == "result quarantined: a dns result for a tcp task" and other.status == "failed"


@pytest.mark.parametrize("hint", ["right", "wrong", "none"])
async def test_the_done_snapshot_whatever_check_the_agents_name(store, hint):
    """The agents' word for a result's check only narrows the read of the small checks a write ends
    (Postgres): named right or not at all, the done event comes with the write; named wrong, the
    check still ends and its done event is read back afterwards (no snapshot)."""
    tasks = planned(2)
    check_id = await open_check(store, tasks)
    named = {"right": check_id, "wrong": uuid.uuid4(), "none": None}[hint]
    changes = await store.record_results([result(t, check_id=named) for t in tasks])
    assert changes.finished_checks == {check_id}
    read = check_view(await store.get_check(check_id))
    assert read.status == "completed" and read.tasks_done == 2
    if store.postgres and hint != "wrong":
        assert check_view(changes.done[check_id]).SerializeToString(deterministic=True) == \
            read.SerializeToString(deterministic=True)
    else:
        assert changes.done == {}


async def test_concurrent_writes_of_the_same_checks_store_each_result_once(store):
    """Two writes of the same checks at once (the scheduler sends a held batch beside the busy one):
    the second waits for the first's locks and then sees its results, so resends in it are not
    stored twice and the counts end each check exactly once."""
    import asyncio

    checks = [planned(20) for _ in range(4)]
    ids = [await open_check(store, tasks) for tasks in checks]
    everything = [result(t) for tasks in checks for t in tasks]
    first, second = everything[:50], everything[40:]  # 10 results in both
    a, b = await asyncio.gather(store.record_results(first), store.record_results(second))
    assert len(a.stored) + len(b.stored) == 90  # the 10 in both: stored by one, acknowledged by both
    assert a.finished_checks | b.finished_checks == set(ids)
    assert not a.finished_checks & b.finished_checks
    for cid in ids:
        read = check_view(await store.get_check(cid))
        assert read.status == "completed" and read.tasks_done == 20 and len(read.results) == 20


def test_the_rows_parameter_is_json_of_what_the_agents_sent():
    """_RECORD_SQL's rows are formatted by hand around json-encoded strings: any text comes through."""
    import json

    from hostcheck.services.results.store import _record_rows

    odd = 'quote " backslash \\ newline \n tab \t unicode é ☃ \u2028 control \x01'
    task = planned(1)[0]
    sent = IncomingResult(agent_id=task.agent_id, task_id=task.task_id, success=False, data={"tcp": {"x": odd}},
                          error=odd, error_code=odd[:20], duration_ms=3, started_at=None, check_type=odd[:10],
                          quarantine="text")
    plain = IncomingResult(agent_id=task.agent_id, task_id=task.task_id, success=True, data={}, error="",
                           error_code="", duration_ms=0.125, started_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC))
    assert json.loads(_record_rows([sent, plain])) == [
        {"task_id": str(task.task_id), "agent": str(task.agent_id), "success": False, "error": odd,
         "code": odd[:20], "duration_ms": 3.0, "started": None, "sent_type": "tcp", "claimed": odd[:10],
         "quarantined": True, "data": {"tcp": {"x": odd}}},
        {"task_id": str(task.task_id), "agent": str(task.agent_id), "success": True, "error": None, "code": "",
         "duration_ms": 0.125, "started": "2026-01-02T03:04:05.000006+00:00", "sent_type": "", "claimed": "",
         "quarantined": False, "data": {}}]
