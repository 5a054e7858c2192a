"""Scheduler units on real live state (in-process memory and Redis), with agents' streams played by tests."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest

from hostcheck.services.scheduler.routing import Router
from hostcheck.services.scheduler.sessions import AgentSessions
from hostcheck.services.storage.livestate import LiveState, MemoryLiveState, RedisLiveState
from hostcheck.v1 import agents_pb2, scheduler_pb2
from tests.conftest import REDIS_URL
from tests.helpers import assert_eventually


@pytest.fixture(params=["memory", "redis"])
async def live_pair(request, live_prefix):
    """Live state as two scheduler replicas see it: one in-process state, or two clients of one Redis."""
    if request.param == "memory":
        state = MemoryLiveState()
        yield state, state
        return
    first, second = RedisLiveState(REDIS_URL, prefix=live_prefix), RedisLiveState(REDIS_URL, prefix=live_prefix)
    yield first, second
    await first.close()
    await second.close()


@pytest.fixture
def live(live_pair) -> LiveState:
    return live_pair[0]


def make_agent(name: str = "agent", **fields) -> agents_pb2.Agent:
    """An agent as the registry's token check returns it."""
    defaults = {"location": f"{name} rack", "region": "eu-central", "country": "DE", "city": "Frankfurt",
                "capabilities": ["tcp"]}
    return agents_pb2.Agent(agent_id=str(uuid.uuid4()), name=name, **{**defaults, **fields})


class AgentStream:
    """An agent's end of its stream: what it says goes up, what the scheduler writes comes down."""

    def __init__(self) -> None:
        self.up: asyncio.Queue[scheduler_pb2.ConnectRequest | None] = asyncio.Queue()
        self.down: asyncio.Queue[scheduler_pb2.ConnectResponse] = asyncio.Queue()

    async def requests(self) -> AsyncIterator[scheduler_pb2.ConnectRequest]:
        while (message := await self.up.get()) is not None:
            yield message

    async def write(self, message: scheduler_pb2.ConnectResponse) -> None:
        self.down.put_nowait(message)

    def say(self, **message) -> None:
        self.up.put_nowait(scheduler_pb2.ConnectRequest(**message))

    def hang_up(self) -> None:
        self.up.put_nowait(None)

    async def receive(self, kind: str, timeout: float = 5.0) -> scheduler_pb2.ConnectResponse:
        """The next message of this kind (welcome, tasks, cancel, ack, drain); others are skipped."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.down.get()
                if message.WhichOneof("message") == kind:
                    return message


class Replica:
    """A scheduler replica's sessions and router, running, with its agents' streams."""

    def __init__(self, live: LiveState, scheduler_id: str, **session_options) -> None:
        self.results: list[tuple[str, list[scheduler_pb2.TaskResult]]] = []
        self.opened = 0
        self.sessions = AgentSessions(live, scheduler_id=scheduler_id, heartbeat_interval_s=10, offline_after_s=30,
                                      on_results=lambda agent_id, results, _session: self.results.append(
                                          (agent_id, list(results))),
                                      on_open=self._count_open, **session_options)
        self.router = Router(live, self.sessions)
        self._tasks: list[asyncio.Task] = []
        self.serving: dict[str, asyncio.Task] = {}

    def _count_open(self) -> None:
        self.opened += 1

    async def start(self) -> Replica:
        subscribed = asyncio.Event()
        self._tasks.append(asyncio.create_task(self.router.run(subscribed)))
        self._tasks.append(asyncio.create_task(self.sessions.write_presences()))
        await subscribed.wait()
        return self

    def serve(self, agent: agents_pb2.Agent, stream: AgentStream) -> asyncio.Task:
        task = asyncio.create_task(self.sessions.serve(agent, stream.requests(), stream.write))
        self.serving[agent.agent_id] = task
        return task

    async def connect(self, agent: agents_pb2.Agent, **hello) -> AgentStream:
        """A stream that said hello and got its welcome."""
        stream = AgentStream()
        stream.say(hello=scheduler_pb2.AgentHello(version="1.0", capabilities=list(agent.capabilities), **hello))
        self.serve(agent, stream)
        await stream.receive("welcome")
        await assert_eventually(lambda: agent.agent_id in self.sessions, timeout=5, message="session held")
        return stream

    async def stop(self) -> None:
        for task in [*self._tasks, *self.serving.values()]:
            task.cancel()
        for task in [*self._tasks, *self.serving.values()]:
            with contextlib.suppress(BaseException):
                await task


@pytest.fixture
async def replicas(live_pair):
    """Two running replicas, "s-a" and "s-b", sharing live state."""
    made = [await Replica(live_pair[0], "s-a").start(), await Replica(live_pair[1], "s-b").start()]
    yield made
    for replica in made:
        await replica.stop()


def rpc_error(code: grpc.StatusCode, details: str = "") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)
