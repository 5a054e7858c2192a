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
    await asyncio.wait_for(forwarder.join(), 5)


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
    await asyncio.wait_for(forwarder.join(), 5)
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
    await asyncio.wait_for(forwarder.join(), 5)
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
    await asyncio.wait_for(forwarder.join(), 10)
    assert ingest.calls == [["a1"], ["a1"], ["a2"]]


def delivered(forwarder: ResultForwarder, check_id: str, *task_ids: str) -> None:
    """The tasks went down agents' streams here (AgentSessions.deliver tells the forwarder)."""
    for t in task_ids:  # one agent each
        forwarder.expect(scheduler_pb2.TaskBatch(tasks=[scheduler_pb2.Task(task_id=t, check_id=check_id,
                                                                           timeout_ms=5000)]))


@pytest.fixture
async def patient(ingest, live):
    """A forwarder whose results wait for their siblings far longer than any test lasts."""
    made = ResultForwarder(ingest, live, sibling_wait_s=3600)
    task = asyncio.create_task(made.run())
    yield made
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_a_checks_results_wait_for_their_siblings_and_go_in_one_call(patient, ingest):
    """A small check's results from several agents go in one RecordResults call, not one each
    (issue 17): each waits while tasks of its check delivered here have no result yet."""
    one, two, three = session(), session(), session()
    delivered(patient, "A", "a1", "a2", "a3")
    patient.submit(one.agent_id, of_check("A", "a1"), one)
    await assert_eventually(lambda: len(patient._waiting.get("A", ())) == 1, timeout=5, message="a1 waits")
    patient.submit(two.agent_id, of_check("A", "a2"), two)
    await assert_eventually(lambda: len(patient._waiting.get("A", ())) == 2, timeout=5, message="a2 waits")
    assert ingest.calls == []
    patient.submit(three.agent_id, of_check("A", "a3"), three)  # the last: all go now
    await asyncio.wait_for(patient.join(), 5)
    assert ingest.calls == [["a1", "a2", "a3"]]
    assert [await acked(one), await acked(two), await acked(three)] == [["a1"], ["a2"], ["a3"]]
    assert not patient._siblings and not patient._waiting


async def test_results_without_siblings_outstanding_here_do_not_wait(patient, ingest):
    """Results of checks whose other tasks went through other replicas (or were all answered) go at once."""
    s = session()
    delivered(patient, "A", "a1")
    patient.submit(s.agent_id, of_check("A", "a1") + of_check("B", "b1") + results("plain"), s)
    await asyncio.wait_for(patient.join(), 5)
    assert ingest.calls == [["a1", "b1", "plain"]]


async def test_a_lagging_sibling_holds_the_others_no_longer_than_the_bound(ingest, live):
    """The wait is bounded, from the check's first result: those that came go without the lagging
    one, and the lagging one, when it comes, goes at once."""
    forwarder = ResultForwarder(ingest, live, sibling_wait_s=0.05)
    runner = asyncio.create_task(forwarder.run())
    try:
        s, slow = session(), session()
        delivered(forwarder, "A", "a1", "a2", "a3")
        forwarder.submit(s.agent_id, of_check("A", "a1", "a2"), s)  # a3's agent is slow
        assert await acked(s) == ["a1", "a2"]
        assert ingest.calls == [["a1", "a2"]]
        forwarder.submit(slow.agent_id, of_check("A", "a3"), slow)
        assert await acked(slow) == ["a3"]
        assert ingest.calls == [["a1", "a2"], ["a3"]]
        assert not forwarder._siblings and not forwarder._waiting
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner


async def test_the_oldest_checks_outstanding_are_forgotten_beyond_the_limit(patient, ingest, monkeypatch):
    """Tasks whose results never come here (agent gone) are not remembered for ever."""
    import hostcheck.services.scheduler.forwarder as forwarder_module
    monkeypatch.setattr(forwarder_module, "SIBLING_CHECKS_MAX", 2)
    s = session()
    delivered(patient, "A", "a1", "a2")
    delivered(patient, "B", "b1", "b2")
    delivered(patient, "C", "c1", "c2")  # A is forgotten: its results no longer wait
    assert list(patient._siblings) == ["B", "C"]
    patient.submit(s.agent_id, of_check("A", "a1"), s)
    await asyncio.wait_for(patient.join(), 5)
    assert ingest.calls == [["a1"]]


async def test_results_held_for_busy_checks_keep_their_agents_together(ingest, live):
    """While a call is out for checks A-D, results of a burst touching the same checks wait in the
    order they came, not sorted by check: each agent's results go in one call with one ack (sorted by
    check, every call held one result of each of hundreds of agents: an ack per result, issue 17)."""
    forwarder = ResultForwarder(ingest, live, max_batch=4)
    runner = asyncio.create_task(forwarder.run())
    try:
        agents = [session() for _ in range(3)]
        ingest.gate.clear()
        mine = [[f"{c}{i}" for c in "ABCD"] for i in range(3)]
        forwarder.submit(agents[0].agent_id, [r for t in mine[0] for r in of_check(t[0], t)], agents[0])
        await assert_eventually(lambda: len(ingest.calls) == 1, timeout=5, message="first call out")
        for i in (1, 2):
            forwarder.submit(agents[i].agent_id, [r for t in mine[i] for r in of_check(t[0], t)], agents[i])
        ingest.gate.set()
        await asyncio.wait_for(forwarder.join(), 5)
        assert ingest.calls == mine
        for i in range(3):
            assert await acked(agents[i]) == mine[i]
            assert agents[i].outbox.empty(), "one ack per agent"
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
