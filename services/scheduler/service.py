"""The scheduler: holds agent streams, keeps their live state, creates checks and dispatches tasks.

Flow of a check: CreateCheck validates, picks agents from live state, has the
results service persist the check and its tasks (OpenCheck), then pushes each
agent its tasks: down the local stream when this replica holds the agent, else
through live state to the replica that does. Results come up the streams, are
forwarded to the results service in batches (retried while it is down, never
dropped) and acknowledged to the agent only once stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import grpc

from hostcheck.core import telemetry
from hostcheck.core.checks import task_options, validate_create
from hostcheck.core.config import SchedulerConfig
from hostcheck.core.errors import FailedPrecondition, ResourceExhausted, Unauthenticated, Unavailable
from hostcheck.core.rpc import channel
from hostcheck.core.targets import TargetGuard
from hostcheck.core.timestamps import ts
from hostcheck.services.grpcserver import PUBLIC_SERVICES, Server, client_ip, start_server
from hostcheck.services.rpcerrors import grpc_errors
from hostcheck.services.scheduler.selection import pick_agents
from hostcheck.services.storage.livestate import (
    CANCELS_CHANNEL,
    REVOCATIONS_CHANNEL,
    LiveState,
    Presence,
    create_live_state,
    scheduler_channel,
)
from hostcheck.v1 import (
    agents_pb2,
    registry_pb2,
    registry_pb2_grpc,
    results_pb2,
    results_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)

log = logging.getLogger(__name__)

VERSION_HEADER = "x-agent-version"
HELLO_TIMEOUT_S = 10.0
# How stale the list of online agents that CreateCheck picks from may be (see Scheduler._online).
ONLINE_SNAPSHOT_S = 1.0
# Heartbeats are written to live state together, at most this long after they arrive.
PRESENCE_BATCH_S = 0.2


@dataclass(eq=False)
class AgentSession:
    """One connected agent's stream on this replica."""

    agent_id: str
    agent: agents_pb2.Agent  # from the registry's token check
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    hello: scheduler_pb2.AgentHello | None = None
    tasks_in_flight: int = 0
    closed: bool = False

    def send(self, message: scheduler_pb2.ConnectResponse | None) -> None:
        if not self.closed:
            self.outbox.put_nowait(message)


@dataclass
class _Pending:
    agent_id: str
    result: scheduler_pb2.TaskResult
    session: AgentSession | None


class ResultForwarder:
    """Batches results from every stream into RecordResults calls; retries until stored.

    An agent keeps a result until acknowledged, so an ack goes out only after
    the results service stored it (or said the task is unknown, e.g. deleted).

    A result goes at once when a call slot is free; while `max_in_flight` calls
    are out, results gather in the queue, so batches grow with load instead of
    every result waiting for a timer.
    """

    def __init__(self, results: results_pb2_grpc.ResultsIngestServiceStub, live: LiveState, *,
                 max_batch: int = 500, max_in_flight: int = 2) -> None:
        self.results = results
        self.live = live
        self.queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self.max_batch = max_batch
        self.stored_total = 0
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task] = set()

    def submit(self, agent_id: str, results, session: AgentSession | None) -> None:
        for r in results:
            self.queue.put_nowait(_Pending(agent_id, r, session))

    async def run(self) -> None:
        try:
            while True:
                first = await self.queue.get()
                await self._slots.acquire()
                batch = [first]
                while len(batch) < self.max_batch and not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                task = asyncio.create_task(self._store_batch(batch))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
        finally:
            for task in list(self._in_flight):
                task.cancel()

    async def _store_batch(self, batch: list[_Pending]) -> None:
        try:
            by_agent = await self._store(batch)
        finally:
            self._slots.release()
            for _ in batch:
                self.queue.task_done()
        # Off the critical path: the acks are out and the next call may go.
        for i in range(0, len(by_agent), FORGET_AT_ONCE):
            await asyncio.gather(*(self._forget(agent_id, task_ids)
                                   for agent_id, task_ids in list(by_agent.items())[i:i + FORGET_AT_ONCE]))

    async def _forget(self, agent_id: str, task_ids: list[str]) -> None:
        with contextlib.suppress(Exception):
            await self.live.remove_inflight(agent_id, task_ids)

    async def _store(self, batch: list[_Pending]) -> dict[str, list[str]]:
        """Stores the batch and acks it to the agents; returns the task ids done, by agent."""
        request = results_pb2.RecordResultsRequest(results=[
            results_pb2.AgentResult(agent_id=p.agent_id, result=p.result) for p in batch])
        delay = 0.1
        while True:
            try:
                reply = await self.results.RecordResults(request, timeout=30)
                break
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    log.error("results refused a batch of %d: %s", len(batch), exc.details())
                    reply = results_pb2.RecordResultsResponse(
                        unknown_task_ids=[p.result.task_id for p in batch])
                    break
                log.warning("results service unavailable (%s); holding %d result(s)", exc.code().name, len(batch))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        done = set(reply.stored_task_ids) | set(reply.unknown_task_ids)
        self.stored_total += len(reply.stored_task_ids)
        acks: dict[int, tuple[AgentSession, list[str]]] = {}
        by_agent: dict[str, list[str]] = {}
        for p in batch:
            if p.result.task_id not in done:
                continue
            by_agent.setdefault(p.agent_id, []).append(p.result.task_id)
            if p.session is not None:
                acks.setdefault(id(p.session), (p.session, []))[1].append(p.result.task_id)
        for session, task_ids in acks.values():
            session.send(scheduler_pb2.ConnectResponse(ack=scheduler_pb2.ResultAck(task_ids=task_ids)))
        return by_agent


# Live-state updates sent at once after a stored batch (one per agent).
FORGET_AT_ONCE = 32


class Scheduler:
    def __init__(self, config: SchedulerConfig, live: LiveState, auth: registry_pb2_grpc.AgentAuthServiceStub,
                 results: results_pb2_grpc.ResultsIngestServiceStub) -> None:
        self.config = config
        self.id = config.scheduler_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.live = live
        self.auth = auth
        self.results = results
        self.guard = TargetGuard.from_cidrs(config.allow_targets)
        self.sessions: dict[str, AgentSession] = {}
        self.forwarder = ResultForwarder(results, live)
        self.metrics = telemetry.SchedulerMetrics(connected_agents=lambda: len(self.sessions),
                                                  forwarder_queue=lambda: self.forwarder.queue.qsize())
        self.metrics_server: telemetry.MetricsServer | None = None
        self._tasks: list[asyncio.Task] = []
        self._no_sessions = asyncio.Event()
        self._no_sessions.set()
        self._online_snapshot: tuple[float, list[Presence]] | None = None
        self._stale_presence: dict[str, AgentSession] = {}
        self._presence_due = asyncio.Event()
        self._online_read: asyncio.Future | None = None

    @property
    def routing_channel(self) -> str:
        return scheduler_channel(self.id)

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self.forwarder.run(), name="result-forwarder"))
        self._tasks.append(asyncio.create_task(self._write_presences(), name="presence-writer"))
        ready = asyncio.Event()
        self._tasks.append(asyncio.create_task(self._listen(ready), name="scheduler-routing"))
        await ready.wait()
        self.metrics_server = await telemetry.serve_metrics(self.metrics.registry, self.config.metrics_port,
                                                            near=self.config.listen)

    async def _listen(self, ready: asyncio.Event) -> None:
        """Serves this replica's channels: tasks routed to it, cancels and revocations."""
        handlers = {
            self.routing_channel: lambda raw: self._deliver_local(
                *(lambda m: (m.agent_id, m.batch))(scheduler_pb2.RoutedTasks.FromString(raw))),
            CANCELS_CHANNEL: lambda raw: self._cancel_local(json.loads(raw)),
            REVOCATIONS_CHANNEL: lambda raw: self._revoke_local(raw.decode()),
        }
        async with contextlib.AsyncExitStack() as stack:
            subs = {name: await stack.enter_async_context(self.live.subscribe(name)) for name in handlers}
            ready.set()
            waiting = {asyncio.ensure_future(sub.get()): name for name, sub in subs.items()}
            try:
                while True:
                    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    for fut in done:
                        name = waiting.pop(fut)
                        try:
                            handlers[name](fut.result())
                        except Exception:  # noqa: BLE001 - one bad message must not stop routing
                            log.exception("cannot handle a message on %s", name)
                        waiting[asyncio.ensure_future(subs[name].get())] = name
            finally:
                for fut in waiting:
                    fut.cancel()

    def _revoke_local(self, agent_id: str) -> None:
        session = self.sessions.get(agent_id)
        if session is not None:
            log.info("agent %s revoked: closing its stream", agent_id)
            session.send(None)

    def _deliver_local(self, agent_id: str, batch: scheduler_pb2.TaskBatch) -> bool:
        session = self.sessions.get(agent_id)
        if session is None:
            log.warning("agent %s is not connected here; %d task(s) will time out", agent_id, len(batch.tasks))
            return False
        session.send(scheduler_pb2.ConnectResponse(tasks=batch))
        return True

    def _cancel_local(self, payload: dict) -> None:
        by_agent: dict[str, list[str]] = {}
        for agent_id, task_id in payload.get("tasks", []):
            if agent_id in self.sessions:
                by_agent.setdefault(agent_id, []).append(task_id)
        for agent_id, task_ids in by_agent.items():
            self.sessions[agent_id].send(scheduler_pb2.ConnectResponse(
                cancel=scheduler_pb2.CancelTasks(task_ids=task_ids, reason=payload.get("reason", ""))))

    async def stop(self, *, drain_s: float = 2.0) -> None:
        """Tells every agent to reconnect elsewhere, stores what they sent, then stops."""
        for session in list(self.sessions.values()):
            session.send(scheduler_pb2.ConnectResponse(drain=scheduler_pb2.Drain(reason="scheduler shutting down")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_sessions.wait(), drain_s)
        # Results already received are stored before we go (the agents would resend them anyway).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.forwarder.queue.join(), drain_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.metrics_server is not None:
            await self.metrics_server.stop()

    # ---- agent streams -------------------------------------------------------------------

    async def authenticate(self, context) -> agents_pb2.Agent:
        md = dict(context.invocation_metadata() or ())
        agent_id = md.get("x-agent-id", "")
        auth = md.get("authorization", "")
        if not agent_id or not auth.lower().startswith("bearer "):
            raise Unauthenticated("agent stream needs x-agent-id and authorization: Bearer <api token>")
        try:
            reply = await self.auth.VerifyAgentToken(
                registry_pb2.VerifyAgentTokenRequest(agent_id=agent_id, api_token=auth[7:].strip()), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise Unauthenticated(exc.details()) from None
            raise Unavailable(f"registry unavailable: {exc.code().name}") from None
        return reply.agent

    def _presence(self, session: AgentSession) -> Presence:
        agent = session.agent
        hello = session.hello
        return Presence(agent_id=session.agent_id, scheduler_id=self.id, last_heartbeat=time.time(),
                        tasks_in_flight=session.tasks_in_flight, version=hello.version if hello else "",
                        capabilities=list(hello.capabilities) if hello else list(agent.capabilities),
                        name=agent.name, region=agent.region, country=agent.country, city=agent.city,
                        labels=dict(agent.labels))

    async def connect(self, request_iterator, context) -> None:
        agent = await self.authenticate(context)
        session = AgentSession(agent_id=agent.agent_id, agent=agent)
        first = await asyncio.wait_for(anext(aiter(request_iterator), None), HELLO_TIMEOUT_S)
        if first is None or first.WhichOneof("message") != "hello":
            raise Unauthenticated("the first message on the stream must be hello")
        session.hello = first.hello
        old = self.sessions.get(session.agent_id)
        if old is not None:
            old.send(None)  # an agent has one stream; the newer wins
        self.sessions[session.agent_id] = session
        self.metrics.agent_streams.inc()
        self._no_sessions.clear()
        await self.live.set_presence(self._presence(session), self.config.offline_after_s)
        log.info("agent %s (%s) connected, %d unacked result(s) to come", agent.name, agent.agent_id,
                 first.hello.unacked_results)
        session.send(scheduler_pb2.ConnectResponse(welcome=scheduler_pb2.Welcome(
            scheduler_id=self.id, agent_id=session.agent_id,
            heartbeat_interval_s=int(self.config.heartbeat_interval_s))))
        reader = asyncio.create_task(self._read(session, request_iterator))
        try:
            while True:
                message = await session.outbox.get()
                if message is None:
                    break
                await context.write(message)
        finally:
            session.closed = True
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
            if self.sessions.get(session.agent_id) is session:
                del self.sessions[session.agent_id]
                if not self.sessions:
                    self._no_sessions.set()
                with contextlib.suppress(Exception):
                    await self.live.clear_presence(session.agent_id, self.id)
            log.info("agent %s (%s) disconnected", agent.name, agent.agent_id)

    def _heartbeat(self, session: AgentSession) -> None:
        """Queues the agent's presence refresh; `_write_presences` writes them in batches."""
        self._stale_presence[session.agent_id] = session
        self._presence_due.set()

    async def _write_presences(self) -> None:
        """Writes queued presence refreshes every PRESENCE_BATCH_S in one round trip.

        One write per heartbeat cost ~0.7 ms of CPU: 10,000 agents heartbeating every 10 s
        kept most of a core busy. The delay is small next to the 30 s presence TTL.
        """
        while True:
            await self._presence_due.wait()
            await asyncio.sleep(PRESENCE_BATCH_S)
            self._presence_due.clear()
            due, self._stale_presence = self._stale_presence, {}
            try:
                await self.live.set_presences([self._presence(s) for s in due.values() if not s.closed],
                                              self.config.offline_after_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - a live-state blip must not drop streams; next heartbeat retries
                log.warning("cannot refresh presence of %d agent(s): %s", len(due), exc)

    async def _read(self, session: AgentSession, request_iterator) -> None:
        try:
            async for message in request_iterator:
                kind = message.WhichOneof("message")
                if kind == "heartbeat":
                    session.tasks_in_flight = message.heartbeat.tasks_in_flight
                    self._heartbeat(session)
                elif kind == "results":
                    self.forwarder.submit(session.agent_id, message.results.results, session)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the stream broke; the agent reconnects
            log.info("stream of agent %s ended: %s", session.agent_id, exc)
        finally:
            session.outbox.put_nowait(None)

    # ---- creating checks -----------------------------------------------------------------

    async def create_check(self, request: scheduler_pb2.CreateCheckRequest, ip: str) -> results_pb2.OpenCheckResponse:
        valid = validate_create(request, self.guard)
        if self.config.rate_limit:
            allowed, retry = await self.live.hit_rate_limit(f"checks:{ip}", self.config.rate_limit,
                                                            self.config.rate_limit_window_s)
            if not allowed:
                raise ResourceExhausted(f"rate limit of {self.config.rate_limit} checks per "
                                        f"{self.config.rate_limit_window_s} s for {ip} reached", retry_after_s=retry)
        try:
            picked = pick_agents(await self._online(), valid.request.agents, valid.check_types)
        except FailedPrecondition:
            # The snapshot may predate an agent that just connected: decide on a fresh one.
            picked = pick_agents(await self._online(fresh=True), valid.request.agents, valid.check_types)
        check_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        grace = timedelta(seconds=self.config.dispatch_grace_s)
        planned: list[results_pb2.PlannedTask] = []
        batches: dict[str, tuple[Presence, list[scheduler_pb2.Task]]] = {}
        for presence, types in picked:
            for check_type in types:
                task_id = str(uuid.uuid4())
                timeout_ms = valid.timeout_ms(check_type)
                deadline = now + timedelta(milliseconds=timeout_ms) + grace
                planned.append(results_pb2.PlannedTask(task_id=task_id, agent_id=presence.agent_id,
                                                       check_type=check_type, deadline=ts(deadline)))
                batches.setdefault(presence.agent_id, (presence, []))[1].append(scheduler_pb2.Task(
                    task_id=task_id, check_id=check_id, check_type=check_type, target=valid.request.target,
                    options=task_options(valid.request, check_type), timeout_ms=timeout_ms,
                    deadline=ts(now + timedelta(milliseconds=timeout_ms)), ip_version=valid.request.ip_version))
        check_deadline = max(t.deadline.ToDatetime(tzinfo=UTC) for t in planned)
        try:
            opened = await self.results.OpenCheck(results_pb2.OpenCheckRequest(
                check_id=check_id, request=valid.request, tasks=planned, deadline=ts(check_deadline),
                client_ip=ip), timeout=15, metadata=telemetry.grpc_metadata())
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"cannot store the check: results service {exc.code().name}: {exc.details()}") from None
        await self.dispatch(batches)
        self.metrics.checks_created.inc()
        return opened

    async def _online(self, *, fresh: bool = False) -> list[Presence]:
        """Online agents, from a snapshot at most ONLINE_SNAPSHOT_S old.

        Reading every agent's presence costs ~1 ms per 25 agents (decoding in Python); with
        thousands online, once per CreateCheck was most of the scheduler's CPU. Concurrent
        callers share one read. Routing does not use the snapshot (see dispatch).
        """
        now = time.monotonic()
        if not fresh and self._online_snapshot is not None and now - self._online_snapshot[0] < ONLINE_SNAPSHOT_S:
            return self._online_snapshot[1]
        if self._online_read is None or self._online_read.done():
            self._online_read = asyncio.ensure_future(self.live.online_agents())
        read = self._online_read
        agents = await asyncio.shield(read)
        self._online_snapshot = (now, agents)
        return agents

    async def dispatch(self, batches: dict[str, tuple[Presence, list[scheduler_pb2.Task]]]) -> None:
        remote = [a for a in batches if a not in self.sessions]
        # Where each remote agent is now (it may have moved since the snapshot it was picked from).
        current = await self.live.get_presence(remote) if remote else {}
        with contextlib.suppress(Exception):  # in-flight bookkeeping is advisory; a Redis blip must not stop dispatch
            await self.live.add_inflight({agent_id: {t.task_id: t.deadline.seconds for t in tasks}
                                          for agent_id, (_, tasks) in batches.items()})
        for agent_id, (presence, tasks) in batches.items():
            presence = current.get(agent_id, presence)
            with telemetry.span("dispatch", attributes={"hostcheck.check_id": tasks[0].check_id,
                                                        "hostcheck.agent_id": agent_id, "hostcheck.tasks": len(tasks)}):
                for task in tasks:  # the agent's run of each task is a child of this span
                    telemetry.inject(task.trace_context)
                    self.metrics.tasks_dispatched.labels(task.check_type).inc()
                batch = scheduler_pb2.TaskBatch(tasks=tasks)
                if agent_id in self.sessions:
                    self._deliver_local(agent_id, batch)
                else:
                    await self.live.publish(scheduler_channel(presence.scheduler_id), scheduler_pb2.RoutedTasks(
                        agent_id=agent_id, batch=batch).SerializeToString())


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    @grpc_errors
    async def CreateCheck(self, request, context):
        with telemetry.span("create", parent=telemetry.metadata_of(context), kind=telemetry.SpanKind.SERVER) as span:
            opened = await self.scheduler.create_check(request, client_ip(context))
            span.set_attribute("hostcheck.check_id", opened.check.check_id)
        return scheduler_pb2.CreateCheckResponse(check_id=opened.check.check_id, check=opened.check)


class AgentStreamServicer(scheduler_pb2_grpc.AgentStreamServiceServicer):
    def __init__(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    async def Connect(self, request_iterator, context):
        try:
            await self.scheduler.connect(request_iterator, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - one place turns errors into statuses
            from hostcheck.services.rpcerrors import translate

            if isinstance(exc, TimeoutError):
                exc = Unauthenticated("no hello within 10 s")
            await context.abort_with_status(translate(exc))


class SchedulerService:
    def __init__(self, server: Server, scheduler: Scheduler, channels: list, owns_live: bool) -> None:
        self.server = server
        self.scheduler = scheduler
        self.channels = channels
        self.owns_live = owns_live

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self, *, drain_s: float = 2.0) -> None:
        await self.server.set_serving(False)
        await self.scheduler.stop(drain_s=drain_s)
        await self.server.stop(grace=1.0)
        for ch in self.channels:
            await ch.close()
        if self.owns_live:
            await self.scheduler.live.close()


async def start(config: SchedulerConfig, *, live: LiveState | None = None) -> SchedulerService:
    owns_live = live is None
    live = live or create_live_state(config.live_state_url, config.live_state_prefix)
    registry_channel = channel(config.registry_addr)
    results_channel = channel(config.results_addr)
    scheduler = Scheduler(config, live, registry_pb2_grpc.AgentAuthServiceStub(registry_channel),
                          results_pb2_grpc.ResultsIngestServiceStub(results_channel))
    await scheduler.start()
    server = await start_server(config.listen, [
        (scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server, SchedulerServicer(scheduler)),
        (scheduler_pb2_grpc.add_AgentStreamServiceServicer_to_server, AgentStreamServicer(scheduler)),
    ], [scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name,
        scheduler_pb2.DESCRIPTOR.services_by_name["AgentStreamService"].full_name], reflect=PUBLIC_SERVICES,
        tls=config)
    return SchedulerService(server, scheduler, [registry_channel, results_channel], owns_live)


