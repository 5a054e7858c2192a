"""What the Kubernetes install relies on in the processes themselves (issue 19).

The manifests are tested in test_manifests.py; these tests run the real code paths that
make the manifests true: /metrics reachable over IPv4 and IPv6 from a `[::]` listen
address, the rate limit keyed on the real client behind trusted proxy hops (through a
real Envoy), and agent streams rebalancing over scheduler replicas by connection age.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import socket
import time
import uuid

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, Counter

from hostcheck.agent.client import RECONNECT_SPREAD_S, Agent
from hostcheck.agent.identity import IdentityError
from hostcheck.core.config import RegistryConfig, SchedulerConfig
from hostcheck.core.metrics import serve_metrics
from hostcheck.core.rpc import channel
from hostcheck.services.grpcserver import LIVENESS_SERVICE
from hostcheck.services.registry import service as registry_service
from hostcheck.services.scheduler import service as scheduler_service
from hostcheck.services.storage import db
from hostcheck.v1 import registry_pb2, scheduler_pb2, scheduler_pb2_grpc
from tests.conftest import REDIS_URL, REGISTRATION_TOKEN, fresh_postgres_db
from tests.gateway.conftest import start_gateway
from tests.helpers import assert_eventually, free_port


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


async def _get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(url)


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this host")
async def test_metrics_of_a_dual_stack_listen_address_answer_on_ipv4_and_ipv6() -> None:
    registry = CollectorRegistry()
    Counter("hostcheck_test_scrapes", "A counter to find in the scrape.", registry=registry).inc()
    port = free_port()
    # What every service pod sets: HOSTCHECK_LISTEN=[::]:PORT, metrics on the same host.
    metrics = await serve_metrics(registry, port, near="[::]:50051")
    try:
        assert metrics.port == port
        for host in ("127.0.0.1", "[::1]"):
            reply = await _get(f"http://{host}:{port}/metrics")
            assert reply.status_code == 200, host
            assert "hostcheck_test_scrapes_total 1.0" in reply.text, host
    finally:
        await metrics.stop()


async def test_metrics_of_an_ipv4_listen_address_stay_on_ipv4() -> None:
    port = free_port()
    metrics = await serve_metrics(CollectorRegistry(), port, near="127.0.0.1:50051")
    try:
        assert (await _get(f"http://127.0.0.1:{port}/metrics")).status_code == 200
        if _has_ipv6_loopback():
            with pytest.raises(httpx.ConnectError):
                await _get(f"http://[::1]:{port}/metrics")
    finally:
        await metrics.stop()


# ---- client IP behind proxies ---------------------------------------------------------------

@pytest.mark.system_config(scheduler_overrides={"rate_limit": 2, "trusted_hops": 1})
async def test_rate_limit_keys_on_the_client_behind_trusted_hops(pg_system, tmp_path, tcp_target) -> None:
    """One load balancer in front of a real Envoy: the client is the entry the balancer appended.

    The balancer is played by the header this test sends: "<whatever the client forged>,
    <the client address the balancer saw>"; Envoy appends the balancer's address (here
    127.0.0.1, the test itself), as it does in the cluster.
    """
    await pg_system.start_agent(tmp_path, "hops-agent")
    gw = await start_gateway(pg_system, tmp_path)
    body = {"target": f"127.0.0.1:{tcp_target}", "checks": ["tcp"]}

    def via_balancer(client: str, forged: str = "") -> dict[str, str]:
        return {"X-Forwarded-For": f"{forged}, {client}" if forged else client}

    try:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as rest:
            # Client A: two checks, each with a different forged entry: still one client.
            for forged in ("203.0.113.1", "203.0.113.2"):
                reply = await rest.post("/api/checks", json=body, headers=via_balancer("198.51.100.7", forged))
                assert reply.status_code == 200, reply.text
            limited = await rest.post("/api/checks", json=body, headers=via_balancer("198.51.100.7", "203.0.113.3"))
            assert limited.status_code == 429
            # Client B behind the same balancer (same peer address for Envoy) has its own bucket:
            # before the fix every client behind a balancer shared one.
            other = await rest.post("/api/checks", json=body, headers=via_balancer("198.51.100.8"))
            assert other.status_code == 200, other.text
            # A client forging a whole chain does not escape its bucket either: the balancer
            # appends the real address after whatever it sent.
            forged_chain = await rest.post("/api/checks", json=body,
                                           headers=via_balancer("198.51.100.7", "198.51.100.9, 198.51.100.10"))
            assert forged_chain.status_code == 429
    finally:
        gw.proc.stop()



# ---- agent streams rebalance over scheduler replicas ----------------------------------------

class ServiceProxy:
    """A Kubernetes ClusterIP Service in miniature: each new TCP connection goes to the next of
    the ready endpoints (round robin, like kube-proxy's IPVS mode), bytes piped both ways.

    The endpoints change as pods come and go; connections already open stay where they are,
    which is why streams only rebalance when something ends them.
    """

    def __init__(self, endpoints: list[int]) -> None:
        self.endpoints = endpoints
        self._next = 0
        self._pipes: set[asyncio.Task] = set()
        self.server: asyncio.Server | None = None

    @property
    def addr(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def start(self) -> ServiceProxy:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = self.endpoints[self._next % len(self.endpoints)]
        self._next += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            writer.close()
            return
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            dst.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


AGENTS = 12
MAX_AGE_S = 2.0


@pytest.mark.system_config(scheduler_overrides={"agent_stream_max_age_s": MAX_AGE_S})
async def test_agent_streams_spread_over_new_replicas_within_the_stream_age(pg_system, tmp_path) -> None:
    """A rollout in miniature: two replicas, one restarts and a third starts; by the streams'
    max age (plus the agents' reconnect spread) every replica holds a share of the agents.

    Before issue 19 nothing ended a stream: the agents of the restarted replica all piled onto
    the survivor and the new replicas got none until something else broke a connection.
    """
    first = pg_system.scheduler
    started: list = []

    async def start_replica():
        replica = await scheduler_service.start(SchedulerConfig(
            listen="127.0.0.1:0", registry_addr=pg_system.registry_addr, results_addr=pg_system.results_addr,
            database_url=pg_system.database_url, live_state_url=pg_system.live_url,
            live_state_prefix=pg_system.prefix, agent_stream_max_age_s=MAX_AGE_S,
            allow_targets=("127.0.0.0/8", "::1/128")))
        started.append(replica)
        return replica

    second = await start_replica()
    proxy = await ServiceProxy([first.port, second.port]).start()
    agents: list[tuple[Agent, asyncio.Task]] = []
    try:
        for i in range(AGENTS):
            config_i = dataclasses.replace(pg_system.agent_config(tmp_path, f"spread-{i}"), scheduler_addr=proxy.addr)
            agent = Agent(config_i)
            agents.append((agent, asyncio.create_task(agent.run(), name=f"spread-{i}")))
        await assert_eventually(lambda: all(a.ready.is_set() for a, _ in agents), timeout=30,
                                message="every agent connected")

        # The first replica restarts: out of the endpoints, then drained and stopped. Its agents
        # go to the survivor (it refuses new streams while draining).
        proxy.endpoints = [second.port]
        await first.stop()
        await assert_eventually(lambda: len(second.sessions) == AGENTS, timeout=20,
                                message="the survivor holds every agent")
        # Its replacement and a scale-up replica join the endpoints.
        replacement, added = await start_replica(), await start_replica()
        proxy.endpoints = [second.port, replacement.port, added.port]
        pg_system.scheduler = replacement  # the fixture stops it
        started.remove(replacement)
        since = time.monotonic()

        def spread() -> tuple[int, ...]:
            # Where each agent was last welcomed: with streams ageing every few seconds some agents
            # are always between two streams, so the replicas' own counts rarely sum up at once.
            where = [agent.scheduler_id for agent, _ in agents]
            counts = tuple(where.count(r.id) for r in (second, replacement, added))
            assert min(counts) >= AGENTS // 3 - 1, counts
            return counts

        # An agent that connected to the survivor just now ages out by MAX_AGE_S, then waits up to
        # RECONNECT_SPREAD_S: every stream has been re-placed by then (measured: 1.6-2.1 s, 6/3/3).
        # The bound leaves room for a loaded machine; without ageing the new replicas get none, ever.
        bound = 3 * (MAX_AGE_S + RECONNECT_SPREAD_S) + 4
        counts = await assert_eventually(spread, timeout=bound, message="agents spread over all three replicas")
        print(f"agents per replica (survivor, replacement, added) after {time.monotonic() - since:.1f} s: {counts}")
    finally:
        for agent, task in agents:
            await agent.stop(drain_timeout_s=0.5)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 5)
        for replica in started:
            await replica.stop()
        await proxy.stop()


# ---- identities that last -------------------------------------------------------------------

async def test_an_unknown_agent_registers_again_once_and_replaces_its_nodes_record(pg_system, tmp_path) -> None:
    """A database restored from a backup: it holds the node's *older* agent, not the one whose
    identity the node kept. The agent registers again by itself (once, with the token from its
    mounted file) and the older record is marked replaced; nobody needs a shell on the node."""
    node = ("hostcheck.io/node=node-a",)
    older = await pg_system.register("node-a", labels={"hostcheck.io/node": "node-a"})
    lost = {"agent_id": str(uuid.uuid4()), "api_token": "registered-after-the-backup"}
    state = tmp_path / "node-a.json"
    state.write_text(json.dumps(lost))
    token_file = tmp_path / "registration-token"
    token_file.write_text(REGISTRATION_TOKEN + "\n")
    config = dataclasses.replace(pg_system.agent_config(tmp_path, "node-a", labels=node), registration_token="",
                                 registration_token_file=str(token_file))
    agent = Agent(config)
    task = asyncio.create_task(agent.run())
    try:
        await assert_eventually(agent.ready.is_set, timeout=20, message="the agent connected again")
        new_id = agent.identity.agent_id
        assert new_id not in (lost["agent_id"], older.agent_id)
        assert json.loads(state.read_text())["agent_id"] == new_id, "the new identity is kept on the node"
        listed = await pg_system.agents_api.ListAgents(registry_pb2.ListAgentsRequest())
        by_id = {a.agent_id: a for a in listed.agents}
        assert set(by_id) == {older.agent_id, new_id}, "registered exactly once"
        assert by_id[older.agent_id].status == "replaced"
        assert by_id[new_id].status == "online" and by_id[new_id].labels["hostcheck.io/node"] == "node-a"
        replaced = await pg_system.agents_api.ListAgents(registry_pb2.ListAgentsRequest(status="replaced"))
        assert [a.agent_id for a in replaced.agents] == [older.agent_id]
    finally:
        await agent.stop(drain_timeout_s=0.5)
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 5)

    # The replaced identity is refused for good, and never registers anew: that was the operator's
    # (or a newer pod's) doing, not a lost database.
    stale = Agent(dataclasses.replace(config, agent_id=older.agent_id, api_token=older.api_token,
                                      state_file=str(tmp_path / "stale.json")))
    task = asyncio.create_task(stale.run())
    try:
        await assert_eventually(lambda: stale.refusals >= 1, timeout=20, message="the replaced agent refused")
        assert not stale.ready.is_set() and stale.identity.agent_id == older.agent_id
        listed = await pg_system.agents_api.ListAgents(registry_pb2.ListAgentsRequest())
        assert listed.total == 2
    finally:
        await stale.stop(drain_timeout_s=0.5)
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 5)


async def test_an_agent_that_cannot_keep_its_identity_does_not_register(pg_system, tmp_path) -> None:
    """A crash-looping pod whose state directory is not writable must not leave an agent per try."""
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the state directory should be")
    config = dataclasses.replace(pg_system.agent_config(tmp_path, "node-b"), state_file=str(blocked / "agent.json"))
    with pytest.raises(IdentityError, match="not registering"):
        await Agent(config).register()
    listed = await pg_system.agents_api.ListAgents(registry_pb2.ListAgentsRequest())
    assert listed.total == 0


# ---- readiness waits for the schema ---------------------------------------------------------

async def test_a_service_is_not_ready_before_its_schema_is_at_head(live_prefix) -> None:
    """Registry with HOSTCHECK_MIGRATE=false (an init container migrates) on an empty database:
    NOT_SERVING, yet alive, until someone migrates; then SERVING without a restart."""
    with fresh_postgres_db() as url:
        registry = await registry_service.start(RegistryConfig(
            listen="127.0.0.1:0", database_url=url, live_state_url=REDIS_URL, live_state_prefix=live_prefix,
            registration_token=REGISTRATION_TOKEN, migrate=False))
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{registry.port}") as ch:
                health = health_pb2_grpc.HealthStub(ch)

                async def status(service: str = "") -> int:
                    return (await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)).status

                assert await status() == health_pb2.HealthCheckResponse.NOT_SERVING
                assert await status("hostcheck.v1.RegistryService") == health_pb2.HealthCheckResponse.NOT_SERVING
                assert await status(LIVENESS_SERVICE) == health_pb2.HealthCheckResponse.SERVING
                await asyncio.to_thread(db.migrate, url)  # what the migrate init container does


                async def serving() -> bool:
                    return await status() == health_pb2.HealthCheckResponse.SERVING
                await assert_eventually(serving, timeout=15, message="serving once the schema is at head")
        finally:
            await registry.stop()


# ---- the scheduler while draining, and internal channels -------------------------------------

async def test_a_draining_scheduler_refuses_new_agent_streams(pg_system, tmp_path) -> None:
    """Between SIGTERM and the endpoint removal reaching kube-proxy, new streams still arrive:
    they are refused (UNAVAILABLE, so the agent tries another replica), not accepted and lost."""
    reply = await pg_system.register("late-agent")
    pg_system.scheduler.sessions.drain("scheduler shutting down")
    async with grpc.aio.insecure_channel(pg_system.scheduler_addr) as ch:
        call = scheduler_pb2_grpc.AgentStreamServiceStub(ch).Connect(metadata=(
            ("x-agent-id", reply.agent_id), ("authorization", f"Bearer {reply.api_token}")))
        await call.write(scheduler_pb2.ConnectRequest(hello=scheduler_pb2.AgentHello(version="test")))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call.read()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in refused.value.details()
    assert len(pg_system.scheduler.sessions) == 0


class _CountingHealth(health_pb2_grpc.HealthServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def Check(self, request, context):
        self.calls += 1
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def test_service_channels_balance_over_every_address() -> None:
    """hostcheck.core.rpc.channel round-robins over every address of its target, as it does over a
    headless Service's pods (dns:///registry-headless:50051); pick_first would send all to one."""
    servers, counters = [], []
    try:
        for _ in range(3):
            server = grpc.aio.server()
            counter = _CountingHealth()
            health_pb2_grpc.add_HealthServicer_to_server(counter, server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            servers.append((server, port))
            counters.append(counter)
        target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for _, port in servers)
        async with channel(target) as ch:
            stub = health_pb2_grpc.HealthStub(ch)
            await ch.channel_ready()
            # round_robin connects to every address; wait until each subchannel is up.
            await assert_eventually(_all_called(stub, counters), timeout=10, message="every address used")
            before = [c.calls for c in counters]
            for _ in range(30):
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        spread = [c.calls - b for c, b in zip(counters, before, strict=True)]
        assert sum(spread) == 30 and min(spread) >= 8, spread
    finally:
        for server, _ in servers:
            await server.stop(None)


def _all_called(stub, counters):
    async def check() -> bool:
        await stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        return all(c.calls for c in counters)
    return check
