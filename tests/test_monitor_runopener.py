"""Monitor runs' checks opened in batches (services/results/runopener.py), on both databases: runs
opened together go in one transaction and come out exactly as ResultsStore.open_check writes them;
a run opened twice in one batch, one already started, one of a deleted monitor and one with the
wrong check id each get open_check's own answer; a batch the database refuses falls back to one by one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from hostcheck.core.errors import AlreadyExists, InvalidArgument, NotFound
from hostcheck.services.results.models import CheckRow, TaskRow
from hostcheck.services.results.monitormodels import MonitorRunRow
from hostcheck.services.results.runopener import RunCheck, RunOpener
from hostcheck.services.results.store import AgentSnapshot, PlannedTask, ResultsStore
from tests.test_monitors_api import set_next_run, store, values  # noqa: F401 - `store`: the fixture

NOW = datetime.now(UTC)


async def claimed_runs(store, n: int):  # noqa: F811 - the fixture's name
    made = [await store.create(values(name=f"m{i}"), owner=None, per_key=None) for i in range(n)]
    for m in made:
        await set_next_run(store, m.id, datetime.now(UTC) - timedelta(seconds=1))
    runs, _ = await store.claim_due_runs("s", n)
    assert len(runs) == n
    return [c.run for c in runs]


def run_check(run: MonitorRunRow, *, check_id: uuid.UUID | None = None, agents: int = 3) -> RunCheck:
    check_id = check_id or run.check_id
    deadline = datetime.now(UTC) + timedelta(seconds=30)
    return RunCheck(check_id=check_id, target="127.0.0.1:80", check_types=["tcp"], request={"target": "127.0.0.1:80"},
                    tasks=[PlannedTask(task_id=uuid.uuid4(), agent_id=uuid.uuid4(), check_type="tcp", deadline=deadline,
                                       agent=AgentSnapshot(name=f"a{i}", country="NL", city="Amsterdam"))
                           for i in range(agents)],
                    deadline=deadline, client_ip="", created_by_key_id=None, monitor_id=run.monitor_id,
                    monitor_run=run.seq)


async def test_runs_opened_together_go_in_one_batch(store):  # noqa: F811
    results = ResultsStore(store.sessions)
    opener = RunOpener(results)
    runs = await claimed_runs(store, 12)
    batches: list[int] = []
    write, writing, release = opener._write, asyncio.Event(), asyncio.Event()

    async def counted(batch):
        batches.append(len(batch))
        writing.set()
        await release.wait()
        return await write(batch)

    opener._write = counted  # type: ignore[method-assign]
    # Arriving together: one batch.
    together = asyncio.gather(*(opener.open(run_check(r)) for r in runs[:4]))
    await asyncio.wait_for(writing.wait(), 10)
    # While it is being written, eight more arrive: the next batch, written after it.
    later = asyncio.gather(*(opener.open(run_check(r)) for r in runs[4:]))
    await asyncio.sleep(0)
    release.set()
    opened = [*await together, *await later]
    assert batches == [4, 8]
    for run, check in zip(runs, opened, strict=True):
        assert (check.id, check.monitor_id, check.monitor_run, check.status) == (
            run.check_id, run.monitor_id, run.seq, "in_progress")
        assert check.started_run is not None and check.started_run.started_at is not None
        assert [t.agent_name for t in check.tasks] == ["a0", "a1", "a2"]
    async with store.sessions() as session:
        started = (await session.execute(sa.select(MonitorRunRow.seq, MonitorRunRow.started_at))).all()
        checks = (await session.execute(sa.select(CheckRow.id, CheckRow.monitor_id, CheckRow.monitor_run))).all()
        tasks = await session.scalar(sa.select(sa.func.count()).select_from(TaskRow))
    assert all(at is not None for _, at in started) and len(started) == 12
    assert sorted((c, m, s) for c, m, s in checks) == sorted((r.check_id, r.monitor_id, r.seq) for r in runs)
    assert tasks == 36


async def test_what_a_batch_cannot_open_gets_open_checks_own_answer(store):  # noqa: F811
    results = ResultsStore(store.sessions)
    opener = RunOpener(results)
    first, started, twice, wrong, gone = await claimed_runs(store, 5)
    await opener.open(run_check(started))
    await store.delete(gone.monitor_id)
    outcomes = await asyncio.gather(
        opener.open(run_check(first)),  # goes alone, at once; the rest queue behind it
        opener.open(run_check(started)), opener.open(run_check(twice)), opener.open(run_check(twice)),
        opener.open(run_check(wrong, check_id=uuid.uuid4())), opener.open(run_check(gone)), return_exceptions=True)
    assert outcomes[0].id == first.check_id
    assert isinstance(outcomes[1], AlreadyExists)
    assert sorted(type(o).__name__ for o in outcomes[2:4]) == ["AlreadyExists", "CheckSnapshot"]
    assert isinstance(outcomes[4], InvalidArgument) and outcomes[4].violations[0].field == "check_id"
    assert isinstance(outcomes[5], NotFound)


async def test_a_batch_the_database_refuses_is_opened_one_by_one(store):  # noqa: F811
    """When a batch's transaction fails (here: made to), each of its runs is opened alone (by
    open_check) and gets its own answer."""
    results = ResultsStore(store.sessions)
    opener = RunOpener(results)
    ok, started = await claimed_runs(store, 2)
    await results.open_check(**{**vars(run_check(started, agents=0)), "check_id": started.check_id})

    async def refused(batch):
        raise RuntimeError("the database refused the batch")

    opener._write = refused  # type: ignore[method-assign]
    outcomes = await asyncio.gather(opener.open(run_check(ok)), opener.open(run_check(started)),
                                    return_exceptions=True)
    assert outcomes[0].id == ok.check_id and outcomes[0].started_run.started_at is not None
    assert isinstance(outcomes[1], AlreadyExists)
    async with store.sessions() as session:
        checks = (await session.scalars(sa.select(CheckRow.id))).all()
    assert sorted(checks) == sorted([ok.check_id, started.check_id])
