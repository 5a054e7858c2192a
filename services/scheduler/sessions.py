"""Agent sessions: the agent streams this replica holds, and their presence in live state.

An agent proves its api token (the registry checks it) and says hello first; then its one
stream carries heartbeats and result batches up, and a welcome, task batches, cancels,
acks and a drain down. Heartbeats refresh the agent's presence in live state (written in
batches); the presence is what every replica picks agents from and routes tasks by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import grpc

from hostcheck.core.errors import Unauthenticated, Unavailable
from hostcheck.services.storage.livestate import LiveState, Presence
from hostcheck.v1 import agents_pb2, registry_pb2, registry_pb2_grpc, scheduler_pb2

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
# Heartbeats are written to live state together, at most this long after they arrive.
PRESENCE_BATCH_S = 0.2
# Streams reaching their max age are spread over the last fifth of it, so the agents of one
# replica do not all reconnect in the same second.
AGE_JITTER = 0.2


@dataclass(eq=False)
class AgentSession:
    """One connected agent's stream on this replica."""

    agent_id: str
    agent: agents_pb2.Agent  # from the registry's token check
    outbox: asyncio.Queue[scheduler_pb2.ConnectResponse | None] = field(default_factory=asyncio.Queue)
    hello: scheduler_pb2.AgentHello | None = None
    tasks_in_flight: int = 0
    closed: bool = False
    _static_presence: dict | None = field(default=None, repr=False)

    def send(self, message: scheduler_pb2.ConnectResponse) -> None:
        if not self.closed:
            self.outbox.put_nowait(message)

    def close(self) -> None:
        """Ends the stream once what is queued before has been written."""
        if not self.closed:
            self.outbox.put_nowait(None)

    def presence(self, scheduler_id: str) -> Presence:
        # What a heartbeat changes is its time and tasks_in_flight: the rest is copied out of the
        # protobuf messages once per stream, not once per heartbeat (issue 17: heartbeat CPU).
        static = self._static_presence
        if static is None or static["scheduler_id"] != scheduler_id:
            agent, hello = self.agent, self.hello
            static = self._static_presence = dict(
                agent_id=self.agent_id, scheduler_id=scheduler_id, version=hello.version if hello else "",
                capabilities=list(hello.capabilities) if hello else list(agent.capabilities),
                name=agent.name, location=agent.location, region=agent.region, country=agent.country,
                city=agent.city, labels=dict(agent.labels), asn=agent.asn)
        return Presence(last_heartbeat=time.time(), tasks_in_flight=self.tasks_in_flight, **static)


async def authenticate(auth: registry_pb2_grpc.AgentAuthServiceStub,
                       metadata: Iterable[tuple[str, str]] | None) -> agents_pb2.Agent:
    """The agent a stream's metadata (x-agent-id, authorization: Bearer <api token>) proves to be."""
    md = dict(metadata or ())
    agent_id = md.get("x-agent-id", "")
    token = md.get("authorization", "")
    if not agent_id or not token.lower().startswith("bearer "):
        raise Unauthenticated("agent stream needs x-agent-id and authorization: Bearer <api token>")
    try:
        reply = await auth.VerifyAgentToken(
            registry_pb2.VerifyAgentTokenRequest(agent_id=agent_id, api_token=token[7:].strip()), timeout=10)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise Unauthenticated(exc.details()) from None
        raise Unavailable(f"registry unavailable: {exc.code().name}") from None
    return reply.agent


# Takes the results an agent sent (the forwarder stores them and acks them on the session).
ResultsSink = Callable[[str, Sequence[scheduler_pb2.TaskResult], AgentSession], None]
# Takes the progress of an agent's running tasks (forwarded to the results service, never acked).
ProgressSink = Callable[[str, Sequence[scheduler_pb2.TaskProgress]], None]


class AgentSessions:
    """The agents whose streams this replica holds, by agent id; one stream per agent (the newer wins)."""

    def __init__(self, live: LiveState, *, scheduler_id: str, on_results: ResultsSink,
                 heartbeat_interval_s: float, offline_after_s: float,
                 on_open: Callable[[], object] = lambda: None, on_heartbeat: Callable[[], object] = lambda: None,
                 hello_timeout_s: float = HELLO_TIMEOUT_S,
                 presence_batch_s: float = PRESENCE_BATCH_S,
                 on_progress: ProgressSink = lambda agent_id, progress: None,
                 on_deliver: Callable[[scheduler_pb2.TaskBatch], object] = lambda batch: None,
                 max_age_s: float = 0.0, age_jitter: float = AGE_JITTER) -> None:
        self.live = live
        self.scheduler_id = scheduler_id
        self.on_results = on_results
        self.on_deliver = on_deliver  # tasks sent down a stream here (their results will come up here)
        self.on_progress = on_progress
        self.on_open = on_open
        self.on_heartbeat = on_heartbeat
        self.heartbeat_interval_s = heartbeat_interval_s
        self.offline_after_s = offline_after_s
        self.hello_timeout_s = hello_timeout_s
        self.presence_batch_s = presence_batch_s
        self._sessions: dict[str, AgentSession] = {}
        self._empty = asyncio.Event()
        self._empty.set()
        self._stale_presence: dict[str, AgentSession] = {}
        self._presence_due = asyncio.Event()
        # A stream older than this (less up to age_jitter of it, drawn per stream) is asked to
        # reconnect, so that agents spread over replicas started after they connected; 0: never.
        self.max_age_s = max_age_s
        self.age_jitter = age_jitter
        self.draining = False

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, agent_id: object) -> bool:
        return agent_id in self._sessions

    def deliver(self, agent_id: str, batch: scheduler_pb2.TaskBatch) -> bool:
        """Pushes tasks down the agent's stream; False when this replica does not hold it."""
        session = self._sessions.get(agent_id)
        if session is None:
            log.warning("agent %s is not connected here; %d task(s) will time out", agent_id, len(batch.tasks))
            return False
        self.on_deliver(batch)
        session.send(scheduler_pb2.ConnectResponse(tasks=batch))
        return True

    def cancel(self, task_ids_by_agent: dict[str, list[str]], reason: str) -> None:
        """Tells the agents held here to stop these tasks (the others are some other replica's)."""
        for agent_id, task_ids in task_ids_by_agent.items():
            session = self._sessions.get(agent_id)
            if session is not None:
                session.send(scheduler_pb2.ConnectResponse(
                    cancel=scheduler_pb2.CancelTasks(task_ids=task_ids, reason=reason)))

    def revoke(self, agent_id: str) -> None:
        """Closes the agent's stream if held here (its token was revoked)."""
        session = self._sessions.get(agent_id)
        if session is not None:
            log.info("agent %s revoked: closing its stream", agent_id)
            session.close()

    def drain(self, reason: str) -> None:
        """Asks every agent here to reconnect elsewhere, and refuses new streams from now on."""
        self.draining = True
        for session in list(self._sessions.values()):
            session.send(scheduler_pb2.ConnectResponse(drain=scheduler_pb2.Drain(reason=reason)))

    async def wait_empty(self) -> None:
        await self._empty.wait()

    async def serve(self, agent: agents_pb2.Agent, stream: AsyncIterator[scheduler_pb2.ConnectRequest],
                    write: Callable[[scheduler_pb2.ConnectResponse], Awaitable[object]]) -> None:
        """Holds an authenticated agent's stream until either side ends it."""
        if self.draining:
            # The Service may still route a new connection here while the endpoint removal spreads.
            raise Unavailable("this scheduler replica is shutting down: reconnect to another")
        session = AgentSession(agent_id=agent.agent_id, agent=agent)
        session.hello = await self._hello(stream)
        old = self._sessions.get(session.agent_id)
        if old is not None:
            old.close()  # an agent has one stream; the newer wins
        self._sessions[session.agent_id] = session
        self._empty.clear()
        self.on_open()
        await self.live.set_presence(session.presence(self.scheduler_id), self.offline_after_s)
        log.info("agent %s (%s) connected, %d unacked result(s) to come", agent.name, agent.agent_id,
                 session.hello.unacked_results)
        session.send(scheduler_pb2.ConnectResponse(welcome=scheduler_pb2.Welcome(
            scheduler_id=self.scheduler_id, agent_id=session.agent_id,
            heartbeat_interval_s=int(self.heartbeat_interval_s))))
        reader = asyncio.create_task(self._read(session, stream))
        ageing = None
        if self.max_age_s > 0:
            age = self.max_age_s * (1 - random.uniform(0, self.age_jitter))
            ageing = asyncio.get_running_loop().call_later(age, session.send, scheduler_pb2.ConnectResponse(
                drain=scheduler_pb2.Drain(reason=f"stream older than {age:.0f} s: reconnect to rebalance")))
        try:
            while True:
                message = await session.outbox.get()
                if message is None:
                    break
                await write(message)
        finally:
            if ageing is not None:
                ageing.cancel()
            session.closed = True
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            if self._sessions.get(session.agent_id) is session:
                del self._sessions[session.agent_id]
                if not self._sessions:
                    self._empty.set()
                with contextlib.suppress(Exception):
                    await self.live.clear_presence(session.agent_id, self.scheduler_id)
            log.info("agent %s (%s) disconnected", agent.name, agent.agent_id)

    async def _hello(self, stream: AsyncIterator[scheduler_pb2.ConnectRequest]) -> scheduler_pb2.AgentHello:
        try:
            first = await asyncio.wait_for(anext(aiter(stream), None), self.hello_timeout_s)
        except TimeoutError:
            raise Unauthenticated(f"no hello within {self.hello_timeout_s:g} s") from None
        if first is None or first.WhichOneof("message") != "hello":
            raise Unauthenticated("the first message on the stream must be hello")
        return first.hello

    async def _read(self, session: AgentSession, stream: AsyncIterator[scheduler_pb2.ConnectRequest]) -> None:
        try:
            async for message in stream:
                kind = message.WhichOneof("message")
                if kind == "heartbeat":
                    session.tasks_in_flight = message.heartbeat.tasks_in_flight
                    self._heartbeat(session)
                    self.on_heartbeat()
                elif kind == "results":
                    self.on_results(session.agent_id, message.results.results, session)
                elif kind == "progress":
                    self.on_progress(session.agent_id, message.progress.progress)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the stream broke; the agent reconnects
            log.info("stream of agent %s ended: %s", session.agent_id, exc)
        finally:
            session.outbox.put_nowait(None)

    def _heartbeat(self, session: AgentSession) -> None:
        """Queues the agent's presence refresh; `write_presences` writes them in batches."""
        self._stale_presence[session.agent_id] = session
        self._presence_due.set()

    async def write_presences(self) -> None:
        """Writes queued presence refreshes every presence_batch_s in one round trip (runs until cancelled).

        One write per heartbeat cost ~0.7 ms of CPU: 10,000 agents heartbeating every 10 s
        kept most of a core busy. The delay is small next to the 30 s presence TTL.
        """
        while True:
            await self._presence_due.wait()
            await asyncio.sleep(self.presence_batch_s)
            self._presence_due.clear()
            due, self._stale_presence = self._stale_presence, {}
            try:
                await self.live.set_presences([s.presence(self.scheduler_id) for s in due.values() if not s.closed],
                                              self.offline_after_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a live-state blip must not drop streams; next heartbeat retries
                log.warning("cannot refresh presence of %d agent(s): %s", len(due), exc)
