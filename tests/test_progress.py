"""Live task progress: the agent's reporter (start, then steps at most every 500 ms), the probers'
steps (ping per reply, traceroute per hop), and the results store's `running` status."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime

import pytest
from icmplib import ICMPv4Socket, SocketPermissionError

from hostcheck.agent.runner import ProgressReporter, run_task
from hostcheck.core.targets import TargetGuard
from hostcheck.services.results.store import IncomingResult
from hostcheck.services.results.views import check_view
from hostcheck.v1 import ping_pb2, scheduler_pb2, traceroute_pb2
from tests.test_results_store import open_check, planned, store  # noqa: F401 - the store fixture

LOOPBACK = TargetGuard.from_cidrs(("127.0.0.0/8",))


def task(check_type: str, **options) -> scheduler_pb2.Task:
    t = scheduler_pb2.Task(task_id="t1", check_id="c1", check_type=check_type, target="127.0.0.1", timeout_ms=10_000)
    getattr(t.options, check_type).CopyFrom(options[check_type])
    return t


class Sent:
    """What a reporter sent, and when; `wait_for(n)` returns once n messages went."""

    def __init__(self) -> None:
        self.items: list[tuple[float, scheduler_pb2.TaskProgress]] = []
        self._changed = asyncio.Event()

    def __call__(self, progress: scheduler_pb2.TaskProgress) -> None:
        self.items.append((time.monotonic(), progress))
        self._changed.set()

    async def wait_for(self, n: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.items) < n:
                self._changed.clear()
                await self._changed.wait()


def icmp_socket(privileged: bool) -> bool:
    try:
        ICMPv4Socket(privileged=privileged).close()
        return True
    except SocketPermissionError:
        return False


async def test_a_task_that_ends_within_the_grace_sends_no_start():
    sent = Sent()
    reporter = ProgressReporter(task("ping", ping=ping_pb2.PingOptions()), sent, start_grace_s=0.2)
    reporter.started()
    reporter.close()  # the result went out first
    assert reporter._start_timer is None  # the pending start was cancelled
    reporter._announce()  # and even a timer firing late sends nothing
    assert sent.items == []


async def test_the_start_goes_after_the_grace_with_the_moment_the_task_began():
    sent = Sent()
    reporter = ProgressReporter(task("ping", ping=ping_pb2.PingOptions()), sent, start_grace_s=0.1)
    began = time.time()
    reporter.started()
    await sent.wait_for(1)
    (_, start), = sent.items
    assert start.started and abs(start.started_at.ToNanoseconds() / 1e9 - began) < 0.05
    reporter.close()


async def test_the_start_goes_first_then_the_latest_step_at_most_every_interval():
    sent = Sent()
    reporter = ProgressReporter(task("ping", ping=ping_pb2.PingOptions()), sent, interval_s=0.3)
    reporter.started()  # within its grace: the first step brings it along
    for i in range(1, 11):
        reporter(f"step {i}", done=i, total=10)
    await sent.wait_for(3)
    (t0, start), (t1, first), (t2, latest) = sent.items
    assert start.started and start.started_at.seconds and (start.task_id, start.check_id) == ("t1", "c1")
    # The first step goes at once; the nine that came sooner than the interval became one: the latest.
    assert (first.message, first.done, first.total) == ("step 1", 1, 10)
    assert (latest.message, latest.done) == ("step 10", 10)
    assert t2 - t1 >= 0.3 * 0.9
    # Once the task's result is out, nothing more goes.
    reporter("late", done=11, total=10)
    reporter.close()
    assert reporter._timer is None and len(sent.items) == 3


async def test_a_step_from_a_thread_reaches_the_loop():
    sent = Sent()
    reporter = ProgressReporter(task("ping", ping=ping_pb2.PingOptions()), sent)
    await asyncio.to_thread(reporter, "from a thread", done=1, total=2)
    await sent.wait_for(1)
    assert sent.items[0][1].message == "from a thread"


async def test_ping_reports_each_reply():
    if not (icmp_socket(False) or icmp_socket(True)):
        pytest.skip("no ICMP socket may be opened here (net.ipv4.ping_group_range)")
    sent = Sent()
    reporter = ProgressReporter(task("ping", ping=ping_pb2.PingOptions(count=4, interval_ms=100)), sent,
                                interval_s=0)
    result = await run_task(task("ping", ping=ping_pb2.PingOptions(count=4, interval_ms=100)), LOOPBACK,
                            progress=reporter)
    assert result.success, result
    steps = [p for _, p in sent.items]
    assert [(p.done, p.total) for p in steps] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all("from 127.0.0.1" in p.message and "time=" in p.message for p in steps)


async def test_traceroute_reports_each_hop_with_the_hops_so_far():
    if not icmp_socket(True):
        pytest.skip("traceroute needs a raw ICMP socket (CAP_NET_RAW)")
    sent = Sent()
    options = traceroute_pb2.TracerouteOptions(max_hops=5)
    reporter = ProgressReporter(task("traceroute", traceroute=options), sent, interval_s=0)
    result = await run_task(task("traceroute", traceroute=options), LOOPBACK, progress=reporter)
    assert result.success, result
    await sent.wait_for(1)  # sent from the trace's thread through the loop
    (_, hop), = sent.items
    assert (hop.done, hop.total, hop.message) == (1, 5, "hop 1: 127.0.0.1")
    assert [h.address for h in hop.data.traceroute.hops] == ["127.0.0.1"]


async def test_a_started_task_is_running_until_its_result_and_a_late_start_changes_nothing(store):  # noqa: F811
    agent, other = uuid.uuid4(), uuid.uuid4()
    first, second = planned(agent, name="fra-1", country="DE"), planned(agent, name="fra-1", country="DE")
    check_id = await open_check(store, first, second)
    started = datetime.now(UTC)

    # Another agent's claim is ignored; the task's own agent marks it running.
    assert not (await store.mark_running({first.task_id: (other, started)})).tasks
    changes = await store.mark_running({first.task_id: (agent, started)})
    state = changes.checks[check_id]
    assert (state.status, state.tasks_done, state.tasks_total) == ("in_progress", 0, 2)
    assert state.tasks[first.task_id].status == "running"
    view = check_view(await store.get_check(check_id))
    task = next(t for t in view.tasks if t.task_id == str(first.task_id))
    assert task.status == "running"
    assert abs((task.started_at.ToDatetime(tzinfo=UTC) - started).total_seconds()) < 0.001
    assert (view.tasks_running, view.tasks_done, view.outcome) == (1, 0, "")

    # Results end both; a start that comes after its result does not undo it.
    await store.record_results([
        IncomingResult(agent_id=agent, task_id=first.task_id, success=True, data={}, error="", error_code="",
                       duration_ms=1.0, started_at=started),
        IncomingResult(agent_id=agent, task_id=second.task_id, success=False, data={}, error="refused",
                       error_code="refused", duration_ms=1.0, started_at=started)])
    assert not (await store.mark_running({second.task_id: (agent, started)})).tasks
    view = check_view(await store.get_check(check_id))
    assert [t.status for t in sorted(view.tasks, key=lambda t: t.task_id != str(first.task_id))] == ["completed", "failed"]
    assert (view.status, view.tasks_succeeded, view.tasks_failed, view.tasks_running) == ("completed", 1, 1, 0)
    assert view.outcome == "some_failed"
    # Results name their agent from the task's snapshot.
    assert [(r.agent, r.country) for r in view.results] == [("fra-1", "DE")] * 2
    assert await store.open_tasks([first.task_id, second.task_id]) == {}


class FakeIngest:
    """Records RecordProgress calls."""

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, str, bool, str]]] = []
        self.called = asyncio.Event()

    async def RecordProgress(self, request, timeout=None):  # noqa: N802 - the gRPC method's name
        self.calls.append([(p.agent_id, p.progress.task_id, p.progress.started, p.progress.message)
                           for p in request.progress])
        self.called.set()


async def test_the_scheduler_forwards_starts_always_and_steps_at_most_every_interval():
    """A misbehaving agent cannot flood watchers: steps of one task closer than the interval are dropped."""
    from hostcheck.services.scheduler.forwarder import PROGRESS_MIN_INTERVAL_S, ProgressForwarder

    ingest = FakeIngest()
    forwarder = ProgressForwarder(ingest)  # type: ignore[arg-type]
    runner = asyncio.create_task(forwarder.run())
    try:
        def step(task_id: str, message: str, started: bool = False) -> scheduler_pb2.TaskProgress:
            return scheduler_pb2.TaskProgress(task_id=task_id, started=started, message=message)

        forwarder.submit("a1", [step("t1", "", started=True)] + [step("t1", f"step {i}") for i in range(5)]
                         + [step("t2", "other task")])
        async with asyncio.timeout(5):
            await ingest.called.wait()
        assert ingest.calls == [[("a1", "t1", True, ""), ("a1", "t1", False, "step 0"), ("a1", "t2", False, "other task")]]
        assert PROGRESS_MIN_INTERVAL_S < 0.5  # below the agent's own interval: honest agents lose nothing
    finally:
        runner.cancel()
