"""Results from every agent stream on this replica, stored by the results service in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from hostcheck.services.scheduler.sessions import AgentSession
from hostcheck.services.storage.livestate import LiveState
from hostcheck.v1 import results_pb2, results_pb2_grpc, scheduler_pb2

log = logging.getLogger(__name__)

# Live-state updates sent at once after a stored batch (one per agent).
FORGET_AT_ONCE = 32
# Errors after which the same call may succeed later: the results service or its database is
# down, busy or slow. Retried while they last, with backoff.
TRANSIENT = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                       grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED})
# A single result refused with any other error (a bug, not an outage) is tried this often, then dropped.
PERMANENT_TRIES = 3
BACKOFF_BASE_S = 0.1
BACKOFF_MAX_S = 5.0


def backoff_s(attempt: int) -> float:
    """Seconds before retry `attempt` (1, 2, ...): doubling up to BACKOFF_MAX_S, the upper half jittered,
    so replicas retrying after one outage do not all call at once."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


@dataclass
class _Pending:
    agent_id: str
    result: scheduler_pb2.TaskResult
    session: AgentSession  # where the ack goes


class ResultForwarder:
    """Batches results from every stream into RecordResults calls; retries until stored.

    An agent keeps a result until acknowledged, so an ack goes out only after
    the results service answered for it: stored, stored quarantined, or tied to no
    task (unknown, e.g. deleted, or rejected). The service judges each result on
    its own, so one bad result never fails the batch it came in.

    A result goes at once when a call slot is free; while `max_in_flight` calls
    are out, results gather in the queue, so batches grow with load instead of
    every result waiting for a timer.

    A result whose check has a call in flight waits for that call to end and then goes with the
    others of its check that came meanwhile, in one call: the results service serialises a check's
    writes on its row lock, so a second call would only have waited there, and one transaction
    per check is cheaper than one per result (issue 17: three agents' results of one check were
    three transactions one after another, most of create -> completed).
    """

    def __init__(self, results: results_pb2_grpc.ResultsIngestServiceStub, live: LiveState, *,
                 max_batch: int = 500, max_in_flight: int = 2, call_timeout_s: float = 30.0) -> None:
        self.results = results
        self.live = live
        self.call_timeout_s = call_timeout_s
        self.dropped = 0  # results the results service kept refusing (see _record)
        # Results to store; None wakes run() for results released from holding (see _take).
        self.queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        self.max_batch = max_batch
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task] = set()
        self._busy: Counter[str] = Counter()  # check id -> calls in flight with results of it
        self._held: dict[str, list[_Pending]] = {}  # check id -> results waiting for its call to end
        self._ready: list[_Pending] = []  # held results whose check's call ended: sent first

    def submit(self, agent_id: str, results: Iterable[scheduler_pb2.TaskResult], session: AgentSession) -> None:
        for r in results:
            self.queue.put_nowait(_Pending(agent_id, r, session))

    async def run(self) -> None:
        try:
            while True:
                first = await self.queue.get()
                await self._slots.acquire()
                batch = self._take(first)
                if not batch:
                    self._slots.release()
                    continue
                task = asyncio.create_task(self._store_batch(batch))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
        finally:
            for task in list(self._in_flight):
                task.cancel()

    def _take(self, first: _Pending | None) -> list[_Pending]:
        """The next call's results: those released by ended calls first, then the queue's; a result
        of a check with a call in flight is held for it (see the class). Every result taken off the
        queue stays unfinished (queue.join) until its call ends."""
        candidates, self._ready = self._ready[:self.max_batch], self._ready[self.max_batch:]
        if self._ready:
            self.queue.put_nowait(None)  # more released than one call takes: come round again
        if first is None:
            self.queue.task_done()
        else:
            candidates.append(first)
        while len(candidates) < self.max_batch and not self.queue.empty():
            p = self.queue.get_nowait()
            if p is None:
                self.queue.task_done()
            else:
                candidates.append(p)
        batch: list[_Pending] = []
        for p in candidates:
            check_id = p.result.check_id
            if check_id and self._busy[check_id]:
                self._held.setdefault(check_id, []).append(p)
            else:
                batch.append(p)
        for check_id in {p.result.check_id for p in batch if p.result.check_id}:
            self._busy[check_id] += 1
        return batch

    def _release(self, batch: list[_Pending]) -> None:
        """The call of `batch` ended: the results held for its checks go next."""
        released = False
        for check_id in {p.result.check_id for p in batch if p.result.check_id}:
            self._busy[check_id] -= 1
            if self._busy[check_id] <= 0:
                del self._busy[check_id]
                held = self._held.pop(check_id, None)
                if held:
                    self._ready.extend(held)
                    released = True
        if released:
            self.queue.put_nowait(None)  # wakes run()

    async def _store_batch(self, batch: list[_Pending]) -> None:
        try:
            by_agent = await self._store(batch)
        finally:
            self._release(batch)
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
        done = await self._record(batch)
        acks: dict[int, tuple[AgentSession, list[str]]] = {}
        by_agent: dict[str, list[str]] = {}
        for p in batch:
            if p.result.task_id not in done:
                continue
            by_agent.setdefault(p.agent_id, []).append(p.result.task_id)
            acks.setdefault(id(p.session), (p.session, []))[1].append(p.result.task_id)
        for session, task_ids in acks.values():
            session.send(scheduler_pb2.ConnectResponse(ack=scheduler_pb2.ResultAck(task_ids=task_ids)))
        return by_agent

    async def _record(self, batch: list[_Pending]) -> set[str]:
        """The task ids the results service answered for (stored, quarantined, unknown, rejected): to ack.

        A transient error is retried with backoff and jitter while it lasts (the agents hold these
        results too; dropping them would lose them). A batch that timed out is halved first, in
        case it is too big to store in time. Any other error belongs to the batch: it is halved
        until the result that causes it is alone, and that one, refused PERMANENT_TRIES times, is
        logged and acknowledged (dropped), so no result is retried forever and none holds up others.
        """
        attempt = 0
        while True:
            request = results_pb2.RecordResultsRequest(results=[
                results_pb2.AgentResult(agent_id=p.agent_id, result=p.result) for p in batch])
            try:
                reply = await self.results.RecordResults(request, timeout=self.call_timeout_s)
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                attempt += 1
                if len(batch) > 1 and (code not in TRANSIENT or code == grpc.StatusCode.DEADLINE_EXCEEDED):
                    log.warning("results service: %s for a batch of %d result(s); splitting it", code.name, len(batch))
                    half = len(batch) // 2
                    return await self._record(batch[:half]) | await self._record(batch[half:])
                if code not in TRANSIENT and attempt >= PERMANENT_TRIES:
                    p = batch[0]
                    self.dropped += 1
                    log.error("results service refused the result of task %.64r from agent %s %d times (%s: %.200s); "
                              "acknowledged and dropped", p.result.task_id, p.agent_id, attempt, code.name,
                              exc.details())
                    return {p.result.task_id}
                if attempt == 1 or attempt % 10 == 0:
                    log.warning("results service %s (%s: %.200s); holding %d result(s), retry %d",
                                "unavailable" if code in TRANSIENT else "refused a result", code.name,
                                exc.details(), len(batch), attempt)
                await asyncio.sleep(backoff_s(attempt))
                continue
            return (set(reply.stored_task_ids) | set(reply.unknown_task_ids) | set(reply.quarantined_task_ids)
                    | set(reply.rejected_task_ids))


# A task's progress is forwarded at most this often (agents send at most every 0.5 s; a little
# slack for jitter on the way), so one agent cannot flood the watchers of a check.
PROGRESS_MIN_INTERVAL_S = 0.4
# Progress waiting to be forwarded beyond this is dropped (the results service is slow or down).
PROGRESS_QUEUE_LIMIT = 10_000


class ProgressForwarder:
    """Forwards running tasks' progress to the results service in batches, best effort.

    Progress is not kept by the agent and needs no ack: a lost one is superseded by the next,
    and by the result. Starts are always forwarded (they mark the task running); other
    progress of a task at most every PROGRESS_MIN_INTERVAL_S.
    """

    def __init__(self, results: results_pb2_grpc.ResultsIngestServiceStub, *, max_batch: int = 500) -> None:
        self.results = results
        self.max_batch = max_batch
        self._queue: list[results_pb2.AgentProgress] = []
        self._wakeup = asyncio.Event()
        self._last: dict[str, float] = {}  # task id -> when its last progress was forwarded

    def submit(self, agent_id: str, progress: Iterable[scheduler_pb2.TaskProgress]) -> None:
        now = asyncio.get_running_loop().time()
        for p in progress:
            if not p.started and now - self._last.get(p.task_id, -1e9) < PROGRESS_MIN_INTERVAL_S:
                continue
            if len(self._queue) >= PROGRESS_QUEUE_LIMIT:
                return
            if not p.started:  # a start is no step: the first step may follow it at once
                self._last[p.task_id] = now
            self._queue.append(results_pb2.AgentProgress(agent_id=agent_id, progress=p))
        if len(self._last) > 2 * PROGRESS_QUEUE_LIMIT:
            self._last = {t: at for t, at in self._last.items() if now - at < PROGRESS_MIN_INTERVAL_S}
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                try:
                    await self.results.RecordProgress(results_pb2.RecordProgressRequest(progress=batch), timeout=10)
                except grpc.aio.AioRpcError as exc:
                    log.warning("progress of %d task(s) not forwarded: %s", len(batch), exc.code().name)
