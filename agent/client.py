"""The agent: holds one stream to a scheduler, runs tasks, reports results until acknowledged.

States: connecting -> ready -> (draining) -> offline. Results stay in `unacked`
until the scheduler acknowledges them and are resent after every reconnect, so
a result the agent produced is never lost; the results service stores each
task's result once, so resending never duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import math
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc

from hostcheck import __version__
from hostcheck.agent.identity import (
    Identity,
    IdentityError,
    channel_credentials,
    ensure_identity,
    open_channel,
)
from hostcheck.agent.probers import PROBERS, Prober, ProbeSettings, check_settings, warm_up
from hostcheck.agent.runner import ProgressReporter, run_task
from hostcheck.core.config import AgentConfig, ConfigError
from hostcheck.core.errors import UNKNOWN_AGENT
from hostcheck.core.targets import TargetGuard
from hostcheck.core.timestamps import now_ts
from hostcheck.v1 import scheduler_pb2, scheduler_pb2_grpc

if TYPE_CHECKING:
    from hostcheck.core.metrics import AgentMetrics

log = logging.getLogger(__name__)

VERSION = __version__


EVENT_LOOPS = ("uvloop", "asyncio")


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The agent's event loop (HOSTCHECK_EVENT_LOOP) as a loop factory for `asyncio.Runner`; None: asyncio's.

    uvloop (libuv) runs the same probers and the same grpc.aio stream with less CPU per check: its
    callbacks, timers, sockets and transports are C (docs/benchmarks.md, "Agent throughput: uvloop").
    Where it cannot be imported (a platform without a wheel), the agent says so and runs on asyncio's.
    """
    if name not in EVENT_LOOPS:
        raise ConfigError(f"HOSTCHECK_EVENT_LOOP={name!r}: expected one of {', '.join(EVENT_LOOPS)}")
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        log.warning("HOSTCHECK_EVENT_LOOP=uvloop but uvloop is not installed: running on asyncio's event loop")
        return None
    return uvloop.new_event_loop


class State(enum.StrEnum):
    CONNECTING = "connecting"
    READY = "ready"
    DRAINING = "draining"
    OFFLINE = "offline"


def refused(task: scheduler_pb2.Task, code: str, message: str) -> scheduler_pb2.TaskResult:
    """A result for a task the agent did not run."""
    return scheduler_pb2.TaskResult(task_id=task.task_id, check_id=task.check_id, check_type=task.check_type,
                                    success=False, error=message, error_code=code, started_at=now_ts(),
                                    trace_context=dict(task.trace_context))


def flush_delay(pending: int, size: int, linger: float, since_last_flush: float) -> float:
    """Seconds the results waiting to go up should wait for more to join their batch.

    A full batch goes at once, and so does a result after a quiet spell (at least
    `linger` since the last batch): alone, it would wait for company that is not
    coming. Under load batches go out at most every `linger`, so results gather
    into batches instead of one message each.
    """
    if pending >= size or linger <= 0:
        return 0.0
    return max(0.0, linger - since_last_flush)


# The first reconnect waits 0 to this many seconds (then 0-2x, 0-4x, ... up to 30 s). A
# scheduler replica that drains or ages its streams out sends all its agents back at once;
# 0-0.2 s put a whole node pool on the registry and database in the same instant (issue 19).
RECONNECT_SPREAD_S = 1.0


class _Reconnect(Exception):
    """The scheduler asked us to go (drain) or the stream ended."""

    def __init__(self, reason: str, *, asked: bool = False) -> None:
        super().__init__(reason)
        self.asked = asked  # the scheduler asked (drain, stream age): not a failure to back off from


class Agent:
    def __init__(self, config: AgentConfig, *, probers: dict[str, Prober] | None = None) -> None:
        self.config = config
        self.probers = probers if probers is not None else PROBERS
        self.guard = TargetGuard.from_cidrs(config.allow_targets)
        # Checked here: a malformed setting (e.g. a resolver) fails at start, not in every check that reads it.
        self.probe_settings = ProbeSettings.from_config(config)
        check_settings(self.probe_settings, self.probers)
        self.state = State.OFFLINE
        self.identity: Identity | None = None
        self.unacked: OrderedDict[str, scheduler_pb2.TaskResult] = OrderedDict()
        self.running: dict[str, asyncio.Task] = {}
        self.seen: OrderedDict[str, None] = OrderedDict()  # task ids already taken (dedupe re-delivery)
        self.connects = 0
        self.refusals = 0  # streams the scheduler refused (bad or revoked token)
        self._registered_again = False  # see _register_again
        self.failed_attempts = 0  # connection attempts that never got a welcome
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._slots = asyncio.Semaphore(config.concurrency)
        self._outbox: asyncio.Queue[scheduler_pb2.ConnectRequest] | None = None
        self._pending_send: list[scheduler_pb2.TaskResult] = []
        self._flush_wakeup = asyncio.Event()
        self._heartbeat_s = 10.0
        self._all_acked = asyncio.Event()
        self._all_acked.set()
        self.scheduler_addrs = [a.strip() for a in config.scheduler_addr.split(",") if a.strip()]
        if not self.scheduler_addrs:
            raise ValueError("HOSTCHECK_SCHEDULER_ADDR is empty: give the scheduler's host:port")
        # Read once: unreadable TLS files fail at start, not at every reconnect.
        self._credentials = channel_credentials(config)
        self._addr_index = random.randrange(len(self.scheduler_addrs))
        self.scheduler_id = ""
        self.metrics: AgentMetrics | None = None
        if config.metrics_port:
            # Only when served: an agent without metrics loads no Prometheus code (~2-4 MB of RSS).
            from hostcheck.core.metrics import AgentMetrics

            self.metrics = AgentMetrics(
                connects=lambda: self.connects, refusals=lambda: self.refusals,
                unacked=lambda: len(self.unacked), pending=lambda: len(self._pending_send),
                running=lambda: len(self.running))

    # ---- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Connects and reconnects (randomised backoff) until `stop()`; serves metrics meanwhile."""
        server = None
        if self.metrics is not None:
            from hostcheck.core.metrics import serve_metrics

            server = await serve_metrics(self.metrics.registry, self.config.metrics_port)
        log.info("agent %s on the %s event loop", VERSION, type(asyncio.get_running_loop()).__module__.split(".")[0])
        # Before the first check, not inside its timings (issue 14: the first http check had 77 ms in no phase).
        warm_up(self.probers)
        try:
            await self._connect_loop()
        finally:
            if server is not None:
                await server.stop()

    async def register(self) -> Identity:
        """This agent's identity (registering if needed); afterwards it holds its own api token only."""
        self.identity = await ensure_identity(self.config, capabilities=sorted(self.probers), version=VERSION,
                                              stop=self._stopping)
        # The registration token's one job is done: it is not kept for the agent's lifetime.
        self.config = dataclasses.replace(self.config, registration_token="")
        return self.identity

    async def _register_again(self) -> bool:
        """Registers afresh once when the registry no longer knows this agent (a database restored
        from before it registered): without it every agent would be refused until someone deleted
        its state file on its node. Never for a revoked or replaced agent (the registry says so
        differently), and not again if the new identity is refused as well."""
        assert self.identity is not None
        if self._registered_again:
            return False
        self._registered_again = True
        old = self.identity.agent_id
        try:
            self.identity = await ensure_identity(self.config, capabilities=sorted(self.probers), version=VERSION,
                                                  stop=self._stopping, again=True)
        except IdentityError as exc:
            log.error("agent %s is unknown to the registry and cannot register again: %s", old, exc)
            return False
        log.warning("agent %s was unknown to the registry: registered again as %s", old, self.identity.agent_id)
        return True

    async def _connect_loop(self) -> None:
        await self.register()
        backoff = RECONNECT_SPREAD_S
        while not self._stopping.is_set():
            self.state = State.CONNECTING
            started = time.monotonic()
            connects_before = self.connects
            asked = False
            try:
                await self._session()
            except _Reconnect as exc:
                log.info("reconnecting: %s", exc)
                asked = exc.asked
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    self.refusals += 1
                    log.error("scheduler refused our token: %s", exc.details())
                    backoff = max(backoff, 5.0)
                    if UNKNOWN_AGENT in (exc.details() or "") and await self._register_again():
                        backoff = RECONNECT_SPREAD_S
                else:
                    log.warning("stream to %s failed: %s %s", self.scheduler_addr, exc.code().name, exc.details())
            except Exception as exc:  # noqa: BLE001 - e.g. a write racing the stream's end: reconnect, never die
                log.warning("stream to %s broke: %r", self.scheduler_addr, exc)
            finally:
                self.ready.clear()
                if self.connects == connects_before:
                    self.failed_attempts += 1
            if self._stopping.is_set():
                break
            # Next time, another replica (when there are several): this one failed or is draining.
            self._addr_index = (self._addr_index + 1) % len(self.scheduler_addrs)
            if asked or time.monotonic() - started > 30:
                # Asked to go, or it held for a while: reconnect soon, but not all at once.
                backoff = RECONNECT_SPREAD_S
            delay = random.uniform(0, backoff)  # full jitter spreads a herd of agents
            backoff = min(backoff * 2, 30.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        self.state = State.OFFLINE

    async def stop(self, *, drain_timeout_s: float | None = None) -> None:
        """Takes no new tasks, finishes running ones (up to the drain timeout), then disconnects."""
        timeout = self.config.drain_timeout_s if drain_timeout_s is None else drain_timeout_s
        self.state = State.DRAINING
        log.info("draining: finishing %d running task(s), taking no new ones", len(self.running))
        deadline = time.monotonic() + timeout
        if self.running:
            await asyncio.wait(list(self.running.values()), timeout=timeout)
        for task in self.running.values():
            task.cancel()
        # Give the scheduler until the deadline to acknowledge what we just sent.
        if self.unacked and self.ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_acked.wait(), max(0.0, deadline - time.monotonic()))
        self._stopping.set()

    # ---- one stream -----------------------------------------------------------------------

    @property
    def scheduler_addr(self) -> str:
        return self.scheduler_addrs[self._addr_index]

    async def _session(self) -> None:
        assert self.identity is not None
        metadata = (("x-agent-id", self.identity.agent_id),
                    ("authorization", f"Bearer {self.identity.api_token}"))
        async with open_channel(self.scheduler_addr, self._credentials) as channel:
            call = scheduler_pb2_grpc.AgentStreamServiceStub(channel).Connect(metadata=metadata)
            self._outbox = asyncio.Queue()
            await call.write(scheduler_pb2.ConnectRequest(hello=scheduler_pb2.AgentHello(
                version=VERSION, capabilities=sorted(self.probers), unacked_results=len(self.unacked))))
            first = await call.read()
            if first is grpc.aio.EOF or first.WhichOneof("message") != "welcome":
                raise _Reconnect("no welcome from the scheduler")
            self._heartbeat_s = first.welcome.heartbeat_interval_s or 10.0
            self.connects += 1
            self.scheduler_id = first.welcome.scheduler_id
            self.state = State.READY if self.state != State.DRAINING else State.DRAINING
            log.info("connected to scheduler %s as %s", first.welcome.scheduler_id, self.identity.agent_id)
            # Everything not yet acknowledged goes again: the previous stream may have lost it.
            if self.unacked:
                self._queue_results(list(self.unacked.values()))
            self.ready.set()
            helpers = [asyncio.create_task(self._writer(call)), asyncio.create_task(self._heartbeats()),
                       asyncio.create_task(self._flusher())]
            reader = asyncio.create_task(self._reader(call))
            stop = asyncio.create_task(self._stopping.wait())
            try:
                done, _ = await asyncio.wait([reader, stop, *helpers], return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    failure = task.exception() if task is not stop else None
                    if failure is not None:
                        raise failure
            finally:
                for task in (reader, stop, *helpers):
                    task.cancel()
                for task in (reader, stop, *helpers):
                    with contextlib.suppress(BaseException):
                        await task
                self._outbox = None
                self._pending_send.clear()
                call.cancel()

    async def _writer(self, call) -> None:
        assert self._outbox is not None
        while True:
            message = await self._outbox.get()
            await call.write(message)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_s)
            self._send(scheduler_pb2.ConnectRequest(heartbeat=scheduler_pb2.AgentHeartbeat(
                tasks_in_flight=len(self.running))))

    def _send(self, message: scheduler_pb2.ConnectRequest) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(message)

    async def _reader(self, call) -> None:
        while True:
            message = await call.read()
            if message is grpc.aio.EOF:
                raise _Reconnect("scheduler closed the stream")
            kind = message.WhichOneof("message")
            if kind == "tasks":
                for task in message.tasks.tasks:
                    self._start(task)
            elif kind == "ack":
                for task_id in message.ack.task_ids:
                    self.unacked.pop(task_id, None)
                if not self.unacked:
                    self._all_acked.set()
            elif kind == "cancel":
                for task_id in message.cancel.task_ids:
                    running = self.running.get(task_id)
                    if running is not None:
                        running.cancel()
            elif kind == "drain":
                raise _Reconnect(f"scheduler draining: {message.drain.reason}", asked=True)

    # ---- tasks and results ----------------------------------------------------------------

    def _start(self, task: scheduler_pb2.Task) -> None:
        if task.task_id in self.seen:
            # Re-delivered: running now, or its result is in unacked and will be resent.
            return
        self.seen[task.task_id] = None
        while len(self.seen) > 100_000:
            self.seen.popitem(last=False)
        self.running[task.task_id] = asyncio.create_task(self._run(task), name=f"task-{task.task_id}")

    async def _run(self, task: scheduler_pb2.Task) -> None:
        deadline = task.deadline
        try:
            if self.state == State.DRAINING:
                result = refused(task, "agent_draining", "agent is shutting down")
            # In nanoseconds, without datetimes or protobuf's checked ToNanoseconds (2.5 -> 0.5 us a task).
            elif deadline.seconds and deadline.seconds * 1_000_000_000 + deadline.nanos < time.time_ns():
                # Arrived after its deadline (e.g. held up by a reconnect): the check has moved on.
                result = refused(task, "expired", "task arrived after its deadline")
            else:
                async with self._slots:
                    progress = ProgressReporter(task, self._send_progress)
                    progress.started()
                    try:
                        result = await run_task(task, self.guard, self.probers, self.probe_settings,
                                                progress=progress)
                    finally:
                        progress.close()
                if self.metrics is not None:
                    self.metrics.observe_probe(result)
        except asyncio.CancelledError:
            self.running.pop(task.task_id, None)
            raise
        self.running.pop(task.task_id, None)
        self.unacked[task.task_id] = result
        self._all_acked.clear()
        self._queue_results([result])

    def _send_progress(self, progress: scheduler_pb2.TaskProgress) -> None:
        """Progress goes up at once and only on the current stream: it is not kept, the result supersedes it."""
        self._send(scheduler_pb2.ConnectRequest(progress=scheduler_pb2.ProgressBatch(progress=[progress])))

    def _queue_results(self, results: list[scheduler_pb2.TaskResult]) -> None:
        self._pending_send.extend(results)
        self._flush_wakeup.set()

    async def _flusher(self) -> None:
        """Sends results in batches: up to result_batch_size, waiting at most result_flush_ms (see flush_delay)."""
        size = self.config.result_batch_size
        linger = self.config.result_flush_ms / 1000.0
        last_flush = -math.inf
        while True:
            await self._flush_wakeup.wait()
            delay = flush_delay(len(self._pending_send), size, linger, time.monotonic() - last_flush)
            if delay > 0:
                await asyncio.sleep(delay)
            self._flush_wakeup.clear()
            last_flush = time.monotonic()
            while self._pending_send:
                batch, self._pending_send = self._pending_send[:size], self._pending_send[size:]
                self._send(scheduler_pb2.ConnectRequest(results=scheduler_pb2.ResultBatch(results=batch)))
