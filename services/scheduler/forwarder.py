"""Results from every agent stream on this replica, stored by the results service in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from hostcheck.services.scheduler.sessions import AgentSession
from hostcheck.services.storage.livestate import LiveState
from hostcheck.v1 import results_pb2, results_pb2_grpc, scheduler_pb2

log = logging.getLogger(__name__)

# Live-state updates sent at once after a stored batch (one per agent).
FORGET_AT_ONCE = 32


@dataclass
class _Pending:
    agent_id: str
    result: scheduler_pb2.TaskResult
    session: AgentSession  # where the ack goes


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
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task] = set()

    def submit(self, agent_id: str, results: Iterable[scheduler_pb2.TaskResult], session: AgentSession) -> None:
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
