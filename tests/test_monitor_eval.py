"""Monitor evaluation (services/results/monitoreval.py): the rules on tables of cases, then runs judged
in order on both databases, missed runs, concurrent evaluators (one event), live events, and the
results service's own wiring (a stored result moves the monitor's state)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from hostcheck.core.timestamps import ts
from hostcheck.services.results.monitoreval import (
    MISSED_GRACE_S,
    MonitorEvaluator,
    MonitorState,
    RunJudgement,
    TaskOutcome,
    judge_run,
    next_state,
    notification_of,
)
from hostcheck.services.results.monitormodels import MonitorEventRow, MonitorRow, MonitorRunRow
from hostcheck.services.results.monitorwatch import MonitorEvents, monitor_channel
from hostcheck.services.results.store import AgentSnapshot, IncomingResult, PlannedTask, ResultsStore
from hostcheck.services.storage import db
from hostcheck.services.storage.livestate import MemoryLiveState
from hostcheck.v1 import monitors_pb2, results_pb2, scheduler_pb2
from tests.helpers import assert_eventually
from tests.monitordb import (  # noqa: F401 - fixtures
    migrated_postgres_fixture,
    migrated_sqlite_fixture,
    postgres_copy,
    sessions_fixture,
)
from tests.monitorlab import WebhookReceiver

# ---- the pure rules -------------------------------------------------------------------------------


def task(agent: str, status: str = "completed", **kw) -> TaskOutcome:
    return TaskOutcome(agent_id=agent, status=status, agent_name=f"name-{agent}", **kw)


@pytest.mark.parametrize(("tasks", "quorum", "verdict", "failing"), [
    ([], 1, "unknown", 0),
    ([task("a"), task("b")], 1, "up", 0),
    ([task("a"), task("b", "failed")], 1, "failing", 1),
    ([task("a"), task("b", "failed")], 2, "degraded", 1),
    ([task("a", "timed_out"), task("b", "failed"), task("c")], 2, "failing", 2),
    # An agent fails the run when any one of its tasks failed: counted once.
    ([task("a", "failed"), task("a", "timed_out"), task("b")], 2, "degraded", 1),
    # Quorum above the agents that ran: never failing, however many fail.
    ([task("a", "failed")], 3, "degraded", 1),
])
def test_run_verdict(tasks, quorum, verdict, failing):
    judged = judge_run(tasks, quorum)
    assert (judged.verdict, judged.agents_failing) == (verdict, failing)
    assert judged.agents_total == len({t.agent_id for t in tasks})


def test_an_agent_is_judged_by_its_first_failing_task_and_its_longest_duration():
    judged = judge_run([task("a", duration_ms=5), task("a", "failed", error_code="connect_refused", error="refused",
                                                       duration_ms=9),
                        task("a", "timed_out", error="no result")], 1)
    assert judged.agents == [{"agent_id": "a", "agent_name": "name-a", "country": "", "city": "", "success": False,
                              "error_code": "connect_refused", "error": "refused", "duration_ms": 9.0}]


def walk(verdicts: str, *, for_runs: int = 1, start: str = "pending", paused: bool = False) -> list[str]:
    """The states after each verdict (u up, d degraded, f failing, ? unknown, m missed)."""
    names = {"u": "up", "d": "degraded", "f": "failing", "?": "unknown", "m": "missed"}
    state, states = MonitorState(start), []
    for v in verdicts:
        state = next_state(state, names[v], for_runs=for_runs, paused=paused)
        states.append(state.state)
    return states


@pytest.mark.parametrize(("verdicts", "for_runs", "states"), [
    ("uffu", 1, ["up", "down", "down", "up"]),
    # for_runs=3: two failing runs are degraded, the third is down; one up run resets the count.
    ("uffuffff", 3, ["up", "degraded", "degraded", "up", "degraded", "degraded", "down", "down"]),
    # Unknown runs keep the count: f ? f ? f with for_runs=3 is down at the third failing run.
    ("f?f?f", 3, ["degraded", "unknown", "degraded", "unknown", "down"]),
    # Missed runs change nothing.
    ("umfmm", 1, ["up", "up", "down", "down", "down"]),
    # Recovery to degraded (some agents fail, below quorum).
    ("ffd", 2, ["degraded", "down", "degraded"]),
    ("?u", 1, ["unknown", "up"]),
])
def test_state_machine(verdicts, for_runs, states):
    assert walk(verdicts, for_runs=for_runs) == states


def test_a_paused_monitor_keeps_its_state_and_count():
    assert walk("ffu?", paused=True, start="paused") == ["paused"] * 4
    assert next_state(MonitorState("paused", 2), "failing", for_runs=1, paused=True) == MonitorState("paused", 2)


@pytest.mark.parametrize(("previous", "new", "last_settled", "note"), [
    ("pending", "up", "", None),
    ("pending", "down", "", "down"),
    ("up", "down", "up", "down"),
    ("degraded", "down", "degraded", "down"),
    ("down", "up", "down", "up"),
    ("down", "degraded", "down", "up"),
    ("up", "degraded", "up", None),
    ("down", "unknown", "down", None),
    # One outage through an unknown spell: no second down; the recovery comes after it.
    ("unknown", "down", "down", None),
    ("unknown", "up", "down", "up"),
    ("pending", "up", "down", "up"),  # paused while down, resumed, up: the recovery
    ("unknown", "up", "up", None),
    ("down", "down", "down", None),
])
def test_notifications(previous, new, last_settled, note):
    assert notification_of(previous, new, last_settled) == note


# ---- evaluation on a database ----------------------------------------------------------------------------


class Lab:
    """A monitor, its runs and their checks, written as the claim and OpenCheck write them."""

    def __init__(self, sessions) -> None:
        self.sessions = sessions
        self.store = ResultsStore(sessions)
        self.agents = [uuid.uuid4() for _ in range(3)]

    async def monitor(self, *, quorum: int = 1, for_runs: int = 1, webhook_url: str = "http://127.0.0.1:9/hook",
                      paused: bool = False) -> uuid.UUID:
        monitor_id = uuid.uuid4()
        async with self.sessions() as session, session.begin():
            session.add(MonitorRow(id=monitor_id, name="shop", target="shop.example:443", check_types=["tcp"],
                                   spec={"target": "shop.example:443", "checks": ["tcp"], "timeout_ms": 2000},
                                   interval_s=10, quorum=quorum, for_runs=for_runs, webhook_url=webhook_url,
                                   webhook_secret="s" * 64, paused=paused, state="paused" if paused else "pending",
                                   # Not due: the tests claim runs themselves (a running scheduler won't).
                                   next_run_at=datetime.now(UTC) + timedelta(days=1)))
        return monitor_id

    async def claim(self, monitor_id: uuid.UUID, seq: int, *, claimed_at: datetime | None = None,
                    verdict: str = "running", reason: str = "") -> uuid.UUID:
        check_id = uuid.uuid4()
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            session.add(MonitorRunRow(monitor_id=monitor_id, seq=seq, check_id=check_id, scheduled_at=now,
                                      claimed_at=claimed_at or now, claimed_by="sched-1", verdict=verdict,
                                      reason=reason))
            monitor = await session.get(MonitorRow, monitor_id)
            monitor.run_seq = max(monitor.run_seq, seq)
        return check_id

    async def run(self, monitor_id: uuid.UUID, seq: int, failing: int, *, agents: int = 3) -> uuid.UUID:
        """A run whose check opened (started) and finished: `failing` of its agents failed."""
        check_id = await self.claim(monitor_id, seq)
        await self.start(monitor_id, seq, check_id, agents=agents)
        await self.finish(check_id, failing)
        return check_id

    async def start(self, monitor_id: uuid.UUID, seq: int, check_id: uuid.UUID, *, agents: int = 3) -> None:
        deadline = datetime.now(UTC) + timedelta(minutes=1)
        await self.store.open_check(
            check_id=check_id, target="shop.example:443", check_types=["tcp"], request={}, deadline=deadline,
            client_ip="", tasks=[PlannedTask(task_id=uuid.uuid4(), agent_id=a, check_type="tcp", deadline=deadline,
                                             agent=AgentSnapshot(name=f"agent-{i}", country="DE", city="Berlin"))
                                 for i, a in enumerate(self.agents[:agents])])
        async with self.sessions() as session, session.begin():
            run = await session.get(MonitorRunRow, (monitor_id, seq))
            run.started_at = datetime.now(UTC)

    async def finish(self, check_id: uuid.UUID, failing: int) -> None:
        check = await self.store.get_check(check_id)
        tasks = sorted(check.tasks, key=lambda t: self.agents.index(t.agent_id))
        await self.store.record_results([IncomingResult(
            agent_id=t.agent_id, task_id=t.id, success=i >= failing, data={},
            error="" if i >= failing else "connection refused", error_code="" if i >= failing else "connect_refused",
            duration_ms=3.0, started_at=None) for i, t in enumerate(tasks)])

    async def read(self, monitor_id: uuid.UUID):
        async with self.sessions() as session:
            monitor = await session.get(MonitorRow, monitor_id)
            runs = (await session.scalars(select(MonitorRunRow).where(MonitorRunRow.monitor_id == monitor_id)
                                          .order_by(MonitorRunRow.seq))).all()
            events = (await session.scalars(select(MonitorEventRow).where(MonitorEventRow.monitor_id == monitor_id)
                                            .order_by(MonitorEventRow.at, MonitorEventRow.run_seq))).all()
        return monitor, list(runs), list(events)


async def test_quorum_degraded_down_and_recovery_with_payload(sessions):
    lab = Lab(sessions)
    evaluator = MonitorEvaluator(sessions)
    monitor_id = await lab.monitor(quorum=2)
    for seq, failing in ((1, 0), (2, 1), (3, 2), (4, 3), (5, 0)):
        check_id = await lab.run(monitor_id, seq, failing)
        await evaluator.on_checks_finished([check_id])
    monitor, runs, events = await lab.read(monitor_id)
    assert [(r.verdict, r.agents_failing, r.agents_total, r.state_after, r.evaluated) for r in runs] == [
        ("up", 0, 3, "up", True), ("degraded", 1, 3, "degraded", True), ("failing", 2, 3, "down", True),
        ("failing", 3, 3, "down", True), ("up", 0, 3, "up", True)]
    assert (monitor.state, monitor.failing_runs, monitor.last_evaluated_seq) == ("up", 0, 5)
    assert [(e.from_state, e.to_state, e.run_seq, e.notification) for e in events] == [
        ("pending", "up", 1, "none"), ("up", "degraded", 2, "none"), ("degraded", "down", 3, "pending"),
        ("down", "up", 5, "pending")]
    down, recovery = events[2], events[3]
    assert down.next_attempt_at is not None and down.delivery_attempts == 0
    assert [(a["agent_name"], a["error_code"]) for a in down.failing_agents] == [
        ("agent-0", "connect_refused"), ("agent-1", "connect_refused")]
    payload = down.payload
    assert payload["at"].endswith("Z")
    del payload["at"]
    assert payload == {
        "event_id": str(down.id), "monitor_id": str(monitor_id), "monitor_name": "shop", "state": "down",
        "monitor_state": "down", "previous_state": "degraded", "run": 3, "check_id": str(runs[2].check_id),
        "target": "shop.example:443", "check_types": ["tcp"], "quorum": 2, "for_runs": 1,
        "failing_agents": [{"agent_id": str(lab.agents[i]), "agent_name": f"agent-{i}", "country": "DE",
                            "city": "Berlin", "error_code": "connect_refused", "error": "connection refused"}
                           for i in range(2)],
        "agents_total": 3, "agents_failing": 2}
    assert (recovery.payload["state"], recovery.payload["monitor_state"], recovery.payload["failing_agents"]) == (
        "up", "up", [])


async def test_runs_are_evaluated_in_order(sessions):
    """A later run that finishes first waits for the earlier one: for_runs counts runs in order."""
    lab = Lab(sessions)
    evaluator = MonitorEvaluator(sessions)
    monitor_id = await lab.monitor(for_runs=2)
    first = await lab.claim(monitor_id, 1)
    await lab.start(monitor_id, 1, first)
    second = await lab.run(monitor_id, 2, failing=3)
    await evaluator.on_checks_finished([second])
    monitor, runs, events = await lab.read(monitor_id)
    assert (monitor.last_evaluated_seq, monitor.state, events) == (0, "pending", [])
    assert [r.evaluated for r in runs] == [False, False]

    await lab.finish(first, failing=1)
    await evaluator.on_checks_finished([first])
    monitor, runs, events = await lab.read(monitor_id)
    assert [(r.seq, r.verdict, r.state_after) for r in runs] == [(1, "failing", "degraded"), (2, "failing", "down")]
    assert (monitor.state, monitor.failing_runs, monitor.last_evaluated_seq) == ("down", 2, 2)
    assert [(e.to_state, e.notification) for e in events] == [("degraded", "none"), ("down", "pending")]


async def test_timed_out_tasks_fail_their_agents_and_no_webhook_url_means_no_notification(sessions):
    lab = Lab(sessions)
    evaluator = MonitorEvaluator(sessions)
    monitor_id = await lab.monitor(webhook_url="")
    check_id = await lab.claim(monitor_id, 1)
    await lab.start(monitor_id, 1, check_id, agents=1)
    task_id = (await lab.store.get_check(check_id)).tasks[0].id
    changes = await lab.store.time_out({task_id: "agent agent-0 did not report a result"}, datetime.now(UTC))
    assert changes.finished_checks == {check_id}
    await evaluator.on_checks_finished(changes.finished_checks)
    monitor, runs, events = await lab.read(monitor_id)
    assert runs[0].agents[0]["error_code"] == "timed_out"
    assert runs[0].agents[0]["error"] == "agent agent-0 did not report a result"
    assert monitor.state == "down"
    # Would notify, but there is nowhere to send it: the event is kept with its payload, not pending.
    assert (events[0].notification, events[0].payload["state"], events[0].next_attempt_at) == ("none", "down", None)


async def test_unknown_and_missed_runs(sessions):
    """A run not started (ReportRunNotStarted) is unknown; a run claimed long ago and never opened is
    missed by the sweep, which changes no state and lets later runs be evaluated."""
    lab = Lab(sessions)
    evaluator = MonitorEvaluator(sessions)
    monitor_id = await lab.monitor()
    await lab.run(monitor_id, 1, failing=0)
    await lab.claim(monitor_id, 2, verdict="unknown", reason="FAILED_PRECONDITION: no agents match")
    # Claimed by a replica that died: no check; threshold interval 10 + timeout 2 + grace.
    long_ago = datetime.now(UTC) - timedelta(seconds=10 + 2 + MISSED_GRACE_S + 5)
    await lab.claim(monitor_id, 3, claimed_at=long_ago)
    fresh = await lab.claim(monitor_id, 4)  # claimed just now, not started yet: waits
    assert await evaluator.sweep_once() >= 1
    monitor, runs, events = await lab.read(monitor_id)
    assert [(r.seq, r.verdict, r.state_after, r.evaluated) for r in runs] == [
        (1, "up", "up", True), (2, "unknown", "unknown", True), (3, "missed", "unknown", True),
        (4, "running", "", False)]
    assert "sched-1" in runs[2].reason and "never started" in runs[2].reason
    assert runs[1].reason == "FAILED_PRECONDITION: no agents match"
    assert (monitor.state, monitor.last_evaluated_seq) == ("unknown", 3)
    assert [(e.from_state, e.to_state) for e in events] == [("pending", "up"), ("up", "unknown")]

    # Run 4 was claimed just now; had it never started either, the sweep would end it too, later.
    await lab.start(monitor_id, 4, fresh)
    await lab.finish(fresh, failing=0)
    assert await evaluator.sweep_once() == 1  # found by the sweep alone (no on_checks_finished)
    monitor, _, events = await lab.read(monitor_id)
    assert (monitor.state, events[-1].from_state, events[-1].to_state) == ("up", "unknown", "up")
    assert await evaluator.sweep_once() == 0


async def test_a_paused_monitor_evaluates_runs_without_changing_state(sessions):
    lab = Lab(sessions)
    evaluator = MonitorEvaluator(sessions)
    monitor_id = await lab.monitor(paused=True)
    check_id = await lab.run(monitor_id, 1, failing=3)
    await evaluator.on_checks_finished([check_id])
    monitor, runs, events = await lab.read(monitor_id)
    assert (runs[0].verdict, runs[0].state_after, runs[0].evaluated) == ("failing", "paused", True)
    assert (monitor.state, monitor.failing_runs, events) == ("paused", 0, [])


async def test_evaluation_publishes_runs_and_state_changes(sessions):
    lab = Lab(sessions)
    live = MemoryLiveState()
    evaluator = MonitorEvaluator(sessions, MonitorEvents(live))
    monitor_id = await lab.monitor()
    async with live.subscribe(monitor_channel(monitor_id)) as sub:
        check_id = await lab.run(monitor_id, 1, failing=1)
        await evaluator.on_checks_finished([check_id])
        got = [monitors_pb2.WatchMonitorResponse.FromString(await asyncio.wait_for(sub.get(), 5))
               for _ in range(2)]
    assert [e.event for e in got] == ["run", "state"]
    assert (got[0].run.seq, got[0].run.verdict, got[0].run.state, got[0].run.agents_failing) == (1, "failing", "down", 1)
    assert (got[1].monitor.state, got[1].change.from_state, got[1].change.to_state,
            got[1].change.notification) == ("down", "pending", "down", "pending")
    await live.close()


async def test_concurrent_evaluators_store_each_transition_once(migrated_postgres):
    """Two replicas (own engines, own connections) evaluate the same finished runs at once, again and
    again: every run is evaluated once, every transition stored once."""
    with postgres_copy(migrated_postgres) as url:
        engines = [db.create_engine(url) for _ in range(2)]
        try:
            lab = Lab(db.sessionmaker(engines[0]))
            evaluators = [MonitorEvaluator(db.sessionmaker(e)) for e in engines]
            monitors = [await lab.monitor() for _ in range(6)]
            for seq, failing in enumerate((3, 0, 3), start=1):
                checks = [await lab.run(m, seq, failing) for m in monitors]
                await asyncio.gather(*(ev.on_checks_finished(checks) for ev in evaluators),
                                     *(ev.sweep_once() for ev in evaluators))
            for monitor_id in monitors:
                monitor, runs, events = await lab.read(monitor_id)
                assert [(e.from_state, e.to_state) for e in events] == [
                    ("pending", "down"), ("down", "up"), ("up", "down")]
                assert [e.notification for e in events] == ["pending"] * 3
                assert (monitor.state, monitor.last_evaluated_seq) == ("down", 3)
                assert all(r.evaluated for r in runs)
        finally:
            for engine in engines:
                await engine.dispose()


# ---- the results service's wiring ---------------------------------------------------------------------


async def test_a_stored_result_moves_the_monitor_through_the_service(system):
    """OpenCheck + RecordResults on the results service (a run's check as the scheduler makes it): the
    ingest path evaluates the run; the deadline sweeper's time-outs do too; the service's deliverer
    POSTs the one notification."""
    engine = db.create_engine(system.database_url)
    lab = Lab(db.sessionmaker(engine))
    receiver = await WebhookReceiver().start()
    try:
        monitor_id = await lab.monitor(webhook_url=receiver.url)
        for seq, succeed in ((1, False), (2, None)):
            check_id = await lab.claim(monitor_id, seq)
            task_id, agent_id = str(uuid.uuid4()), str(lab.agents[0])
            deadline = datetime.now(UTC) + (timedelta(minutes=1) if succeed is not None else timedelta(seconds=0.2))
            await system.ingest.OpenCheck(results_pb2.OpenCheckRequest(
                check_id=str(check_id), monitor_id=str(monitor_id), monitor_run=seq,
                request=scheduler_pb2.CreateCheckRequest(target="shop.example:443", checks=["tcp"]),
                tasks=[results_pb2.PlannedTask(task_id=task_id, agent_id=agent_id, check_type="tcp",
                                               deadline=ts(deadline), agent_name="fra-1")],
                deadline=ts(deadline)), timeout=10)
            if succeed is not None:
                result = scheduler_pb2.TaskResult(task_id=task_id, check_id=str(check_id), check_type="tcp",
                                                  success=False, error="refused", error_code="connect_refused",
                                                  duration_ms=2.0)
                result.data.tcp.SetInParent()
                await system.ingest.RecordResults(results_pb2.RecordResultsRequest(
                    results=[results_pb2.AgentResult(agent_id=agent_id, result=result)]), timeout=10)

            async def evaluated(seq=seq):
                _, runs, _ = await lab.read(monitor_id)
                return runs[seq - 1].evaluated
            # The ingest path evaluates at once; a time-out within the sweeper's grace (0.5 s) and round.
            await assert_eventually(evaluated, timeout=10, message=f"run {seq} evaluated")
        monitor, runs, events = await lab.read(monitor_id)
        assert [(r.verdict, r.agents[0]["error_code"]) for r in runs] == [("failing", "connect_refused"),
                                                                          ("failing", "timed_out")]
        assert [e.to_state for e in events] == ["down"]

        async def delivered():
            return (await lab.read(monitor_id))[2][0].notification == "delivered"
        await assert_eventually(delivered, timeout=10, message="the down notification delivered")
        [got] = receiver.received
        assert got.signed_with("s" * 64)
        assert (got.payload["event_id"], got.payload["state"], got.payload["run"]) == (str(events[0].id), "down", 1)
    finally:
        await receiver.stop()
        await engine.dispose()


def test_judgement_counts():
    judged = RunJudgement("failing", [{"success": False}, {"success": True}])
    assert (judged.agents_total, judged.agents_failing) == (2, 1)
