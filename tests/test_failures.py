"""Failure handling in-process: an agent gone before the deadline, and a live-state outage."""

from __future__ import annotations

import asyncio

import pytest

from hostcheck.v1 import http_pb2, results_pb2, scheduler_pb2
from tests.helpers import assert_eventually


@pytest.mark.system_config(results_overrides={"offline_after_s": 1.0})
async def test_tasks_of_an_agent_offline_for_the_window_end_before_their_deadline(system, tmp_path, http_target):
    agent = await system.start_agent(tmp_path, "vanishing")
    created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target="127.0.0.1", checks=["http"], timeout_ms=60_000,
        http=http_pb2.HttpOptions(port=http_target.port, path="/hang")))
    await assert_eventually(lambda: http_target.hits.get("hang"), timeout=10, message="task started")
    # The agent disappears without a word (its process died): its stream just ends.
    _, task = next((a, t) for a, t in system.agents if a is agent)
    task.cancel()
    for running in list(agent.running.values()):
        running.cancel()

    async def ended():
        check = (await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=created.check_id))).check
        return check if check.status in ("completed", "failed") else None
    check = await assert_eventually(ended, timeout=15, message="task ended long before its 60 s deadline")
    (t,) = check.tasks
    assert t.status == "timed_out"
    assert "vanishing offline" in t.reason, t.reason
    system.agents = [(a, tk) for a, tk in system.agents if a is not agent]
    await asyncio.gather(task, return_exceptions=True)
