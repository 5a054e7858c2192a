"""The results store keeps where each task ran on the task itself: no read of the registry's agents."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from hostcheck.services.results.store import AgentSnapshot, IncomingResult, PlannedTask, ResultsStore
from hostcheck.services.storage import db


@pytest.fixture
def store(migrated_engine):
    return ResultsStore(db.sessionmaker(migrated_engine))


async def open_check(store: ResultsStore, *tasks: PlannedTask) -> uuid.UUID:
    check_id = uuid.uuid4()
    await store.open_check(check_id=check_id, target="example.com", check_types=["tcp"], request={},
                           tasks=list(tasks), deadline=datetime.now(UTC) + timedelta(minutes=1), client_ip="")
    return check_id


def planned(agent_id: uuid.UUID, **agent) -> PlannedTask:
    return PlannedTask(task_id=uuid.uuid4(), agent_id=agent_id, check_type="tcp",
                       deadline=datetime.now(UTC) + timedelta(minutes=1), agent=AgentSnapshot(**agent))


async def test_tasks_keep_the_snapshot_of_their_agent(store):
    # Neither agent is registered anywhere this store can see: it does not need them to be.
    fra, par = uuid.uuid4(), uuid.uuid4()
    check_id = await open_check(
        store, planned(fra, name="fra-1", location="Frankfurt, DE", region="eu-central", country="DE",
                       city="Frankfurt"),
        planned(par, name="p" * 300, country="FRA", city="Paris"))
    row = await store.get_check(check_id)
    got = sorted((t.agent_name, t.location, t.region, t.country, t.city) for t in row.tasks)
    # Longer than its column: cut to the registry's own limits (255 for a name, 2 for a country).
    assert got == [("fra-1", "Frankfurt, DE", "eu-central", "DE", "Frankfurt"), ("p" * 255, "", "", "FR", "Paris")]

    task = next(t for t in row.tasks if t.agent_id == fra)
    changes = await store.record_results([IncomingResult(
        agent_id=fra, task_id=task.id, success=True, data={}, error="", error_code="", duration_ms=1.0,
        started_at=None)])
    assert changes.stored == [str(task.id)]
    written = changes.checks[check_id].tasks[task.id]
    assert (written.agent_name, written.city, written.status) == ("fra-1", "Frankfurt", "completed")


async def test_agent_names_come_from_pending_tasks(store):
    named, unnamed, finished = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    done = planned(finished, name="done-1")
    await open_check(store, planned(named, name="ams-1"), planned(unnamed), done)
    await store.record_results([IncomingResult(
        agent_id=finished, task_id=done.task_id, success=True, data={}, error="", error_code="", duration_ms=1.0,
        started_at=None)])
    # The sweeper names agents of pending tasks; one whose tasks carry no name is named by its id there.
    assert await store.agent_names([named, unnamed, finished]) == {named: "ams-1"}
