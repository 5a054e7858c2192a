"""End to end with every part its own process, on real Postgres and Redis: the normal flow,
an agent killed mid-task, and a stream restart with results still unacknowledged."""

from __future__ import annotations

import grpc
import psycopg
import pytest

from hostcheck.v1 import (
    checks_pb2,
    http_pb2,
    registry_pb2,
    registry_pb2_grpc,
    results_pb2,
    results_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
    tcp_pb2,
)
from tests.helpers import assert_eventually


class Clients:
    def __init__(self, procs) -> None:
        self.channels = [grpc.aio.insecure_channel(procs.addr(n)) for n in ("scheduler", "results", "registry")]
        self.create = scheduler_pb2_grpc.SchedulerServiceStub(self.channels[0])
        self.checks = results_pb2_grpc.ResultsServiceStub(self.channels[1])
        self.agents = registry_pb2_grpc.RegistryServiceStub(self.channels[2])

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()

    async def online(self) -> list:
        reply = await self.agents.ListAgents(registry_pb2.ListAgentsRequest(status="online"))
        return list(reply.agents)

    async def check(self, check_id: str) -> checks_pb2.Check:
        return (await self.checks.GetCheck(results_pb2.GetCheckRequest(check_id=check_id))).check


@pytest.fixture
async def clients(procs):
    c = Clients(procs)
    yield c
    await c.close()


def result_rows(database_url: str, check_id: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT task_id, success FROM check_results WHERE check_id = %s", (check_id,)).fetchall()


async def test_two_agents_tcp_and_http(procs, clients, tcp_target, http_target):
    procs.start_agent("berlin", HOSTCHECK_COUNTRY="DE", HOSTCHECK_CITY="Berlin")
    procs.start_agent("paris", HOSTCHECK_COUNTRY="FR", HOSTCHECK_CITY="Paris")
    await assert_eventually(lambda: _count(clients, 2), timeout=20, message="two agents online")

    created = await clients.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target=f"127.0.0.1:{tcp_target}", checks=["tcp", "http"],
        http=http_pb2.HttpOptions(port=http_target.port)))

    async def completed():
        check = await clients.check(created.check_id)
        return check if check.status == "completed" else None
    check = await assert_eventually(completed, timeout=20, message="check completed")

    assert check.tasks_total == 4 and check.tasks_done == 4
    got = sorted((r.check_type, t.agent_name, t.country, r.success)
                 for t in check.tasks for r in [t.result])
    assert got == [("http", "berlin", "DE", True), ("http", "paris", "FR", True),
                   ("tcp", "berlin", "DE", True), ("tcp", "paris", "FR", True)]
    assert len(result_rows(procs.database_url, created.check_id)) == 4


async def _count(clients, n: int) -> bool:
    return len(await clients.online()) >= n


async def test_agent_killed_mid_task_ends_timed_out_with_reason(procs, clients, http_target):
    agent = procs.start_agent("doomed")
    await assert_eventually(lambda: _count(clients, 1), timeout=20, message="agent online")
    created = await clients.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target="127.0.0.1", checks=["http"], timeout_ms=3000,
        http=http_pb2.HttpOptions(port=http_target.port, path="/hang")))
    await assert_eventually(lambda: http_target.hits.get("hang"), timeout=10, message="agent started the task")
    agent.kill9()

    async def terminal():
        check = await clients.check(created.check_id)
        return check if check.status in ("completed", "failed") else None
    check = await assert_eventually(terminal, timeout=20, message="check terminal")
    assert check.status == "failed"
    (task,) = check.tasks
    assert task.status == "timed_out"
    assert "doomed" in task.reason and "offline" in task.reason, task.reason
    assert not task.HasField("result")


async def test_unacked_results_survive_scheduler_and_results_outage(procs, clients, http_target):
    """The agent keeps results until stored: results down (no ack) and the scheduler killed with the
    results in memory; after both come back the agent resends, and each result is stored once."""
    procs.start_agent("keeper")
    await assert_eventually(lambda: _count(clients, 1), timeout=20, message="agent online")
    created = await clients.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target="127.0.0.1", checks=["http", "tcp"], timeout_ms=20000,
        http=http_pb2.HttpOptions(port=http_target.port, path="/slow/1500"),
        tcp=tcp_pb2.TcpOptions(port=http_target.port)))
    await assert_eventually(lambda: http_target.hits.get("slow"), timeout=10, message="agent started the task")
    procs.procs["results"].kill9()
    # The slow request finishes while results is down: the scheduler holds it, unacknowledged.
    await assert_eventually(lambda: "results service unavailable" in procs.procs["scheduler"].output(),
                            timeout=15, message="scheduler holding results")
    procs.procs["scheduler"].kill9()
    await procs.start_service("scheduler")
    await assert_eventually(lambda: procs.agents["keeper"].output().count("connected to scheduler") >= 2,
                            timeout=20, message="agent reconnected")
    await procs.start_service("results")

    async def completed():
        check = await clients.check(created.check_id)
        return check if check.status == "completed" else None
    check = await assert_eventually(completed, timeout=20, message="check completed after outage")
    assert sorted(t.status for t in check.tasks) == ["completed", "completed"]
    rows = result_rows(procs.database_url, created.check_id)
    assert len(rows) == 2 and len({r[0] for r in rows}) == 2


async def test_agent_restart_keeps_identity_and_no_duplicates(procs, clients, tcp_target):
    agent = procs.start_agent("phoenix")
    await assert_eventually(lambda: _count(clients, 1), timeout=20, message="agent online")
    first = await clients.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target=f"127.0.0.1:{tcp_target}", checks=["tcp"]))
    await assert_eventually(lambda: _done(clients, first.check_id), timeout=20, message="first check done")
    assert agent.stop() == 0  # SIGTERM: drains and exits cleanly
    # The scheduler clears the old stream's presence when it sees the stream end; until then the agent
    # still reads as online, and a check created in that window goes to the closed stream.
    await assert_eventually(lambda: _none_online(clients), timeout=20, message="old stream gone")
    procs.start_agent("phoenix")
    await assert_eventually(lambda: _count(clients, 1), timeout=20, message="agent back online")
    listed = await clients.agents.ListAgents(registry_pb2.ListAgentsRequest())
    assert listed.total == 1, "a restarted agent reuses its identity instead of registering again"
    second = await clients.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target=f"127.0.0.1:{tcp_target}", checks=["tcp"]))
    await assert_eventually(lambda: _done(clients, second.check_id), timeout=20, message="second check done")
    assert len(result_rows(procs.database_url, first.check_id)) == 1
    assert len(result_rows(procs.database_url, second.check_id)) == 1


async def _none_online(clients) -> bool:
    return not await clients.online()


async def _done(clients, check_id: str) -> bool:
    return (await clients.check(check_id)).status == "completed"
