"""Monitors on the production shape (issue 16, "Done when"): two scheduler replicas, registry and results as
processes on Postgres and Redis, three real agents each in a network namespace of its own, the target in
another (tests/monitorlab.py). One agent cut off from the target gives `degraded` and no alert with
quorum 2, two give `down` with one webhook naming both; a webhook receiver down for 10 s across that
transition gets the notification once it is back, once; recovery sends one `up`. A scheduler killed
with -9 while a monitor runs costs at most one interval and starts no run twice.

Also the monitors benchmark (bench/test_monitors_bench.py) at a tiny scale, so it never rots.

About 50 s: the lab and the processes once for the module (~5 s), the quorum case with its 10 s
receiver outage plus backoff (~20 s), the kill window of six 2 s intervals (~13 s), the bench at a
tiny scale (~12 s)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from dataclasses import dataclass

import grpc
import psycopg
import pytest
import redis
from google.protobuf import field_mask_pb2

from hostcheck.v1 import (
    keys_pb2,
    keys_pb2_grpc,
    monitors_pb2,
    monitors_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from tests.conftest import REDIS_URL, fresh_postgres_db
from tests.helpers import assert_eventually
from tests.monitorlab import TARGET, LabSystem, MonitorLab, WebhookReceiver, cannot_create, lab_system
from tests.procs import ADMIN_TOKEN

pytestmark = [pytest.mark.timeout(300)]

ADMIN = (("authorization", f"Bearer {ADMIN_TOKEN}"),)
RECEIVER_DOWN_S = 10.0


@dataclass
class Shape:
    """The running production shape, its lab, and clients of the results service (monitors, keys)."""

    system: LabSystem
    lab: MonitorLab
    target_port: int

    async def open(self) -> Shape:
        self.channel = grpc.aio.insecure_channel(self.system.addr("results"))
        self.registry_channel = grpc.aio.insecure_channel(self.system.addr("registry"))
        self.monitors = monitors_pb2_grpc.MonitorsServiceStub(self.channel)
        made = await keys_pb2_grpc.KeysServiceStub(self.channel).CreateKey(
            keys_pb2.CreateKeyRequest(name="monitors acceptance"), metadata=ADMIN)
        self.key = (("authorization", f"Bearer {made.api_key}"),)
        return self

    async def close(self) -> None:
        await self.channel.close()
        await self.registry_channel.close()

    @property
    def target(self) -> str:
        return f"{TARGET}:{self.target_port}"

    async def online(self) -> int:
        listed = await registry_pb2_grpc.RegistryServiceStub(self.registry_channel).ListAgents(
            registry_pb2.ListAgentsRequest(status="online"), metadata=ADMIN)
        return len(listed.agents)

    async def create(self, **fields) -> monitors_pb2.Monitor:
        return await self.monitors.CreateMonitor(monitors_pb2.CreateMonitorRequest(
            target=self.target, checks=["tcp"], **fields), metadata=self.key)

    async def read(self, monitor_id: str) -> monitors_pb2.Monitor:
        return await self.monitors.ReadMonitor(monitors_pb2.ReadMonitorRequest(monitor_id=monitor_id),
                                               metadata=self.key)

    async def events(self, monitor_id: str) -> list[monitors_pb2.MonitorEvent]:
        """Its state changes, oldest first."""
        listed = await self.monitors.ListMonitorEvents(
            monitors_pb2.ListMonitorEventsRequest(monitor_id=monitor_id, page_size=500), metadata=self.key)
        return list(reversed(listed.events))

    async def until(self, monitor_id: str, predicate, *, timeout: float, what: str) -> monitors_pb2.Monitor:
        async def check():
            monitor = await self.read(monitor_id)
            return monitor if predicate(monitor) else None
        return await assert_eventually(check, timeout=timeout, interval=0.1, message=what)

    async def delete(self, monitor_id: str) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await self.monitors.DeleteMonitor(monitors_pb2.DeleteMonitorRequest(monitor_id=monitor_id),
                                              metadata=self.key)

    def rows(self, sql: str, *params) -> list[tuple]:
        with psycopg.connect(self.system.database_url) as conn:
            return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
async def shape(tmp_path_factory, request):
    reason = cannot_create()
    if reason:
        pytest.skip(f"no network namespaces here: {reason}")
    workdir = tmp_path_factory.mktemp("monitors-production")
    prefix = f"hct:{uuid.uuid4().hex[:10]}:"
    failed_before = request.session.testsfailed
    lab = MonitorLab(agents=3)
    try:
        lab.create()
        port, target = lab.start_target(workdir)
        try:
            with fresh_postgres_db() as url:
                system = lab_system(lab, url, REDIS_URL, prefix, workdir)
                ready = None
                try:
                    await system.start()
                    for n, (country, city) in enumerate((("DE", "Berlin"), ("FR", "Paris"), ("JP", "Tokyo")), 1):
                        system.start_agent(f"a{n}", HOSTCHECK_COUNTRY=country, HOSTCHECK_CITY=city)
                    ready = await Shape(system, lab, port).open()
                    await assert_eventually(lambda: _at_least(ready.online, 3), timeout=30,
                                            message="three agents online")
                    assert all(lab.reachable(n, port) for n in (1, 2, 3))
                    yield ready
                finally:
                    if ready is not None:
                        await ready.close()
                    system.stop()
                    if request.session.testsfailed > failed_before:
                        print(system.logs())
        finally:
            target.stop()
    finally:
        lab.delete()
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    assert lab.leftovers() == [], "every namespace and link of the lab is removed"


async def _at_least(fn, n: int) -> bool:
    return await fn() >= n


def _failing_names(run: monitors_pb2.MonitorRun) -> list[str]:
    return sorted(a.agent_name for a in run.agents if not a.success)


async def test_quorum_two_degraded_then_down_notified_once_after_receiver_outage(shape):
    lab = shape.lab
    receiver = await WebhookReceiver().start()
    monitor = await shape.create(name="quorum of two", interval_s=1, timeout_ms=800,
                                 alert=monitors_pb2.MonitorAlert(quorum=2, webhook_url=receiver.url))
    mid, secret = monitor.monitor_id, monitor.webhook_secret
    assert len(secret) == 64, "a per-monitor secret, returned by CreateMonitor"
    try:
        await shape.until(mid, lambda m: m.state == "up" and m.last_run.agents_total == 3, timeout=20,
                          what="up, run by the three agents")

        # One agent cut off: that agent fails, the monitor is degraded, nobody is alerted.
        lab.cut_off(1)
        degraded = await shape.until(mid, lambda m: m.state == "degraded", timeout=15, what="degraded")
        assert degraded.last_run.verdict == "degraded" and _failing_names(degraded.last_run) == ["a1"]
        seq = degraded.last_run.seq
        await shape.until(mid, lambda m: m.last_run.seq > seq, timeout=10, what="another run evaluated")
        again = await shape.read(mid)
        assert again.state == "degraded", again
        events = await shape.events(mid)
        assert [(e.from_state, e.to_state, e.notification) for e in events][-1] == ("up", "degraded", "none")
        assert [a.agent_name for a in events[-1].failing_agents] == ["a1"], "the evidence names the agent"
        assert receiver.received == [], "degraded (1 of quorum 2) alerts nobody"

        # The receiver goes down for 10 s; meanwhile a second agent is cut off: down.
        await receiver.stop()
        outage_started = time.monotonic()
        lab.cut_off(2)
        down = await shape.until(mid, lambda m: m.state == "down", timeout=15, what="down")
        assert _failing_names(down.last_run) == ["a1", "a2"] and down.last_run.verdict == "failing"

        async def first_attempt_failed():
            (event,) = [e for e in await shape.events(mid) if e.to_state == "down"]
            return event if event.delivery_attempts >= 1 and event.last_delivery_error else None
        down_event = await assert_eventually(first_attempt_failed, timeout=10, interval=0.1,
                                             message="a delivery attempt failed while the receiver is down")
        assert down_event.notification == "pending"
        assert sorted(a.agent_name for a in down_event.failing_agents) == ["a1", "a2"]
        # The outage's length is the scenario (10 s), not a synchronisation.
        await asyncio.sleep(max(0.0, outage_started + RECEIVER_DOWN_S - time.monotonic()))
        assert (await shape.read(mid)).state == "down"
        await receiver.start()  # the same port
        back = time.monotonic()

        async def delivered():
            (event,) = [e for e in await shape.events(mid) if e.to_state == "down"]
            return event if event.notification == "delivered" else None
        delivered_event = await assert_eventually(delivered, timeout=40, interval=0.2,
                                                  message="the down notification delivered after the outage")
        got = receiver.for_event(down_event.event_id)
        assert len(got) == 1, f"delivered once, got {len(got)}"
        (hook,) = got
        assert hook.at >= back
        assert delivered_event.delivery_attempts >= 2, "retried while the receiver was down"
        print(f"down notified {hook.at - back:.1f} s after the receiver came back, "
              f"attempt {delivered_event.delivery_attempts}")
        assert hook.signed_with(secret), hook.headers
        assert hook.headers["x-hostcheck-event-id"] == down_event.event_id
        payload = hook.payload
        assert payload["state"] == "down" and payload["monitor_id"] == mid
        assert payload["quorum"] == 2 and payload["agents_total"] == 3 and payload["agents_failing"] == 2
        failing = sorted(payload["failing_agents"], key=lambda a: a["agent_name"])
        assert [a["agent_name"] for a in failing] == ["a1", "a2"]
        assert [a["country"] for a in failing] == ["DE", "FR"]
        assert all(a["error"] for a in failing), failing

        # Both restored: one recovery.
        lab.restore(1)
        lab.restore(2)
        await shape.until(mid, lambda m: m.state == "up", timeout=15, what="up again")

        async def all_delivered():
            events = await shape.events(mid)
            pending = [e for e in events if e.notification == "pending"]
            return events if not pending else None
        events = await assert_eventually(all_delivered, timeout=20, interval=0.2, message="every notification sent")
        notified = [e for e in events if e.notification != "none"]
        assert [e.to_state for e in notified][0] == "down"
        assert len(notified) == 2 and notified[1].from_state == "down", [(e.from_state, e.to_state) for e in events]
        states = [r.payload["state"] for r in receiver.received]
        assert states == ["down", "up"], states
        up = receiver.received[1]
        assert up.payload["event_id"] == notified[1].event_id and up.signed_with(secret)
        assert len({r.payload["event_id"] for r in receiver.received}) == len(receiver.received)
    finally:
        for n in list(lab.cut):
            lab.restore(n)
        await shape.delete(mid)
        await receiver.stop()


async def test_scheduler_killed_costs_at_most_one_interval_and_runs_nothing_twice(shape):
    interval = 2
    monitor = await shape.create(name="survives a replica", interval_s=interval, timeout_ms=1000)
    mid = monitor.monitor_id
    victim = ""
    try:
        await shape.until(mid, lambda m: m.runs_total >= 2, timeout=20, what="two runs claimed")
        # The replica that claimed the newest run: it is claiming now.
        (victim,) = shape.rows("SELECT claimed_by FROM monitor_runs WHERE monitor_id = %s ORDER BY seq DESC LIMIT 1",
                               uuid.UUID(mid))[0]
        assert victim in ("scheduler", "scheduler2"), victim
        survivor = "scheduler2" if victim == "scheduler" else "scheduler"
        shape.system.procs[victim].kill9()
        killed_at = time.monotonic()
        runs_at_kill = (await shape.read(mid)).runs_total
        await shape.until(mid, lambda m: m.runs_total >= runs_at_kill + 4, timeout=4 * interval + 15,
                          what="four more runs after the kill")
        assert time.monotonic() - killed_at < 6 * interval, "the survivor kept the pace"
        await shape.monitors.UpdateMonitor(monitors_pb2.UpdateMonitorRequest(
            monitor_id=mid, monitor=monitors_pb2.CreateMonitorRequest(paused=True),
            update_mask=field_mask_pb2.FieldMask(paths=["paused"])), metadata=shape.key)

        def settled() -> bool:
            # Every run claimed by the survivor has its check, or ended `unknown` (no agent to run it while
            # the victim's agents moved over); the victim's last claim may never get one.
            return not shape.rows("SELECT 1 FROM monitor_runs WHERE monitor_id = %s AND started_at IS NULL "
                                  "AND verdict = 'running' AND claimed_by = %s", uuid.UUID(mid), survivor)
        await assert_eventually(settled, timeout=15, message="every run the survivor claimed started")

        runs = shape.rows("SELECT seq, check_id, scheduled_at, started_at, claimed_by, verdict FROM monitor_runs "
                          "WHERE monitor_id = %s ORDER BY seq", uuid.UUID(mid))
        checks = shape.rows("SELECT monitor_run, id FROM checks WHERE monitor_id = %s ORDER BY monitor_run",
                            uuid.UUID(mid))
        twice = shape.rows("SELECT t.check_id, t.agent_id, count(*) FROM check_tasks t JOIN checks c "
                           "ON c.id = t.check_id WHERE c.monitor_id = %s GROUP BY t.check_id, t.agent_id "
                           "HAVING count(*) > 1", uuid.UUID(mid))
    finally:
        await shape.delete(mid)
        if victim and not shape.system.procs[victim].alive():
            await shape.system.start_service(victim)

    seqs = [r[0] for r in runs]
    assert seqs == list(range(1, len(runs) + 1)), f"runs numbered without gaps or repeats: {seqs}"
    # Nothing ran twice: one check per run, the one claimed with it; one task per agent in it.
    per_run: dict[int, list] = {}
    for run_seq, check_id in checks:
        per_run.setdefault(run_seq, []).append(check_id)
    assert all(len(ids) == 1 for ids in per_run.values()), per_run
    claimed = {r[0]: r[1] for r in runs}
    assert all(claimed[seq] == ids[0] for seq, ids in per_run.items()), "each run's check has the claimed id"
    assert twice == [], twice
    # At most one interval lost: runs never started (claimed by the victim as it died) plus intervals
    # skipped between consecutive scheduled times.
    never_started = [(seq, by) for seq, _, _, started, by, verdict in runs if started is None and verdict != "unknown"]
    assert all(by == victim for _, by in never_started), never_started
    skipped = sum(max(0, round((b[2] - a[2]).total_seconds() / interval) - 1) for a, b in zip(runs, runs[1:], strict=False))
    unknown = [r[0] for r in runs if r[5] == "unknown"]
    print(f"killed {victim}: {len(runs)} runs, {len(never_started)} never started, {skipped} intervals skipped, "
          f"{len(unknown)} without an agent to run them")
    assert len(never_started) + skipped <= 1, (never_started, skipped, [(r[0], r[2], r[4]) for r in runs])
    assert {r[4] for r in runs if r[0] > runs_at_kill} == {survivor}, "the survivor runs the monitor on its own now"


def test_lab_is_removed_even_when_a_test_fails():
    reason = cannot_create()
    if reason:
        pytest.skip(f"no network namespaces here: {reason}")
    lab = MonitorLab(agents=2)
    with pytest.raises(RuntimeError, match="a failing test"):
        try:
            lab.create()
            lab.cut_off(1)
            raise RuntimeError("a failing test")
        finally:
            lab.delete()
    assert lab.leftovers() == []


async def test_monitors_bench_runs_at_a_tiny_scale(tmp_path):
    """bench/test_monitors_bench.py (make bench) at a tiny scale, so it never rots; goals are not checked."""
    from bench.test_monitors_bench import SMOKE_MONITORS, monitors_at_scale

    notes: list[str] = []
    rows = await monitors_at_scale(SMOKE_MONITORS, tmp_path, notes)
    assert len(rows) == 4 and notes and "lateness" in notes[0]
    assert not any(math.isnan(r.measured) for r in rows), rows
    assert rows[1].measured > 0, notes
