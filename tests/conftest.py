"""Session fixtures: real Postgres and Redis (fresh database and key prefix per test), the services
in-process on real sockets, and loopback targets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from dataclasses import dataclass, field

import grpc
import psycopg
import pytest
import redis

from hostcheck.agent.client import Agent
from hostcheck.core.config import AgentConfig, RegistryConfig, ResultsConfig, SchedulerConfig
from hostcheck.services.registry import service as registry_service
from hostcheck.services.results import service as results_service
from hostcheck.services.scheduler import service as scheduler_service
from hostcheck.services.storage import db
from hostcheck.services.storage.livestate import MemoryLiveState, RedisLiveState
from hostcheck.v1 import registry_pb2, registry_pb2_grpc, results_pb2_grpc, scheduler_pb2_grpc
from tests.helpers import HttpTarget, assert_eventually

PG_ADMIN_URL = os.environ.get("HOSTCHECK_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("HOSTCHECK_TEST_REDIS", "redis://127.0.0.1:6379/0")
REGISTRATION_TOKEN = "test-registration-token"
ADMIN_TOKEN = "test-admin-token"
ADMIN = [("authorization", f"Bearer {ADMIN_TOKEN}")]


def pytest_configure(config):
    # Test code must not read the developer's own settings.
    for key in [k for k in os.environ if k.startswith("HOSTCHECK_") and not k.startswith("HOSTCHECK_TEST_")]:
        del os.environ[key]


@contextlib.contextmanager
def fresh_postgres_db():
    name = f"hct_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url():
    with fresh_postgres_db() as url:
        yield url


@pytest.fixture(params=["postgres", "sqlite"])
async def migrated_engine(request, tmp_path):
    """An engine on a freshly migrated database of each kind (stores built on it in the tests)."""
    async def made(url: str):
        await asyncio.to_thread(db.migrate, url)
        return db.create_engine(url)

    if request.param == "postgres":
        with fresh_postgres_db() as url:
            engine = await made(url)
            try:
                yield engine
            finally:
                await engine.dispose()
    else:
        engine = await made(f"sqlite:///{tmp_path / 'hostcheck.db'}")
        try:
            yield engine
        finally:
            await engine.dispose()


@pytest.fixture
def live_prefix():
    prefix = f"hct:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def http_target():
    target = HttpTarget()
    yield target
    target.stop()


@pytest.fixture
async def tcp_target():
    """A TCP listener on loopback that accepts and closes."""
    async def handle(reader, writer):
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


@dataclass
class System:
    """The three services running in this process on real sockets, plus agents as asyncio tasks."""

    database_url: str
    live_url: str
    prefix: str
    results: object = None
    registry: object = None
    scheduler: object = None
    channel: grpc.aio.Channel | None = None
    agents: list[tuple[Agent, asyncio.Task]] = field(default_factory=list)
    scheduler_overrides: dict = field(default_factory=dict)
    results_overrides: dict = field(default_factory=dict)
    registry_overrides: dict = field(default_factory=dict)

    def live(self):
        return MemoryLiveState() if self.live_url == "memory://" else RedisLiveState(self.live_url, prefix=self.prefix)

    async def start(self) -> System:
        common = {"database_url": self.database_url, "live_state_url": self.live_url, "live_state_prefix": self.prefix}
        shared = MemoryLiveState() if self.live_url == "memory://" else None
        self.results = await results_service.start(ResultsConfig(
            listen="127.0.0.1:0",
            **{"task_grace_s": 0.5, "sweep_interval_s": 0.2, "admin_token": ADMIN_TOKEN,
               "allow_targets": ("127.0.0.0/8", "::1/128"), "monitor_min_interval_s": 1, **self.results_overrides},
            **common), live=shared)
        self.registry = await registry_service.start(RegistryConfig(
            listen="127.0.0.1:0", registration_token=REGISTRATION_TOKEN, results_addr=self.results_addr,
            migrate=False, **self.registry_overrides, **common), live=shared)
        self.scheduler = await scheduler_service.start(SchedulerConfig(
            listen="127.0.0.1:0", registry_addr=self.registry_addr, results_addr=self.results_addr,
            **{"allow_targets": ("127.0.0.0/8", "::1/128"), "dispatch_grace_s": 1.0, **self.scheduler_overrides},
            **common), live=shared)
        self.channel = grpc.aio.insecure_channel(self.scheduler_addr)
        self.results_channel = grpc.aio.insecure_channel(self.results_addr)
        self.registry_channel = grpc.aio.insecure_channel(self.registry_addr)
        return self

    @property
    def results_addr(self) -> str:
        return f"127.0.0.1:{self.results.port}"

    @property
    def registry_addr(self) -> str:
        return f"127.0.0.1:{self.registry.port}"

    @property
    def scheduler_addr(self) -> str:
        return f"127.0.0.1:{self.scheduler.port}"

    @property
    def create(self) -> scheduler_pb2_grpc.SchedulerServiceStub:
        return scheduler_pb2_grpc.SchedulerServiceStub(self.channel)

    @property
    def checks(self) -> results_pb2_grpc.ResultsServiceStub:
        return results_pb2_grpc.ResultsServiceStub(self.results_channel)

    @property
    def ingest(self) -> results_pb2_grpc.ResultsIngestServiceStub:
        return results_pb2_grpc.ResultsIngestServiceStub(self.results_channel)

    @property
    def agents_api(self) -> registry_pb2_grpc.RegistryServiceStub:
        return registry_pb2_grpc.RegistryServiceStub(self.registry_channel)

    async def register(self, name: str = "agent", **fields) -> registry_pb2.RegisterAgentResponse:
        return await self.agents_api.RegisterAgent(
            registry_pb2.RegisterAgentRequest(name=name, capabilities=["tcp", "http"], **fields),
            metadata=[("x-registration-token", REGISTRATION_TOKEN)])

    def agent_config(self, tmp_path, name: str, **overrides) -> AgentConfig:
        return AgentConfig(scheduler_addr=self.scheduler_addr, registry_addr=self.registry_addr,
                           registration_token=REGISTRATION_TOKEN, state_file=str(tmp_path / f"{name}.json"),
                           name=name, allow_targets=("127.0.0.0/8", "::1/128"), result_flush_ms=5, **overrides)

    async def start_agent(self, tmp_path, name: str = "agent", **overrides) -> Agent:
        agent = Agent(self.agent_config(tmp_path, name, **overrides))
        task = asyncio.create_task(agent.run(), name=f"agent-{name}")
        self.agents.append((agent, task))
        await assert_eventually(agent.ready.is_set, timeout=10, message=f"agent {name} connected")
        return agent

    async def stop(self) -> None:
        for agent, task in self.agents:
            await agent.stop(drain_timeout_s=0.5)
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 5)
        for ch in (self.channel, self.results_channel, self.registry_channel):
            if ch is not None:
                await ch.close()
        for svc in (self.scheduler, self.registry, self.results):
            if svc is not None:
                await svc.stop()


@pytest.fixture(params=["postgres+redis", "sqlite+memory"])
async def system(request, tmp_path, live_prefix):
    """The services on Postgres + Redis (production) and on SQLite + memory (embedded default)."""
    marker = request.node.get_closest_marker("system_config")
    overrides = marker.kwargs if marker else {}
    if request.param == "postgres+redis":
        with fresh_postgres_db() as url:
            sys_ = System(url, REDIS_URL, live_prefix, **overrides)
            try:
                yield await sys_.start()
            finally:
                await sys_.stop()
    else:
        sys_ = System(f"sqlite:///{tmp_path / 'hostcheck.db'}", "memory://", live_prefix, **overrides)
        try:
            yield await sys_.start()
        finally:
            await sys_.stop()


@pytest.fixture
async def pg_system(tmp_path, live_prefix, request):
    """Production storage only: Postgres + Redis."""
    marker = request.node.get_closest_marker("system_config")
    overrides = marker.kwargs if marker else {}
    with fresh_postgres_db() as url:
        sys_ = System(url, REDIS_URL, live_prefix, **overrides)
        try:
            yield await sys_.start()
        finally:
            await sys_.stop()


@pytest.fixture
async def procs(tmp_path, live_prefix, request):
    """The system as separate processes on real Postgres and Redis; logs printed on failure."""
    from tests.procs import ProcSystem

    with fresh_postgres_db() as url:
        system = ProcSystem(url, REDIS_URL, live_prefix, tmp_path)
        try:
            yield await system.start()
        finally:
            system.stop()
            if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
                print(system.logs())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
