"""The agent's promises about its tasks and its files: SIGTERM drains (running tasks finish, new ones are
refused), deleting a running check cancels its task on the agent, and the state file holding the api
token is 0600."""

from __future__ import annotations

import os
import signal
import stat

import grpc
import pytest

from hostcheck.v1 import http_pb2, registry_pb2, results_pb2, scheduler_pb2
from tests.conftest import ADMIN
from tests.helpers import assert_eventually
from tests.test_processes import Clients


@pytest.fixture
async def clients(procs):
    c = Clients(procs)
    yield c
    await c.close()


async def _finished(clients, check_id: str):
    check = await clients.check(check_id)
    return check if check.status == "completed" else None


async def test_sigterm_finishes_running_tasks_and_takes_no_new_ones(procs, clients, http_target):
    agent = procs.start_agent("drainer", HOSTCHECK_DRAIN_TIMEOUT_S="20")

    async def online() -> bool:
        return len(await clients.online()) == 1
    await assert_eventually(online, timeout=20, message="agent online")
    running = await clients.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target="127.0.0.1", checks=["http"], timeout_ms=20000,
        http=http_pb2.HttpOptions(port=http_target.port, path="/slow/4000")))
    await assert_eventually(lambda: http_target.hits.get("slow"), timeout=10, message="agent started the task")

    os.kill(agent.pid, signal.SIGTERM)
    await assert_eventually(lambda: "draining: finishing 1 running task(s)" in agent.output(), timeout=10,
                            message="agent draining")
    # Still connected while it drains, so the scheduler still sends it work: refused, never run.
    refused = await clients.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target="127.0.0.1", checks=["http"], http=http_pb2.HttpOptions(port=http_target.port, path="/second")))
    check = await assert_eventually(lambda: _finished(clients, refused.check_id), timeout=20,
                                    message="second check ended")
    (task,) = check.tasks
    assert (task.status, task.result.error_code) == ("failed", "agent_draining"), task
    assert "second" not in http_target.hits

    # The task running at SIGTERM finished and was stored; then the agent exited cleanly.
    check = await assert_eventually(lambda: _finished(clients, running.check_id), timeout=20,
                                    message="running check finished")
    (task,) = check.tasks
    assert task.status == "completed" and task.result.success and task.result.data.http.status_code == 200
    assert agent.popen.wait(20) == 0


async def test_deleting_a_running_check_cancels_its_task_on_the_agent(system, tmp_path, http_target):
    agent = await system.start_agent(tmp_path, "busy")
    created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target="127.0.0.1", checks=["http"], timeout_ms=30000,
        http=http_pb2.HttpOptions(port=http_target.port, path="/slow/25000")))
    (task_id,) = [t.task_id for t in created.check.tasks]
    events = []
    stream = system.checks.WatchCheck(results_pb2.WatchCheckRequest(check_id=created.check_id), timeout=20)
    async for event in stream:
        events.append(event.event)
        if event.event == "task" and event.task.status == "running":
            assert task_id in agent.running
            await system.checks.DeleteCheck(results_pb2.DeleteCheckRequest(check_id=created.check_id),
                                            metadata=ADMIN)
        if event.event in ("deleted", "done"):
            break
    assert events[-1] == "deleted" and "done" not in events, events
    # Cancelled on the agent well before its 25 s request would have ended, and no result kept for it.
    await assert_eventually(lambda: task_id not in agent.running, timeout=5, message="task cancelled on the agent")
    assert task_id not in agent.unacked
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=created.check_id))
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_state_file_with_the_api_token_is_0600(pg_system, tmp_path):
    agent = await pg_system.start_agent(tmp_path, "secretive")
    path = tmp_path / "secretive.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert agent.identity.api_token in path.read_text()
    reply = await pg_system.agents_api.GetAgent(registry_pb2.GetAgentRequest(agent_id=agent.identity.agent_id))
    assert reply.agent.name == "secretive"
