"""Monitors evaluated in batches (services/results/monitoreval.py), on both databases: one
transaction for the runs of many monitors, a monitor far behind (more runs than one transaction
takes) and the monitors after it finished in later rounds, finished checks queued by
checks_finished_soon evaluated together, the uptime rollup counted once per run."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from hostcheck.services.results import monitoreval
from hostcheck.services.results.monitoreval import MonitorEvaluator
from hostcheck.services.results.monitormodels import MonitorUptimeRow
from tests.monitordb import (  # noqa: F401 - fixtures
    migrated_postgres_fixture,
    migrated_sqlite_fixture,
    sessions_fixture,
)
from tests.test_monitor_eval import Lab


async def test_many_monitors_and_a_long_backlog_in_few_transactions(sessions, monkeypatch):
    monkeypatch.setattr(monitoreval, "RUNS_PER_EVALUATION", 2)
    lab = Lab(sessions)
    monitors = [await lab.monitor(for_runs=2) for _ in range(3)]
    checks = [await lab.run(m, seq, failing) for m in monitors for seq, failing in enumerate((0, 3, 3, 0, 3), 1)]
    evaluator = MonitorEvaluator(sessions)
    done = await evaluator.evaluate_many(monitors)
    # 5 runs each, 2 a monitor a transaction: 3 rounds; every run judged once, in order.
    assert sum(len(e.runs) for e in done) == 15
    for monitor_id in monitors:
        monitor, runs, events = await lab.read(monitor_id)
        assert [r.verdict for r in runs] == ["up", "failing", "failing", "up", "failing"]
        assert [r.state_after for r in runs] == ["up", "degraded", "down", "up", "degraded"]
        assert [(e.from_state, e.to_state) for e in events] == [
            ("pending", "up"), ("up", "degraded"), ("degraded", "down"), ("down", "up"), ("up", "degraded")]
        assert (monitor.state, monitor.failing_runs, monitor.last_evaluated_seq) == ("degraded", 1, 5)
    async with sessions() as session:
        counted = await session.scalar(select(func.sum(MonitorUptimeRow.up + MonitorUptimeRow.failing)))
    assert counted == 15
    # Nothing left: a second evaluation (or a notification of the same checks) changes nothing.
    await evaluator.on_checks_finished(checks)
    assert await evaluator.sweep_once() == 0


async def test_checks_finished_meanwhile_are_evaluated_together(sessions):
    lab = Lab(sessions)
    monitors = [await lab.monitor() for _ in range(6)]
    checks = [await lab.run(m, 1, 0) for m in monitors]
    evaluator = MonitorEvaluator(sessions)
    batches: list[int] = []
    evaluate_many = evaluator.evaluate_many

    async def counted(monitor_ids, **kwargs):
        batches.append(len(monitor_ids))
        return await evaluate_many(monitor_ids, **kwargs)

    evaluator.evaluate_many = counted  # type: ignore[method-assign]
    for check_id in checks:  # six writes, each finishing one check
        evaluator.checks_finished_soon([check_id])
    while evaluator._draining is not None:
        await asyncio.wait([evaluator._draining], timeout=10)
    assert batches == [6]
    for monitor_id in monitors:
        monitor, runs, _ = await lab.read(monitor_id)
        assert (monitor.state, runs[0].evaluated) == ("up", True)

