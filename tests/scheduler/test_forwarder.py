"""The result forwarder: batches into RecordResults, retries while the results service is down,
acks only what the service answered for, isolates what it refuses, and keeps at most two calls out."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import pytest

from hostcheck.services.scheduler.forwarder import PERMANENT_TRIES, ResultForwarder
from hostcheck.services.scheduler.sessions import AgentSession
from hostcheck.v1 import results_pb2, scheduler_pb2
from tests.helpers import assert_eventually
from tests.scheduler.conftest import make_agent, rpc_error


class ResultsIngest:
    """The results service's RecordResults: stores everything unless told otherwise."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.failures: list[grpc.aio.AioRpcError] = []  # raised by the next calls, in order
        self.unknown: set[str] = set()  # answered as unknown (e.g. their check was deleted)
        self.lost: set[str] = set()  # answered as neither stored nor unknown
        self.gate = asyncio.Event()
        self.gate.set()
        self.running = 0
        self.most_running = 0

    async def RecordResults(self, request, timeout=None):
        task_ids = [r.result.task_id for r in request.results]
        self.calls.append(task_ids)
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        if self.failures:
            raise self.failures.pop(0)
        return results_pb2.RecordResultsResponse(
            stored_task_ids=[t for t in task_ids if t not in self.unknown | self.lost],
            unknown_task_ids=[t for t in task_ids if t in self.unknown])


def results(*task_ids: str) -> list[scheduler_pb2.TaskResult]:
    return [scheduler_pb2.TaskResult(task_id=t, success=True) for t in task_ids]


async def acked(session: AgentSession) -> list[str]:
    message = await asyncio.wait_for(session.outbox.get(), 5)
    assert message is not None and message.WhichOneof("message") == "ack", message
    return list(message.ack.task_ids)


@pytest.fixture
def ingest():
    return ResultsIngest()


@pytest.fixture
async def forwarder(ingest, live):
    made = ResultForwarder(ingest, live)
    task = asyncio.create_task(made.run())
    yield made
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def session() -> AgentSession:
    agent = make_agent()
    return AgentSession(agent_id=agent.agent_id, agent=agent)


async def test_stored_results_are_acked_and_leave_the_in_flight_list(forwarder, ingest, live):
    s = session()
    await live.add_inflight({s.agent_id: {"t1": 1.0, "t2": 2.0, "t3": 3.0}})
    forwarder.submit(s.agent_id, results("t1", "t2"), s)
    assert await acked(s) == ["t1", "t2"]
    assert ingest.calls == [["t1", "t2"]]
    await assert_eventually(lambda: _inflight_is(live, s.agent_id, {"t3": 3.0}), timeout=5, message="forgotten")
    await asyncio.wait_for(forwarder.queue.join(), 5)


async def _inflight_is(live, agent_id: str, expected: dict[str, float]) -> bool:
    return await live.inflight(agent_id) == expected


async def test_results_are_held_and_retried_while_the_results_service_is_down(forwarder, ingest):
    s = session()
    ingest.failures = [rpc_error(grpc.StatusCode.UNAVAILABLE), rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED)]
    forwarder.submit(s.agent_id, results("t1"), s)
    assert await acked(s) == ["t1"]
    assert ingest.calls == [["t1"], ["t1"], ["t1"]]


async def test_a_result_refused_again_and_again_is_acked_so_the_agent_stops_resending_it(forwarder, ingest):
    s = session()
    ingest.failures = [rpc_error(grpc.StatusCode.INVALID_ARGUMENT, "results[0].agent_id: is not a UUID")
                       for _ in range(PERMANENT_TRIES)]
    forwarder.submit(s.agent_id, results("t1"), s)
    assert await acked(s) == ["t1"]
    assert ingest.calls == [["t1"]] * PERMANENT_TRIES, "tried a few times, not forever"
    assert forwarder.dropped == 1


async def test_a_refused_batch_is_split_and_the_rest_stored(forwarder, ingest):
    """A batch refused as a whole no longer acks (and loses) the good results in it."""
    s = session()
    ingest.failures = [rpc_error(grpc.StatusCode.INTERNAL, "internal error")]
    forwarder.submit(s.agent_id, results("t1", "t2", "t3", "t4"), s)
    assert await acked(s) == ["t1", "t2", "t3", "t4"]
    assert ingest.calls == [["t1", "t2", "t3", "t4"], ["t1", "t2"], ["t3", "t4"]]
    assert forwarder.dropped == 0


async def test_only_stored_or_unknown_results_are_acked(forwarder, ingest):
    s = session()
    ingest.unknown, ingest.lost = {"deleted"}, {"lost"}
    forwarder.submit(s.agent_id, results("kept", "deleted", "lost"), s)
    assert await acked(s) == ["kept", "deleted"]


async def test_each_agent_gets_the_acks_of_its_own_results(forwarder, ingest):
    one, two = session(), session()
    ingest.gate.clear()
    forwarder.submit(one.agent_id, results("a"), one)
    await assert_eventually(lambda: len(ingest.calls) == 1, timeout=5, message="first call out")
    forwarder.submit(one.agent_id, results("b"), one)
    forwarder.submit(two.agent_id, results("c"), two)
    ingest.gate.set()
    assert await acked(one) == ["a"]
    assert await acked(one) == ["b"]
    assert await acked(two) == ["c"]
    assert ingest.calls == [["a"], ["b", "c"]]


async def test_two_calls_at_most_while_results_gather_into_the_next_batch(forwarder, ingest):
    s = session()
    ingest.gate.clear()
    forwarder.submit(s.agent_id, results("r1"), s)
    await assert_eventually(lambda: len(ingest.calls) == 1, timeout=5, message="first call out")
    forwarder.submit(s.agent_id, results("r2"), s)
    await assert_eventually(lambda: len(ingest.calls) == 2, timeout=5, message="second call out")
    later = [f"r{i}" for i in range(3, 13)]
    forwarder.submit(s.agent_id, results(*later), s)
    ingest.gate.set()
    await asyncio.wait_for(forwarder.queue.join(), 5)
    assert ingest.calls == [["r1"], ["r2"], later], "the ten waiting results went in one call"
    assert ingest.most_running == 2


def of_check(check_id: str, *task_ids: str) -> list[scheduler_pb2.TaskResult]:
    return [scheduler_pb2.TaskResult(task_id=t, check_id=check_id, success=True) for t in task_ids]


async def test_a_checks_results_wait_for_its_call_in_flight_then_go_together(forwarder, ingest):
    """The results service serialises a check's writes on its row lock: a second call for the same
    check would only wait there, so its results wait here and go in one call (issue 17). Results of
    other checks take the free slot at once."""
    s = session()
    ingest.gate.clear()
    forwarder.submit(s.agent_id, of_check("A", "a1"), s)
    await assert_eventually(lambda: ingest.calls == [["a1"]], timeout=5, message="first call out")
    forwarder.submit(s.agent_id, of_check("A", "a2") + of_check("B", "b1") + of_check("A", "a3"), s)
    await assert_eventually(lambda: ingest.calls == [["a1"], ["b1"]], timeout=5, message="B not held")
    ingest.gate.set()
    await asyncio.wait_for(forwarder.queue.join(), 5)
    assert ingest.calls == [["a1"], ["b1"], ["a2", "a3"]]
    assert sorted([*await acked(s), *await acked(s), *await acked(s)]) == ["a1", "a2", "a3", "b1"]
    assert not forwarder._busy and not forwarder._held and not forwarder._ready


async def test_held_results_survive_a_failed_call_of_their_check(forwarder, ingest):
    """A call that fails transiently is retried while the check's other results wait; all are stored."""
    s = session()
    ingest.gate.clear()
    ingest.failures = [rpc_error(grpc.StatusCode.UNAVAILABLE)]
    forwarder.submit(s.agent_id, of_check("A", "a1"), s)
    await assert_eventually(lambda: len(ingest.calls) == 1, timeout=5, message="first call out")
    forwarder.submit(s.agent_id, of_check("A", "a2"), s)
    ingest.gate.set()
    await asyncio.wait_for(forwarder.queue.join(), 10)
    assert ingest.calls == [["a1"], ["a1"], ["a2"]]
