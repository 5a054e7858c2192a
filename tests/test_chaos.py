"""Surviving failure, with real processes: a scheduler replica killed mid-check, Redis restarted,
PostgreSQL stopped for 10 s, and the rate limit shared by two replicas."""

from __future__ import annotations

import asyncio
import contextlib
import time

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from hostcheck.agent.client import Agent
from hostcheck.core.config import AgentConfig
from hostcheck.v1 import (
    checks_pb2,
    http_pb2,
    registry_pb2,
    registry_pb2_grpc,
    results_pb2,
    results_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)
from tests.conftest import REDIS_URL, fresh_postgres_db
from tests.helpers import assert_eventually
from tests.private_servers import PrivatePostgres, PrivateRedis
from tests.procs import REGISTRATION_TOKEN, ProcSystem

FAST_LIVENESS = {"HOSTCHECK_HEARTBEAT_INTERVAL_S": "1", "HOSTCHECK_OFFLINE_AFTER_S": "3"}


class Agents:
    """Agents in this process (real gRPC streams) pointed at the system's schedulers."""

    def __init__(self, system: ProcSystem, tmp_path, schedulers: list[str]) -> None:
        self.system = system
        self.tmp_path = tmp_path
        self.addrs = ",".join(system.addr(s) for s in schedulers)
        self.agents: list[tuple[Agent, asyncio.Task]] = []

    async def start(self, n: int) -> list[Agent]:
        for i in range(n):
            agent = Agent(AgentConfig(
                scheduler_addr=self.addrs, registry_addr=self.system.addr("registry"),
                registration_token=REGISTRATION_TOKEN, state_file=str(self.tmp_path / f"agent-{i}.json"),
                name=f"agent-{i:02d}", allow_targets=("127.0.0.0/8",), result_flush_ms=5))
            self.agents.append((agent, asyncio.create_task(agent.run())))
        await assert_eventually(lambda: all(a.ready.is_set() for a, _ in self.agents), timeout=30,
                                message=f"{n} agents connected")
        return [a for a, _ in self.agents]

    async def stop(self) -> None:
        for agent, task in self.agents:
            await agent.stop(drain_timeout_s=0.2)
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 5)


@pytest.fixture
async def private_stores(tmp_path):
    pg, rd = PrivatePostgres(tmp_path), PrivateRedis(tmp_path)
    await pg.start()
    await rd.start()
    yield pg, rd
    rd.stop()
    pg.remove()


@pytest.fixture
async def chaos(tmp_path, private_stores, request):
    pg, rd = private_stores
    system = ProcSystem(pg.url, rd.url, "hc:", tmp_path, extra_env={"scheduler": FAST_LIVENESS})
    agents = None
    try:
        await system.start()
        agents = Agents(system, tmp_path, ["scheduler"])
        yield system, agents, pg, rd
    finally:
        if agents is not None:
            await agents.stop()
        system.stop()
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(system.logs())


def stubs(addr: str):
    channel = grpc.aio.insecure_channel(addr)
    return channel, scheduler_pb2_grpc.SchedulerServiceStub(channel)


async def get_check(system: ProcSystem, check_id: str) -> checks_pb2.Check:
    async with grpc.aio.insecure_channel(system.addr("results")) as ch:
        return (await results_pb2_grpc.ResultsServiceStub(ch).GetCheck(
            results_pb2.GetCheckRequest(check_id=check_id), timeout=5)).check


async def wait_terminal(system: ProcSystem, check_id: str, timeout: float = 30) -> checks_pb2.Check:
    async def terminal():
        try:
            check = await get_check(system, check_id)
        except grpc.aio.AioRpcError:
            return None
        return check if check.status in ("completed", "failed") else None
    return await assert_eventually(terminal, timeout=timeout, interval=0.1, message=f"check {check_id} terminal")


def stored_results(database_url: str, check_id: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        return [str(r[0]) for r in conn.execute(
            "SELECT task_id FROM check_results WHERE check_id = %s", (check_id,)).fetchall()]


async def test_replica_killed_mid_check_loses_nothing(chaos, tmp_path, http_target):
    system, _, _, _ = chaos
    await system.start_service("scheduler2")
    agents_ = Agents(system, tmp_path, ["scheduler", "scheduler2"])
    try:
        agents = await agents_.start(20)
        held = {a.scheduler_id for a in agents}
        assert len(held) == 2, "agents spread over both replicas"
        victim = victim_name = next(a.scheduler_id for a in agents)  # replicas are named by their id here
        survivor_name = "scheduler2" if victim_name == "scheduler" else "scheduler"
        on_victim = [a for a in agents if a.scheduler_id == victim]

        channel, create = stubs(system.addr(survivor_name))
        async with channel:
            created = await create.CreateCheck(scheduler_pb2.CreateCheckRequest(
                target="127.0.0.1", checks=["http"], timeout_ms=20_000,
                agents=checks_pb2.AgentSelector(limit=20),
                http=http_pb2.HttpOptions(port=http_target.port, path="/slow/1500")))
        assert created.check.tasks_total == 20
        await assert_eventually(lambda: http_target.hits.get("slow", 0) >= 20, timeout=15,
                                message="every agent started its task (routed through Redis to both replicas)")
        killed_at = time.monotonic()
        system.procs[victim_name].kill9()
        await assert_eventually(lambda: all(a.ready.is_set() and a.scheduler_id != victim for a in on_victim),
                                timeout=20, interval=0.01, message="agents of the killed replica moved")
        reconnect_s = time.monotonic() - killed_at

        check = await wait_terminal(system, created.check_id)
        assert check.status == "completed"
        assert sorted({t.status for t in check.tasks}) == ["completed"], [(t.agent_name, t.status, t.reason)
                                                                          for t in check.tasks]
        stored = stored_results(system.database_url, created.check_id)
        assert len(stored) == 20 and len(set(stored)) == 20
        print(f"\n{len(on_victim)} agents reconnected to the surviving replica {reconnect_s:.2f} s after kill -9")
    finally:
        await agents_.stop()


def _code(err: grpc.aio.AioRpcError) -> grpc.StatusCode:
    return err.code()


async def create_or_error(addr: str, request) -> grpc.aio.AioRpcError | scheduler_pb2.CreateCheckResponse:
    channel, create = stubs(addr)
    async with channel:
        try:
            return await create.CreateCheck(request, timeout=10)
        except grpc.aio.AioRpcError as err:
            return err


async def test_redis_restart(chaos, http_target, tcp_target):
    system, agents_, _, redis_ = chaos
    await agents_.start(2)
    slow = await create_or_error(system.addr("scheduler"), scheduler_pb2.CreateCheckRequest(
        target="127.0.0.1", checks=["http"], http=http_pb2.HttpOptions(port=http_target.port, path="/slow/2000")))
    assert isinstance(slow, scheduler_pb2.CreateCheckResponse), slow
    await assert_eventually(lambda: http_target.hits.get("slow", 0) >= 2, timeout=10, message="tasks running")

    redis_.stop()
    quick = scheduler_pb2.CreateCheckRequest(target=f"127.0.0.1:{tcp_target}", checks=["tcp"])
    err = await create_or_error(system.addr("scheduler"), quick)
    assert isinstance(err, grpc.aio.AioRpcError) and err.code() == grpc.StatusCode.UNAVAILABLE, err
    assert "Redis" in err.details()

    # The check in flight finishes while Redis is down: results are stored (PostgreSQL is up).
    check = await wait_terminal(system, slow.check_id)
    assert check.status == "completed" and len(check.results) == 2

    await redis_.start()

    async def both_online():
        async with grpc.aio.insecure_channel(system.addr("registry")) as ch:
            reply = await registry_pb2_grpc.RegistryServiceStub(ch).ListAgents(
                registry_pb2.ListAgentsRequest(status="online"), timeout=5)
        return len(reply.agents) == 2
    # Presence comes back with the agents' next heartbeats (1 s here).
    await assert_eventually(both_online, timeout=20, interval=0.2, message="agents online again after Redis restart")
    created = await create_or_error(system.addr("scheduler"), quick)
    assert isinstance(created, scheduler_pb2.CreateCheckResponse), created
    check = await wait_terminal(system, created.check_id)
    assert check.status == "completed" and len(check.results) == 2
    assert len(stored_results(system.database_url, slow.check_id)) == 2


async def test_postgres_down_for_10_s(chaos, http_target, tcp_target):
    system, agents_, pg, _ = chaos
    await agents_.start(2)
    created = await create_or_error(system.addr("scheduler"), scheduler_pb2.CreateCheckRequest(
        target="127.0.0.1", checks=["http"], timeout_ms=30_000,
        http=http_pb2.HttpOptions(port=http_target.port, path="/slow/1000")))
    assert isinstance(created, scheduler_pb2.CreateCheckResponse), created
    await assert_eventually(lambda: http_target.hits.get("slow", 0) >= 2, timeout=10, message="tasks running")

    pg.stop()
    down_until = time.monotonic() + 10
    quick = scheduler_pb2.CreateCheckRequest(target=f"127.0.0.1:{tcp_target}", checks=["tcp"])
    seen = 0
    while time.monotonic() < down_until:
        # Callers get a clear UNAVAILABLE the whole time, never INTERNAL or a hang.
        err = await create_or_error(system.addr("scheduler"), quick)
        assert isinstance(err, grpc.aio.AioRpcError) and err.code() == grpc.StatusCode.UNAVAILABLE, err
        with pytest.raises(grpc.aio.AioRpcError) as got:
            await get_check(system, created.check_id)
        assert got.value.code() == grpc.StatusCode.UNAVAILABLE and "database" in got.value.details()
        seen += 1
        await asyncio.sleep(0.5)  # pacing the probe calls during the 10 s outage, not synchronisation
    assert seen >= 5
    await pg.start()

    # The results produced during the outage were held and are stored once.
    check = await wait_terminal(system, created.check_id)
    assert check.status == "completed"
    assert sorted(t.status for t in check.tasks) == ["completed", "completed"]
    stored = stored_results(system.database_url, created.check_id)
    assert len(stored) == 2 and len(set(stored)) == 2
    after = await create_or_error(system.addr("scheduler"), quick)
    assert isinstance(after, scheduler_pb2.CreateCheckResponse), after


async def test_rate_limit_is_shared_by_replicas(tmp_path, live_prefix, tcp_target):
    with fresh_postgres_db() as url:
        limited = {"HOSTCHECK_RATE_LIMIT": "5", "HOSTCHECK_RATE_LIMIT_WINDOW_S": "3600", **FAST_LIVENESS}
        system = ProcSystem(url, REDIS_URL, live_prefix, tmp_path, extra_env={"scheduler": limited})
        agents_ = None
        try:
            await system.start()
            await system.start_service("scheduler2")
            agents_ = Agents(system, tmp_path, ["scheduler"])
            await agents_.start(1)
            request = scheduler_pb2.CreateCheckRequest(target=f"127.0.0.1:{tcp_target}", checks=["tcp"])
            replies = []
            for i in range(7):
                replies.append(await create_or_error(system.addr("scheduler" if i % 2 else "scheduler2"), request))
            ok = [r for r in replies if isinstance(r, scheduler_pb2.CreateCheckResponse)]
            refused = [r for r in replies if isinstance(r, grpc.aio.AioRpcError)]
            assert len(ok) == 5 and len(refused) == 2
            for err in refused:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                status = rpc_status.from_call(err)
                retry = error_details_pb2.RetryInfo()
                assert any(d.Unpack(retry) for d in status.details if d.Is(retry.DESCRIPTOR))
                assert 0 < retry.retry_delay.seconds <= 3600
        finally:
            if agents_ is not None:
                await agents_.stop()
            system.stop()


async def test_replica_sigterm_drains_agents_to_the_other(chaos, tmp_path, http_target):
    system, _, _, _ = chaos
    await system.start_service("scheduler2")
    agents_ = Agents(system, tmp_path, ["scheduler", "scheduler2"])
    try:
        agents = await agents_.start(6)
        created = await create_or_error(system.addr("scheduler2"), scheduler_pb2.CreateCheckRequest(
            target="127.0.0.1", checks=["http"], agents=checks_pb2.AgentSelector(limit=6),
            http=http_pb2.HttpOptions(port=http_target.port, path="/slow/1000")))
        assert isinstance(created, scheduler_pb2.CreateCheckResponse), created
        await assert_eventually(lambda: http_target.hits.get("slow", 0) >= 6, timeout=10, message="tasks running")
        assert system.procs["scheduler"].stop() == 0, "SIGTERM: drained and exited cleanly"
        await assert_eventually(lambda: all(a.ready.is_set() and a.scheduler_id == "scheduler2" for a in agents),
                                timeout=15, message=f"every agent on the remaining replica: {[(a.ready.is_set(), a.scheduler_id, a.state) for a in agents]}")
        check = await wait_terminal(system, created.check_id)
        assert [t.status for t in check.tasks] == ["completed"] * 6
        assert len(set(stored_results(system.database_url, created.check_id))) == 6
    finally:
        await agents_.stop()
