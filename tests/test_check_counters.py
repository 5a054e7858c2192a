"""The task counts on each check row (checks.tasks_total / tasks_open / tasks_produced, migration 0008),
on both databases: kept right by every writer of tasks, and backfilled by the migration.

A seeded random walk over the store's writers (open_check on both of its paths, the monitors' batched
run opener, record_results with resends, late results, quarantines, unknown tasks, other agents' tasks
and batches the database refuses as a whole, mark_running, time_out, delete_check, a task changed by
hand), checking after every step that each check's counts are its tasks' COUNT(*) by status, and that
a check is still in progress exactly while it has an open task.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from hostcheck.services.results.models import CheckRow, TaskRow
from hostcheck.services.results.runopener import RunOpener
from hostcheck.services.results.store import IncomingResult, PlannedTask, ResultsStore
from tests.test_migrations import alembic, connected, database_url, run  # noqa: F401 - `database_url`: the fixture
from tests.test_monitor_runopener import claimed_runs, run_check
from tests.test_monitors_api import store  # noqa: F401 - the fixture (a MonitorStore on each database)

OPEN, PRODUCED = ("pending", "running"), ("completed", "failed")


async def counted(results: ResultsStore) -> dict[uuid.UUID, tuple[str, tuple[int, int, int], tuple[int, int, int]]]:
    """check id -> (status, the counts on its row, its tasks counted)."""
    tasks = sa.alias(TaskRow.__table__, "t")
    count = (sa.select(sa.func.count()).select_from(tasks).where(tasks.c.check_id == CheckRow.id))
    async with results.sessions() as session:
        rows = (await session.execute(sa.select(
            CheckRow.id, CheckRow.status, CheckRow.tasks_total, CheckRow.tasks_open, CheckRow.tasks_produced,
            count.scalar_subquery(), count.where(tasks.c.status.in_(OPEN)).scalar_subquery(),
            count.where(tasks.c.status.in_(PRODUCED)).scalar_subquery()))).all()
    return {r[0]: (r[1], (r[2], r[3], r[4]), (r[5], r[6], r[7])) for r in rows}


async def assert_counted(results: ResultsStore, step: str, by_hand: set[uuid.UUID] = frozenset()) -> dict:
    """The counts on each row are its tasks'; a check (not changed by hand) is in progress while a task is open."""
    checks = await counted(results)
    for check_id, (status, on_row, real) in checks.items():
        assert on_row == real, f"{step}: check {check_id} counts {on_row}, its tasks {real}"
        total, still_open, _ = real
        if total and check_id not in by_hand:
            assert (status == "in_progress") == (still_open > 0), f"{step}: check {check_id} {status} with {real}"
    return checks


def result(task_id: uuid.UUID, agent_id: uuid.UUID, *, success: bool = True, data: dict | None = None
           ) -> IncomingResult:
    return IncomingResult(agent_id=agent_id, task_id=task_id, success=success,
                          data={"tcp": {"address": "127.0.0.1"}} if data is None else data, error="",
                          error_code="" if success else "refused", duration_ms=1.0, started_at=None)


@pytest.mark.parametrize("seed", [1, 2])
async def test_counts_stay_the_tasks_count_through_every_writer(store, seed):  # noqa: F811
    rng = random.Random(seed)
    results = ResultsStore(store.sessions)
    opener = RunOpener(results)
    runs = await claimed_runs(store, 6)
    tasks: dict[uuid.UUID, uuid.UUID] = {}  # task id -> its agent
    agents = [uuid.uuid4() for _ in range(4)]
    by_hand: set[uuid.UUID] = set()
    checks = await assert_counted(results, "start")
    for step in range(60):
        op = rng.choice(["open", "open", "record", "record", "record", "running", "time_out", "runs", "delete",
                         "refused", "by_hand"])
        if op == "open" or not tasks:
            op = "open"
            planned = [PlannedTask(task_id=uuid.uuid4(), agent_id=rng.choice(agents), check_type="tcp",
                                   deadline=datetime.now(UTC) + timedelta(minutes=1)) for _ in range(rng.randint(0, 5))]
            await results.open_check(check_id=uuid.uuid4(), target="example.com", check_types=["tcp"], request={},
                                     tasks=planned, deadline=datetime.now(UTC) + timedelta(minutes=1), client_ip="")
            tasks.update((t.task_id, t.agent_id) for t in planned)
        elif op == "runs" and runs:
            # The batched opener, and open_check of a monitor's run (its other path) for one of them.
            batch, runs = runs[:2], runs[2:]
            made = [run_check(r, agents=rng.randint(1, 3)) for r in batch]
            opened, alone = await opener._write([(made[0], asyncio.get_running_loop().create_future())])
            assert len(opened) == 1 and not alone
            m = made[1]
            await results.open_check(check_id=m.check_id, target=m.target, check_types=m.check_types,
                                     request=m.request, tasks=m.tasks, deadline=m.deadline, client_ip="",
                                     monitor_id=m.monitor_id, monitor_run=m.monitor_run)
            tasks.update((t.task_id, t.agent_id) for m in made for t in m.tasks)
        elif op in ("record", "refused"):
            chosen = rng.sample(sorted(tasks), min(len(tasks), rng.randint(1, 8)))
            batch = []
            for task_id in chosen:
                kind = rng.random()
                if kind < 0.1:
                    batch.append(result(uuid.uuid4(), tasks[task_id]))  # unknown task
                elif kind < 0.2:
                    batch.append(result(task_id, uuid.uuid4()))  # another agent's task
                elif kind < 0.3:
                    batch.append(result(task_id, tasks[task_id], data={"http": {}}))  # quarantined: wrong type
                else:
                    batch.append(result(task_id, tasks[task_id], success=rng.random() < 0.7))
                if rng.random() < 0.2:
                    batch.append(batch[-1])  # sent twice in one batch
            if op == "refused":
                # A NUL in the data: Postgres refuses the batch as a whole, then stores each on its own.
                batch.append(result(rng.choice(chosen), uuid.uuid4(), data={"tcp": {"address": "a\u0000b"}}))
                batch.append(result(chosen[0], tasks[chosen[0]], data={"tcp": {"address": "a\u0000b"}}))
            await results.record_results(batch)
        elif op == "running":
            chosen = rng.sample(sorted(tasks), min(len(tasks), rng.randint(1, 6)))
            await results.mark_running({t: (tasks[t], datetime.now(UTC)) for t in chosen})
        elif op == "time_out":
            chosen = rng.sample(sorted(tasks), min(len(tasks), rng.randint(1, 6)))
            await results.time_out({t: "no result by the deadline" for t in chosen}, datetime.now(UTC))
        elif op == "delete" and checks:
            gone = rng.choice(sorted(checks))
            await results.delete_check(gone)
        elif op == "by_hand":
            # Whatever writes a task (a fix by hand, the previous release's code) is counted too.
            task_id = rng.choice(sorted(tasks))
            async with results.sessions() as session, session.begin():
                check_id = (await session.execute(sa.update(TaskRow).where(TaskRow.id == task_id).values(
                    status=rng.choice(["pending", "running", "completed", "failed", "timed_out"]))
                    .returning(TaskRow.check_id))).scalar_one_or_none()
            if check_id is not None:
                by_hand.add(check_id)
        checks = await assert_counted(results, f"step {step} ({op})", by_hand)


async def test_a_check_ends_with_its_last_task_from_the_counts(store):  # noqa: F811
    results = ResultsStore(store.sessions)
    agent = uuid.uuid4()
    planned = [PlannedTask(task_id=uuid.uuid4(), agent_id=agent, check_type="tcp",
                           deadline=datetime.now(UTC) + timedelta(minutes=1)) for _ in range(3)]
    check_id = uuid.uuid4()
    await results.open_check(check_id=check_id, target="example.com", check_types=["tcp"], request={},
                             tasks=planned, deadline=datetime.now(UTC) + timedelta(minutes=1), client_ip="")
    changes = await results.record_results([result(planned[0].task_id, agent)])
    state = changes.checks[check_id]
    assert (state.status, state.tasks_done, state.tasks_total) == ("in_progress", 1, 3)
    changes = await results.time_out({planned[1].task_id: "late"}, datetime.now(UTC))
    state = changes.checks[check_id]
    assert (state.status, state.tasks_done, state.tasks_total) == ("in_progress", 2, 3)
    changes = await results.mark_running({planned[2].task_id: (agent, datetime.now(UTC))})
    assert (changes.checks[check_id].tasks_done, changes.checks[check_id].tasks_total) == (2, 3)
    # The late result of the timed-out task changes no count; the last one ends the check.
    changes = await results.record_results([result(planned[1].task_id, agent),
                                            result(planned[2].task_id, agent, success=False)])
    state = changes.checks[check_id]
    assert (state.status, state.tasks_done, state.tasks_total) == ("completed", 3, 3)
    assert check_id in changes.finished_checks
    assert (await counted(results))[check_id] == ("completed", (3, 0, 2), (3, 0, 2))


# ---- the migration: counts backfilled on a database with data ---------------------------------------

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def insert_check_with(conn, statuses: list[str]) -> uuid.UUID:
    check_id = uuid.uuid4()
    run(conn, "INSERT INTO checks (id, target, check_types, request, status, created_at, deadline_at, client_ip) "
              "VALUES (:id, 'example.com', '[\"tcp\"]', '{}', 'in_progress', :now, :now, '')", id=check_id, now=NOW)
    for status in statuses:
        run(conn, "INSERT INTO check_tasks (id, check_id, agent_id, check_type, status, reason, created_at, "
                  "deadline_at) VALUES (:id, :check, :agent, 'tcp', :status, '', :now, :now)",
            id=uuid.uuid4(), check=check_id, agent=uuid.uuid4(), status=status, now=NOW)
    return check_id


def counts_of(url: str) -> dict[uuid.UUID, tuple[int, int, int]]:
    with connected(url) as conn:
        rows = run(conn, "SELECT id, tasks_total, tasks_open, tasks_produced FROM checks").all()
    return {uuid.UUID(str(r[0])): (r[1], r[2], r[3]) for r in rows}


def test_0008_backfills_the_counts_and_triggers_keep_them(database_url):  # noqa: F811
    url = database_url
    alembic(url, "upgrade", "0007")
    shapes = {"empty": [], "open": ["pending", "running", "completed"], "mixed": ["completed", "failed", "timed_out"],
              "timed_out": ["timed_out", "timed_out"]}
    with connected(url) as conn:
        made = {name: insert_check_with(conn, statuses) for name, statuses in shapes.items()}
    alembic(url, "upgrade", "0008")
    expected = {"empty": (0, 0, 0), "open": (3, 2, 1), "mixed": (3, 0, 2), "timed_out": (2, 0, 0)}
    assert counts_of(url) == {made[name]: counts for name, counts in expected.items()}

    # Rows written by plain SQL from here on (as the previous release would) are counted too.
    with connected(url) as conn:
        added = insert_check_with(conn, ["pending", "pending"])
        run(conn, "UPDATE check_tasks SET status = 'completed' WHERE check_id = :id", id=made["open"])
        run(conn, "DELETE FROM check_tasks WHERE check_id = :id AND status = 'timed_out'", id=made["mixed"])
    assert counts_of(url)[added] == (2, 2, 0)
    assert counts_of(url)[made["open"]] == (3, 0, 3)
    assert counts_of(url)[made["mixed"]] == (2, 0, 2)

    alembic(url, "downgrade", "0007")
    with connected(url) as conn:
        assert "tasks_total" not in {c["name"] for c in sa.inspect(conn).get_columns("checks")}
        insert_check_with(conn, ["pending"])  # no trigger left behind
    alembic(url, "upgrade", "0008")  # and up again: backfilled again
    assert counts_of(url)[added] == (2, 2, 0)
    assert len(counts_of(url)) == 6
