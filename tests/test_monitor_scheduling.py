"""Scheduler replicas run monitors: claim due runs, create each run's check on time, exactly once.

The runner's loop on its own (claiming, pacing, bounding, draining) is tested against an in-test
MonitorRunsService on a real gRPC server and a scheduler replica's real planner, dispatcher and router
on live state; the whole path against the real results service, real agents and two replicas.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from hostcheck.agent.client import Agent
from hostcheck.core.config import SchedulerConfig
from hostcheck.core.metrics import SchedulerMetrics
from hostcheck.core.targets import TargetGuard
from hostcheck.core.timestamps import ts
from hostcheck.services.scheduler import service as scheduler_service
from hostcheck.services.scheduler.dispatch import Dispatcher
from hostcheck.services.scheduler.monitors import MonitorRunner
from hostcheck.services.scheduler.planning import OnlineAgents, Planner, RateLimit
from hostcheck.services.storage.livestate import MemoryLiveState
from hostcheck.v1 import (
    checks_pb2,
    keys_pb2,
    keys_pb2_grpc,
    monitors_pb2,
    monitors_pb2_grpc,
    results_pb2,
    scheduler_pb2,
)
from tests.conftest import ADMIN
from tests.helpers import assert_eventually, within
from tests.scheduler.conftest import Replica, make_agent, rpc_error

GUARD = TargetGuard.from_cidrs(("127.0.0.0/8",))


def claimed(seq: int = 1, *, monitor_id: str | None = None, key_id: str = "", due: float | None = None,
            **check) -> monitors_pb2.ClaimedRun:
    request = scheduler_pb2.CreateCheckRequest(**{"target": "127.0.0.1:8080", "checks": ["tcp"], **check})
    return monitors_pb2.ClaimedRun(monitor_id=monitor_id or str(uuid.uuid4()), seq=seq, check_id=str(uuid.uuid4()),
                                   scheduled_at=ts_of(time.time() if due is None else due), check=request,
                                   created_by_key_id=key_id)


def ts_of(seconds: float) -> timestamp_pb2.Timestamp:
    return ts(datetime.fromtimestamp(seconds, UTC))


class FakeRuns(monitors_pb2_grpc.MonitorRunsServiceServicer):
    """The results service's MonitorRunsService as the loop sees it: hands out the runs it is given."""

    def __init__(self) -> None:
        self.due: list[monitors_pb2.ClaimedRun] = []
        # Runs due later (unix seconds), handed out once due; the earliest is the reply's next_due_at.
        self.later: list[tuple[float, monitors_pb2.ClaimedRun]] = []
        self.claims: list[tuple[float, monitors_pb2.ClaimDueRunsRequest]] = []
        self.reports: list[monitors_pb2.ReportRunNotStartedRequest] = []
        self.failures = 0  # the next this many claims fail UNAVAILABLE

    async def ClaimDueRuns(self, request, context):
        self.claims.append((time.monotonic(), request))
        if self.failures:
            self.failures -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "database down")
        now = time.time()
        self.due += [run for at, run in self.later if at <= now]
        self.later = [(at, run) for at, run in self.later if at > now]
        runs, self.due = self.due[:request.limit], self.due[request.limit:]
        reply = monitors_pb2.ClaimDueRunsResponse(runs=runs)
        if self.later:
            reply.next_due_at.CopyFrom(ts_of(min(at for at, _ in self.later)))
        return reply

    async def ReportRunNotStarted(self, request, context):
        self.reports.append(request)
        return monitors_pb2.ReportRunNotStartedResponse()


class FakeIngest:
    """OpenCheck of the results service: records the checks, refuses some as told, can hold them."""

    def __init__(self) -> None:
        self.opened: list[results_pb2.OpenCheckRequest] = []
        self.refuse: dict[str, grpc.StatusCode] = {}  # by monitor id
        self.hold: asyncio.Event | None = None
        self.held = asyncio.Event()
        self.waiting = self.most_waiting = 0

    async def OpenCheck(self, request, timeout=None, metadata=None):
        if self.hold is not None:
            self.held.set()
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
            await self.hold.wait()
            self.waiting -= 1
        if request.monitor_id in self.refuse:
            raise rpc_error(self.refuse[request.monitor_id], "refused")
        self.opened.append(request)
        return results_pb2.OpenCheckResponse(check=checks_pb2.Check(check_id=request.check_id, status="in_progress"))


class Rig:
    """A replica (sessions, router, planner, dispatcher) with one agent, and a runner on a fake MonitorRunsService."""

    def __init__(self) -> None:
        self.runs = FakeRuns()
        self.ingest = FakeIngest()
        self.live = MemoryLiveState()
        self.metrics = SchedulerMetrics(connected_agents=lambda: 0, forwarder_queue=lambda: 0)

    async def __aenter__(self) -> Rig:
        self.server = grpc.aio.server()
        monitors_pb2_grpc.add_MonitorRunsServiceServicer_to_server(self.runs, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        self.replica = await Replica(self.live, "s-a").start()
        self.agent = make_agent("here")
        self.stream = await self.replica.connect(self.agent)
        # An hourly quota of 0 and one check per IP: any charged check would be refused.
        self.planner = Planner(OnlineAgents(self.live), guard=GUARD, rate_limit=RateLimit(self.live, limit=1,
                               window_s=3600), dispatch_grace_s=1.0)
        self.dispatcher = Dispatcher(self.ingest, self.live, self.replica.router, self.metrics)
        self.runners: list[MonitorRunner] = []
        return self

    def runner(self, **options) -> MonitorRunner:
        runner = MonitorRunner(monitors_pb2_grpc.MonitorRunsServiceStub(self.channel), self.planner,
                               self.dispatcher, self.metrics, scheduler_id="s-a", **options)
        self.runners.append(runner)
        runner.start()
        return runner

    def sample(self, name: str, labels: dict | None = None) -> float:
        return self.metrics.registry.get_sample_value(name, labels or {}) or 0.0

    async def __aexit__(self, *exc) -> None:
        for runner in self.runners:
            await runner.stop(0.5)
        await self.replica.stop()
        await self.channel.close()
        await self.server.stop(None)


async def eventually(fn: Callable[[], object], message: str, timeout: float = 10.0):
    return await assert_eventually(fn, timeout=timeout, message=message)


async def test_claimed_runs_become_their_owners_checks_with_the_claimed_ids():
    async with Rig() as rig:
        by_key = claimed(3, key_id=str(uuid.uuid4()), due=time.time() - 0.2)
        by_admin = claimed(7)
        rig.runs.due = [by_key, by_admin]
        rig.runner(poll_s=0.05)

        await eventually(lambda: len(rig.ingest.opened) == 2, "both runs opened")
        opened = {r.monitor_id: r for r in rig.ingest.opened}
        for run in (by_key, by_admin):
            request = opened[run.monitor_id]
            # The run's claimed id, linked to its monitor and run, owned by the monitor's owner, no client IP.
            assert (request.check_id, request.monitor_run, request.created_by_key_id, request.client_ip) == (
                run.check_id, run.seq, run.created_by_key_id, "")
            assert request.request.target == "127.0.0.1:8080" and [t.agent_id for t in request.tasks] == [
                rig.agent.agent_id]
        sent = {(await rig.stream.receive("tasks")).tasks.tasks[0].check_id for _ in range(2)}
        assert sent == {by_key.check_id, by_admin.check_id}
        # Neither counted against a quota (the key's is 0 here, the per-IP limit 1).
        assert rig.runs.reports == []
        assert rig.sample("hostcheck_monitor_runs_started_total") == 2
        assert rig.sample("hostcheck_monitor_run_lateness_seconds_count") == 2
        assert rig.sample("hostcheck_monitor_run_lateness_seconds_bucket", {"le": "0.1"}) <= 1  # by_key was 0.2 s late
        assert rig.runs.claims[0][1].scheduler_id == "s-a"


async def test_a_run_that_cannot_start_is_reported_with_why():
    async with Rig() as rig:
        nowhere = claimed(1, agents=checks_pb2.AgentSelector(cities=["Nowhere"]))
        refused = claimed(2, target="10.1.2.3:80")  # not loopback: the target guard refuses it
        deleted = claimed(3)
        rig.ingest.refuse[deleted.monitor_id] = grpc.StatusCode.NOT_FOUND  # the monitor went meanwhile
        broken = claimed(4)
        rig.ingest.refuse[broken.monitor_id] = grpc.StatusCode.INTERNAL
        fine = claimed(5)
        rig.runs.due = [nowhere, refused, deleted, broken, fine]
        rig.runner(poll_s=0.05)

        await eventually(lambda: len(rig.runs.reports) == 3 and len(rig.ingest.opened) == 1, "3 reported, 1 opened")
        reports = {r.monitor_id: r for r in rig.runs.reports}
        assert (reports[nowhere.monitor_id].seq, reports[nowhere.monitor_id].code) == (1, "FAILED_PRECONDITION")
        assert reports[nowhere.monitor_id].reason
        assert reports[refused.monitor_id].code == "INVALID_ARGUMENT" and "target" in reports[refused.monitor_id].reason
        assert reports[broken.monitor_id].code == "UNAVAILABLE"
        # A deleted monitor's run needs no report (there is nothing left to end).
        assert deleted.monitor_id not in reports
        assert rig.ingest.opened[0].check_id == fine.check_id
        assert rig.sample("hostcheck_monitor_runs_not_started_total", {"code": "FAILED_PRECONDITION"}) == 1
        assert rig.sample("hostcheck_monitor_runs_started_total") == 1


async def test_claims_again_at_once_after_a_full_batch_and_when_the_next_run_is_due():
    async with Rig() as rig:
        due = time.time() + 0.3
        last = claimed(6, due=due)
        rig.runs.due = [claimed(i) for i in range(1, 6)]
        rig.runs.later = [(due, last)]
        rig.runner(poll_s=30.0, batch=2)
        # 5 due runs, 2 at a time: three claims back to back, not one per 30 s poll.
        await eventually(lambda: len(rig.ingest.opened) == 5, "all five started")
        assert [r.limit for _, r in rig.runs.claims[:3]] == [2, 2, 2]
        # The next run is due in 0.3 s: the runner asks then, not after its 30 s poll.
        await eventually(lambda: len(rig.ingest.opened) == 6, "the next run started when due", timeout=5)
        assert rig.ingest.opened[-1].check_id == last.check_id
        assert len(rig.runs.claims) <= 6  # no spinning meanwhile


async def test_runs_are_started_concurrently_and_claiming_is_bounded():
    async with Rig() as rig:
        rig.ingest.hold = asyncio.Event()
        rig.runs.due = [claimed(i) for i in range(1, 21)]
        runner = rig.runner(poll_s=0.02, batch=8, concurrency=4)
        # OpenCheck stuck: 8 runs claimed and starting, 4 at once; no more claimed until some have started.
        await eventually(lambda: rig.ingest.waiting == 4 and len(runner._starting) == 8, "4 of 8 runs starting")
        assert len(rig.runs.due) == 12 and sum(r.limit for _, r in rig.runs.claims) == 8
        rig.ingest.hold.set()
        await eventually(lambda: len(rig.ingest.opened) == 20, "all 20 started")
        assert rig.ingest.most_waiting == 4


async def test_the_loop_survives_the_results_service_being_down():
    async with Rig() as rig:
        rig.runs.failures = 3
        rig.runs.due = [claimed(1)]
        rig.runner(poll_s=0.02)
        await eventually(lambda: len(rig.ingest.opened) == 1, "started once claims work again")
        assert len(rig.runs.claims) >= 4


async def test_stopping_stops_claiming_first_and_lets_claimed_runs_start():
    async with Rig() as rig:
        rig.ingest.hold = asyncio.Event()
        run = claimed(1)
        rig.runs.due = [run]
        runner = rig.runner(poll_s=0.02)
        await rig.ingest.held.wait()
        stopping = asyncio.create_task(runner.stop(10.0))
        # Claiming ends while the run claimed before is still starting...
        await eventually(lambda: runner._loop.done(), "claiming stopped")
        assert not stopping.done() and rig.ingest.opened == []
        claims = len(rig.runs.claims)
        rig.runs.due = [claimed(2)]
        rig.ingest.hold.set()
        await asyncio.wait_for(stopping, 10)
        # ...which stop() lets start; nothing is claimed after.
        assert [r.check_id for r in rig.ingest.opened] == [run.check_id]
        assert len(rig.runs.claims) == claims and len(rig.runs.due) == 1


# -- the whole path: the results service claims, agents run, replicas share the work -------------------------


def monitors(system) -> monitors_pb2_grpc.MonitorsServiceStub:
    return monitors_pb2_grpc.MonitorsServiceStub(system.results_channel)


async def api_key(system, quota_per_hour: int = 1) -> tuple[str, list[tuple[str, str]]]:
    """A key and its credential; a quota of 1 check an hour: monitor runs must not be charged to it."""
    made = await keys_pb2_grpc.KeysServiceStub(system.results_channel).CreateKey(
        keys_pb2.CreateKeyRequest(name="monitors", quota_per_hour=quota_per_hour), metadata=ADMIN)
    return made.key_id, [("authorization", f"Bearer {made.api_key}")]


async def every_second(system, port: int, metadata, name: str = "m", **fields) -> monitors_pb2.Monitor:
    return await monitors(system).CreateMonitor(monitors_pb2.CreateMonitorRequest(
        **{"name": name, "target": f"127.0.0.1:{port}", "checks": ["tcp"], "interval_s": 1, "timeout_ms": 500,
           **fields}), metadata=metadata)


async def monitor_checks(system, monitor_id: str) -> list[checks_pb2.Check]:
    """Every check of the monitor's runs (oldest run first)."""
    found: list[checks_pb2.Check] = []
    token = ""
    while True:
        page = await system.checks.ListChecks(results_pb2.ListChecksRequest(
            monitor_id=monitor_id, page_size=200, page_token=token), metadata=ADMIN)
        found += page.checks
        if not (token := page.next_page_token):
            return sorted(found, key=lambda c: c.monitor_run)


async def monitor_runs(system, monitor_id: str) -> list[monitors_pb2.MonitorRun]:
    reply = await monitors(system).ListMonitorRuns(monitors_pb2.ListMonitorRunsRequest(
        monitor_id=monitor_id, page_size=500), metadata=ADMIN)
    return sorted(reply.runs, key=lambda r: r.seq)


def seconds(stamp) -> float:
    return stamp.ToMicroseconds() / 1e6


async def test_a_monitor_runs_every_interval_from_the_agents(system, tmp_path, tcp_target):
    first = await system.start_agent(tmp_path, "first")
    second = await system.start_agent(tmp_path, "second")
    key_id, key = await api_key(system)
    monitor = await every_second(system, tcp_target, key)

    async def three_completed():
        checks = await monitor_checks(system, monitor.monitor_id)
        return checks if sum(c.status == "completed" for c in checks) >= 3 else None
    checks = await eventually(three_completed, "three runs completed", timeout=15)

    # One ordinary check per run, in order, owned by the monitor's key (its quota of 1 an hour untouched).
    assert [c.monitor_run for c in checks] == list(range(1, len(checks) + 1))
    assert {c.monitor_id for c in checks} == {monitor.monitor_id}
    runs = {r.seq: r for r in await monitor_runs(system, monitor.monitor_id)}
    for check in checks:
        assert check.check_id == runs[check.monitor_run].check_id
    completed = [c for c in checks if c.status == "completed"]
    for check in completed[:3]:
        full = await system.checks.ReadCheck(results_pb2.ReadCheckRequest(check_id=check.check_id), metadata=ADMIN)
        assert full.created_by_key_id == key_id
        assert sorted(t.agent_id for t in full.tasks) == sorted([first.identity.agent_id, second.identity.agent_id])
        assert all(t.status == "completed" for t in full.tasks)
    # Every interval, on time: each run due one second after the last, and started within a second of it.
    started = [runs[c.monitor_run] for c in checks if runs[c.monitor_run].HasField("started_at")]
    assert len(started) >= 3
    for before, after in zip(started, started[1:], strict=False):
        assert seconds(after.scheduled_at) - seconds(before.scheduled_at) == pytest.approx(1.0, abs=0.01)
    for run in started:
        assert 0 <= seconds(run.started_at) - seconds(run.scheduled_at) < within(0.5)
    metrics = system.scheduler.monitors.metrics.registry
    assert metrics.get_sample_value("hostcheck_monitor_runs_started_total") >= 3
    assert metrics.get_sample_value("hostcheck_monitor_run_lateness_seconds_count") >= 3


async def test_a_run_no_agent_can_run_ends_unknown(system, tmp_path, tcp_target):
    await system.start_agent(tmp_path, "here")
    monitor = await every_second(system, tcp_target, ADMIN, agents=checks_pb2.AgentSelector(cities=["Nowhere"]))

    async def an_unknown_run():
        return [r for r in await monitor_runs(system, monitor.monitor_id) if r.verdict == "unknown"]
    [run, *_] = await eventually(an_unknown_run, "a run ended unknown", timeout=10)
    assert run.reason.startswith("FAILED_PRECONDITION") and not run.HasField("started_at")
    assert await monitor_checks(system, monitor.monitor_id) == []
    metrics = system.scheduler.monitors.metrics.registry
    assert metrics.get_sample_value("hostcheck_monitor_runs_not_started_total", {"code": "FAILED_PRECONDITION"}) >= 1


async def test_two_replicas_run_every_run_once(pg_system, tmp_path, tcp_target, live_prefix):
    system = pg_system
    other = await scheduler_service.start(SchedulerConfig(
        listen="127.0.0.1:0", registry_addr=system.registry_addr, results_addr=system.results_addr,
        allow_targets=("127.0.0.0/8", "::1/128"), dispatch_grace_s=1.0, database_url=system.database_url,
        live_state_url=system.live_url, live_state_prefix=live_prefix, scheduler_id="other"))
    try:
        # An agent on each replica: a run claimed by one is sent to an agent on the other through it. The
        # first stays where it is while the other replica drains, so every run has an agent to run it.
        for name, addr in (("first", system.scheduler_addr), ("second", f"127.0.0.1:{other.port}")):
            agent = Agent(dataclasses.replace(system.agent_config(tmp_path, name), scheduler_addr=addr))
            system.agents.append((agent, asyncio.create_task(agent.run(), name=f"agent-{name}")))
            await eventually(agent.ready.is_set, f"agent {name} connected")
        made = [await every_second(system, tcp_target, ADMIN, name=f"m{i}") for i in range(6)]

        def started(replica) -> float:
            return replica.monitors.metrics.registry.get_sample_value("hostcheck_monitor_runs_started_total")
        await eventually(lambda: started(system.scheduler) >= 3 and started(other) >= 3, "both replicas run runs",
                         timeout=20)
        # A draining replica stops claiming; the other runs every run from then on.
        await other.stop()
        stopped_at = started(other)
        ours = started(system.scheduler)
        await eventually(lambda: started(system.scheduler) >= ours + 18, "the remaining replica runs them all",
                         timeout=20)
        assert started(other) == stopped_at
        for monitor in made:
            await monitors(system).UpdateMonitor(monitors_pb2.UpdateMonitorRequest(
                monitor_id=monitor.monitor_id, monitor=monitors_pb2.CreateMonitorRequest(paused=True),
                update_mask=field_mask_pb2.FieldMask(paths=["paused"])), metadata=ADMIN)

        for monitor in made:
            async def settled(monitor_id=monitor.monitor_id):
                runs = await monitor_runs(system, monitor_id)
                return runs if all(r.HasField("started_at") or r.verdict != "running" for r in runs) else None
            runs = await eventually(settled, "every claimed run started", timeout=10)
            checks = await monitor_checks(system, monitor.monitor_id)
            # Each run exactly once, no run skipped (the drained replica started what it had claimed).
            assert [c.monitor_run for c in checks] == [r.seq for r in runs] == list(range(1, len(runs) + 1)), [
                (r.seq, r.verdict, r.reason, r.HasField("started_at")) for r in runs]
            assert [c.check_id for c in checks] == [r.check_id for r in runs]
    finally:
        with contextlib.suppress(Exception):
            await other.stop()
