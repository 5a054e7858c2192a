"""Results from every agent stream on this replica, stored by the results service in batches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass

import grpc

from hostcheck.services.scheduler.sessions import AgentSession
from hostcheck.services.storage.livestate import LiveState
from hostcheck.v1 import results_pb2, results_pb2_grpc, scheduler_pb2

log = logging.getLogger(__name__)

# How long a result waits for the results of its siblings (the tasks of its check this replica
# delivered to its agents' streams, still outstanding) to go with them in one RecordResults call,
# counted from the first result of the check. Waiting longer than a RecordResults call of a small
# check lasts (4-8 ms here) gains nothing: a sibling arriving later goes in the next call anyway,
# held while the check's call is in flight (issue 17). Only the check's own results wait, and
# none beyond this after its first: a slow agent never holds the others longer.
SIBLING_WAIT_S = 0.004
# Stored results' tasks are removed from live state's in-flight record this long after, together
# (see ResultForwarder._forget).
FORGET_DELAY_S = 0.1
# Checks whose outstanding tasks are remembered at most (the oldest are forgotten first), and how
# long past a task's timeout a check none of whose results came here is remembered.
SIBLING_CHECKS_MAX = 20_000
SIBLING_KEEP_S = 60.0
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


@dataclass
class _Siblings:
    """A check's tasks delivered down this replica's streams whose results have not come yet."""

    outstanding: set[str]
    forget_at: float  # loop time after which the entry is dropped even if results are missing
    wait_until: float | None = None  # set by the check's first result: its results wait until then


class ResultForwarder:
    """Batches results from every stream into RecordResults calls; retries until stored.

    An agent keeps a result until acknowledged, so an ack goes out only after
    the results service answered for it: stored, stored quarantined, or tied to no
    task (unknown, e.g. deleted, or rejected). The service judges each result on
    its own, so one bad result never fails the batch it came in.

    A result goes at once when a call slot is free; while `max_in_flight` calls
    are out, results gather, so batches grow with load instead of every result
    waiting for a timer.

    A result whose check has a call in flight waits for that call to end and then goes with the
    others of its check that came meanwhile, in one call: the results service serialises a check's
    writes on its row lock, so a second call would only have waited there, and one transaction
    per check is cheaper than one per result (issue 17: three agents' results of one check were
    three transactions one after another, most of create -> completed). Once max_batch results
    wait so and nothing else can go, they go in the free slot beside the busy call (`_take_held`):
    in a burst whose every batch touches the same checks, the results service then judges and
    encodes the next call while the current one writes.

    For the same reason a result whose siblings are still outstanding (tasks of its check that
    this replica delivered to its agents, `expect`) waits for them, at most `sibling_wait_s` after
    the check's first result arrived (SIBLING_WAIT_S), so a small check's results go in one call.
    """

    def __init__(self, results: results_pb2_grpc.ResultsIngestServiceStub, live: LiveState, *,
                 max_batch: int = 500, max_in_flight: int = 2, call_timeout_s: float = 30.0,
                 sibling_wait_s: float = SIBLING_WAIT_S) -> None:
        self.results = results
        self.live = live
        self.call_timeout_s = call_timeout_s
        self.sibling_wait_s = sibling_wait_s
        self.dropped = 0  # results the results service kept refusing (see _record)
        self.max_batch = max_batch
        self._incoming: deque[_Pending] = deque()  # results as they came, not yet taken for a call
        self._wake = asyncio.Event()  # set when there may be something to send (see run)
        self._unfinished = 0  # results submitted whose call has not ended
        self._finished = asyncio.Event()  # set while _unfinished is 0 (see join)
        self._finished.set()
        self._slots = asyncio.Semaphore(max_in_flight)
        self._in_flight: set[asyncio.Task] = set()
        self._busy: Counter[str] = Counter()  # check id -> calls in flight with results of it
        self._held: dict[str, list[_Pending]] = {}  # check id -> results waiting for its call to end
        self._waiting: dict[str, list[_Pending]] = {}  # check id -> results waiting for their siblings
        self._parked = 0  # results in _held and _waiting
        self._ready: deque[_Pending] = deque()  # results whose wait ended: sent first
        self._siblings: dict[str, _Siblings] = {}  # check id -> its tasks outstanding here (oldest first)
        self._forgotten: dict[str, list[str]] = {}  # agent id -> stored tasks to remove from in-flight (_forget)
        self._forgetting: asyncio.TimerHandle | None = None
        self._forgetters: set[asyncio.Future] = set()

    def pending(self) -> int:
        """Results received and not yet sent to the results service."""
        return len(self._incoming) + self._parked + len(self._ready)

    async def join(self) -> None:
        """Returns once every result submitted so far has had its call end (stored, or dropped)."""
        await self._finished.wait()

    def expect(self, batch: scheduler_pb2.TaskBatch) -> None:
        """Tasks just delivered down an agent's stream here: their results will come through here."""
        if self.sibling_wait_s <= 0:
            return
        now = asyncio.get_running_loop().time()
        siblings = self._siblings
        while siblings:  # forget the oldest checks whose results did not all come (agent gone, task lost)
            oldest = next(iter(siblings))
            if siblings[oldest].forget_at > now:
                break
            del siblings[oldest]
        for task in batch.tasks:
            if not task.check_id:
                continue
            forget_at = now + task.timeout_ms / 1000 + SIBLING_KEEP_S
            entry = siblings.get(task.check_id)
            if entry is None:
                if len(siblings) >= SIBLING_CHECKS_MAX:
                    del siblings[next(iter(siblings))]
                siblings[task.check_id] = _Siblings({task.task_id}, forget_at)
            else:
                entry.outstanding.add(task.task_id)
                entry.forget_at = max(entry.forget_at, forget_at)

    def submit(self, agent_id: str, results: Iterable[scheduler_pb2.TaskResult], session: AgentSession) -> None:
        siblings, incoming = self._siblings, self._incoming
        n = len(incoming)
        for r in results:
            incoming.append(_Pending(agent_id, r, session))
            entry = siblings.get(r.check_id) if siblings else None
            if entry is None:
                continue
            entry.outstanding.discard(r.task_id)
            if entry.wait_until is None:
                entry.wait_until = asyncio.get_running_loop().time() + self.sibling_wait_s
            if not entry.outstanding:  # the last sibling: those waiting for it go now, with it
                del siblings[r.check_id]
                self._stop_waiting(r.check_id)
        if len(incoming) > n:
            self._unfinished += len(incoming) - n
            self._finished.clear()
            self._wake.set()

    def _stop_waiting(self, check_id: str) -> None:
        """The check's results wait no more: its last sibling came, or the wait is over (then the
        check is forgotten: its later results go at once)."""
        self._siblings.pop(check_id, None)
        waiting = self._waiting.pop(check_id, None)
        if waiting:
            self._parked -= len(waiting)
            self._ready.extend(waiting)
            self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                await self._slots.acquire()
                while not (batch := self._take()):
                    self._wake.clear()
                    await self._wake.wait()
                task = asyncio.create_task(self._store_batch(batch))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
        finally:
            for task in list(self._in_flight):
                task.cancel()
            if self._forgetting is not None:  # what waited to be forgotten goes now
                self._forgetting.cancel()
                self._forget_now()

    def _take(self) -> list[_Pending]:
        """The next call's results: those whose wait ended first, then the others in the order they
        came; a result of a check with a call in flight is held for it, and one whose siblings are
        outstanding waits for them (see the class). At most max_batch wait so: beyond that, results
        stay in arrival order until a call ends (else every result of a burst touching the same
        checks would be held, and come back sorted by check: a call per check with an ack per
        agent in each, issue 17)."""
        batch: list[_Pending] = []
        ready, incoming, busy = self._ready, self._incoming, self._busy
        while ready and len(batch) < self.max_batch:
            p = ready.popleft()  # waited already: held ones only while their check is busy again
            if busy.get(p.result.check_id):
                self._park(self._held, p)
            else:
                batch.append(p)
        now = -1.0
        while incoming and len(batch) < self.max_batch and self._parked < self.max_batch:
            p = incoming.popleft()
            check_id = p.result.check_id
            if not check_id:
                batch.append(p)
            elif busy.get(check_id):
                self._park(self._held, p)
            elif (entry := self._siblings.get(check_id)) is not None and entry.wait_until is not None:
                if now < 0:
                    now = asyncio.get_running_loop().time()
                if now < entry.wait_until:
                    if check_id not in self._waiting:
                        asyncio.get_running_loop().call_at(entry.wait_until, self._stop_waiting, check_id)
                    self._park(self._waiting, p)
                else:
                    del self._siblings[check_id]  # its wait is over
                    batch.append(p)
            else:
                batch.append(p)
        if not batch and self._parked >= self.max_batch and self._held:
            self._take_held(batch)
        for check_id in {p.result.check_id for p in batch}:
            if check_id:
                busy[check_id] += 1
        return batch

    def _take_held(self, batch: list[_Pending]) -> None:
        """A free slot, nothing else to send and a full backlog held behind busy checks (a burst whose
        every batch touches the same checks): the held results go now, beside their checks' calls, the
        oldest first. The results service takes a check's writes one at a time still, but it judges
        and encodes this call while the other one is in Postgres, and its write waits in Postgres,
        not behind a call (issue 17: held, the writes and the Python around them ran one after the
        other). At most max_batch, so a call carries whole agents' runs as they came."""
        held = self._held
        for check_id in list(held):
            room = self.max_batch - len(batch)
            if room <= 0:
                break
            results = held[check_id]
            batch.extend(results[:room])
            if len(results) > room:
                held[check_id] = results[room:]
            else:
                del held[check_id]
            self._parked -= min(room, len(results))

    def _park(self, where: dict[str, list[_Pending]], p: _Pending) -> None:
        where.setdefault(p.result.check_id, []).append(p)
        self._parked += 1

    def _release(self, batch: list[_Pending]) -> None:
        """The call of `batch` ended: the results held for its checks go next."""
        for check_id in dict.fromkeys(p.result.check_id for p in batch):  # held ones go back in order
            if not check_id:
                continue
            self._busy[check_id] -= 1
            if self._busy[check_id] <= 0:
                del self._busy[check_id]
                held = self._held.pop(check_id, None)
                if held:
                    self._parked -= len(held)
                    self._ready.extend(held)
        self._wake.set()

    async def _store_batch(self, batch: list[_Pending]) -> None:
        try:
            by_agent = await self._store(batch)
        finally:
            self._release(batch)
            self._slots.release()
            self._unfinished -= len(batch)
            if not self._unfinished:
                self._finished.set()
        # Off the critical path: the acks are out and the next call may go.
        if by_agent:
            self._forget(by_agent)

    def _forget(self, by_agent: dict[str, list[str]]) -> None:
        """Removes stored results' tasks from live state's in-flight record, FORGET_DELAY_S later
        together with those of the calls that ended meanwhile: one live-state call per agent was a
        third of the scheduler's CPU while ingesting, and one per call most of the rest (issue 17)."""
        for agent_id, task_ids in by_agent.items():
            self._forgotten.setdefault(agent_id, []).extend(task_ids)
        if self._forgetting is None:
            self._forgetting = asyncio.get_running_loop().call_later(FORGET_DELAY_S, self._forget_now)

    def _forget_now(self) -> None:
        self._forgetting = None
        forgotten, self._forgotten = self._forgotten, {}
        task = asyncio.ensure_future(self._remove_inflight(forgotten))
        self._forgetters.add(task)
        task.add_done_callback(self._forgetters.discard)

    async def _remove_inflight(self, by_agent: dict[str, list[str]]) -> None:
        with contextlib.suppress(Exception):  # advisory: a Redis blip must not stop storing results
            await self.live.remove_inflight_many(by_agent)

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
