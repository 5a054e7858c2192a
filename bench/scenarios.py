"""The scenarios of issue 8, each an async function of a `Scale` returning table rows.

`FULL` is what `make bench` runs; `SMOKE` runs every scenario at a tiny scale in
seconds (tests/test_bench_smoke.py) so they never rot. The same code measures both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import psycopg
import redis
from google.protobuf import timestamp_pb2

from bench import floors
from bench.feeder import start_feeder, task_maker
from bench.httpclient import Connection
from bench.report import Row
from bench.retention import retention
from bench.simagent import SimFleet
from bench.system import (
    CLK_TCK,
    DNS_NAME,
    BenchSystem,
    Blackbox,
    CpuWindow,
    Targets,
    cpu_s,
    percentile,
    rss_kb,
    start_blackbox,
    start_gateway,
    start_targets,
)
from hostcheck.core.config import SchedulerConfig
from hostcheck.v1 import (
    checks_pb2,
    dns_pb2,
    http_pb2,
    registry_pb2,
    results_pb2,
    results_pb2_grpc,
    scheduler_pb2,
    tcp_pb2,
)
from tests.conftest import REDIS_URL, fresh_postgres_db
from tests.helpers import Proc, hostcheck_cmd


@dataclass(frozen=True)
class Scale:
    sim_processes: int = 4
    streams_per_channel: int = 50
    stream_agents: int = 10_000
    stream_window_s: float = 20.0
    fanout_agents: int = 1_000
    fanout_runs: int = 3
    ingest_agents: int = 1_000
    ingest_checks: int = 40
    ingest_create_budget_s: float = 15.0
    latency_runs: int = 200
    throughput_s: float = 4.0
    throughput_rounds: int = 2
    footprint_s: float = 30.0
    watch_checks: int = 200
    watchers_per_check: int = 10
    watch_agents: int = 50
    watch_tasks_per_check: int = 5
    watch_spread_s: float = 4.0
    retention_results: int = 1_000_000
    retention_window_s: float = 30.0
    retention_rps: float = 10.0
    retention_sweep_max_s: float = 90.0


FULL = Scale()
# Smoke retention at 200 calls/s: its sweep of 2,000 results lasts ~0.1 s, and at 10/s often no
# RecordResults call fell inside it (a NaN ratio).
SMOKE = Scale(sim_processes=1, streams_per_channel=5, stream_agents=20, stream_window_s=0.5, fanout_agents=10,
              fanout_runs=1, ingest_agents=10, ingest_checks=3, latency_runs=4, throughput_s=0.3,
              throughput_rounds=1, footprint_s=0.5, watch_checks=3, watchers_per_check=2, watch_agents=4,
              watch_tasks_per_check=2, watch_spread_s=0.2, retention_results=2_000, retention_window_s=0.5,
              retention_rps=200.0, retention_sweep_max_s=5.0)

# Tasks that agents hold back for a while get the longest tcp timeout (30 s), so none
# times out before it is released.
HOLD_TIMEOUT_MS = 30_000


@contextlib.asynccontextmanager
async def bench_system(workdir: Path):
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    with fresh_postgres_db() as url:
        system = BenchSystem(url, REDIS_URL, prefix, workdir)
        try:
            yield await system.start()
        finally:
            await system.stop()
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


@contextlib.asynccontextmanager
async def sim_fleet(scale: Scale, workdir: Path, processes: int | None = None):
    fleet = SimFleet(processes or scale.sim_processes, log_dir=workdir)
    try:
        yield await fleet.start()
    finally:
        await fleet.stop()


@contextlib.asynccontextmanager
async def targets(workdir: Path):
    t = await start_targets(workdir)
    try:
        yield t
    finally:
        t.stop()


async def until(predicate, *, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(interval)


async def watch_until_done(system: BenchSystem, check_id: str) -> float:
    """Monotonic time the check's done event arrived."""
    async for event in system.checks.WatchCheck(results_pb2.WatchCheckRequest(check_id=check_id), timeout=120):
        if event.event == "done":
            return time.monotonic()
    raise AssertionError(f"watch of {check_id} ended without done")


def hold_request(target: str, limit: int) -> scheduler_pb2.CreateCheckRequest:
    return scheduler_pb2.CreateCheckRequest(target=target, checks=["tcp"], timeout_ms=HOLD_TIMEOUT_MS,
                                            agents=checks_pb2.AgentSelector(limit=limit))


# ---- stream capacity ----------------------------------------------------------------------------

async def stream_capacity(scale: Scale, workdir: Path, notes: list[str]) -> list[Row]:
    n = scale.stream_agents
    async with bench_system(workdir) as system, sim_fleet(scale, workdir) as fleet:
        agents = system.add_agents(n)
        sched = system.pid("scheduler")
        await asyncio.sleep(0.5)
        rss_before = rss_kb(sched)
        connected = await fleet.connect(system.addr("scheduler"), agents, mode="synthetic",
                                        streams_per_channel=scale.streams_per_channel)
        rss_connected = rss_kb(sched)
        before = await fleet.stats()
        window = CpuWindow({"scheduler": sched, "registry": system.pid("registry")})
        await asyncio.sleep(scale.stream_window_s)
        cpu = window.percent()
        after = await fleet.stats()
        rss_after = rss_kb(sched)
        held = after["agents"] - after["disconnects"]
        per_stream_kb = (max(rss_connected, rss_after) - rss_before) / n
        heartbeats_s = (after["heartbeats"] - before["heartbeats"]) / scale.stream_window_s
    # Floor: the same streams and heartbeats held by a bare grpcio server (bench/floors.py).
    bare = await floors.heartbeat_server(int(SchedulerConfig().heartbeat_interval_s))
    try:
        async with sim_fleet(scale, workdir) as fleet:
            await fleet.connect(f"127.0.0.1:{bare.port}", agents, mode="synthetic",
                                streams_per_channel=scale.streams_per_channel)
            floor_before = await fleet.stats()
            floor_window = floors.CpuSince(bare.pid)
            await asyncio.sleep(scale.stream_window_s)
            floor_cpu = floor_window.percent()
            floor_hb_s = ((await fleet.stats())["heartbeats"] - floor_before["heartbeats"]) / scale.stream_window_s
    finally:
        await bare.stop()
    notes.append(f"stream capacity: {n:,} agents connected in {connected['seconds']:.1f} s "
                 f"({n / connected['seconds']:,.0f}/s, each checked by the registry; {connected['retries']} connect "
                 f"attempts refused and retried), "
                 f"{scale.streams_per_channel} streams per HTTP/2 connection; scheduler RSS "
                 f"{rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MB; over {scale.stream_window_s:g} s: "
                 f"{heartbeats_s:,.0f} heartbeats/s, scheduler {cpu['scheduler']:.1f}% of a core "
                 f"(registry {cpu['registry']:.1f}%), {after['disconnects']} disconnects. Floor: the same "
                 f"{n:,} streams on a bare grpcio AgentStreamService: {floor_hb_s:,.0f} heartbeats/s cost it "
                 f"{floor_cpu:.1f}% of a core.")
    return [
        Row("stream capacity", "agent streams held by one scheduler", scale.stream_agents, held, "agents", False),
        Row("stream capacity", "scheduler RSS per agent stream", 40, per_stream_kb, "KB", True),
        Row("stream capacity", f"scheduler CPU for {n:,} agents' heartbeats (default interval, "
            f"{SchedulerConfig().heartbeat_interval_s:g} s)", 10, cpu["scheduler"], "% of a core",
            True, f"{heartbeats_s:,.0f} heartbeats/s; floor: bare grpcio stream server, {floor_hb_s:,.0f}/s",
            floor=floor_cpu),
    ]


# ---- fan-out ------------------------------------------------------------------------------------

async def fanout(scale: Scale, workdir: Path, notes: list[str]) -> list[Row]:
    n = scale.fanout_agents
    wire, done = [], []
    async with bench_system(workdir) as system, sim_fleet(scale, workdir) as fleet, targets(workdir) as tg:
        agents = system.add_agents(n)
        await fleet.connect(system.addr("scheduler"), agents, mode="probe",
                            streams_per_channel=scale.streams_per_channel)
        request = scheduler_pb2.CreateCheckRequest(target=f"127.0.0.1:{tg.http_port}", checks=["tcp"],
                                                   agents=checks_pb2.AgentSelector(limit=n))
        for _ in range(scale.fanout_runs):
            t0 = time.monotonic()
            created = await system.create.CreateCheck(request, timeout=30)
            created_at = time.monotonic()
            done_at = await watch_until_done(system, created.check_id)
            stats = await fleet.stats([created.check_id])
            count, _, last = stats["arrivals"][created.check_id]
            assert count == n, f"{count} of {n} tasks arrived"
            check = (await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=created.check_id))).check
            assert check.status == "completed" and check.tasks_done == n
            assert all(r.success for r in check.results), [r.error for r in check.results if not r.success][:3]
            wire.append(last - t0)
            done.append(done_at - t0)
            notes.append(f"fan-out to {n:,}: CreateCheck returned after {1000 * (created_at - t0):.0f} ms, "
                         f"last task on the wire at {1000 * (last - t0):.0f} ms, completed at "
                         f"{1000 * (done_at - t0):.0f} ms")
        # Floor: the same fan-out through bare grpcio processes (as many agent processes and streams
        # per connection as the simulated fleet), a fresh tcp connection per agent to the same target.
        async with floors.raw_chain(f"127.0.0.1:{tg.http_port}", agents=n,
                                    processes=scale.sim_processes) as via_floor:
            await via_floor()  # warm-up
            floor_s = [await via_floor() / 1000 for _ in range(scale.fanout_runs)]
    notes.append(f"fan-out floor (bare grpcio chain, same hops, {n:,} agent streams in {scale.sim_processes} "
                 f"processes): completed in median {percentile(floor_s, 50):.3f} s, worst {max(floor_s):.3f} s")
    return [
        Row("fan-out", f"one check to {n:,} agents: all tasks on the wire (median of {len(wire)})", 0.5,
            percentile(wire, 50), "s", True, f"worst {max(wire):.2f} s"),
        Row("fan-out", f"one check to {n:,} agents: completed, tcp to loopback (median of {len(done)})", 2.0,
            percentile(done, 50), "s", True, f"worst {max(done):.2f} s; floor: bare grpcio chain",
            floor=percentile(floor_s, 50)),
    ]


# ---- ingestion ----------------------------------------------------------------------------------

async def ingestion(scale: Scale, workdir: Path, notes: list[str]) -> list[Row]:
    n = scale.ingest_agents
    async with bench_system(workdir) as system, sim_fleet(scale, workdir) as fleet:
        agents = system.add_agents(n)
        await fleet.connect(system.addr("scheduler"), agents, mode="hold",
                            streams_per_channel=scale.streams_per_channel)
        t0 = time.monotonic()
        checks = 0
        while checks < scale.ingest_checks and time.monotonic() - t0 < scale.ingest_create_budget_s:
            await system.create.CreateCheck(hold_request("127.0.0.1:9", n), timeout=60)
            checks += 1
        create_s = time.monotonic() - t0
        expected = checks * n
        await until(lambda: _held(fleet, expected), timeout=60, what=f"{expected} tasks at the agents")
        released_at = time.monotonic()
        released = await fleet.release()
        stats = await until(lambda: _acked(fleet, released), timeout=300, what=f"{released} results acked",
                            interval=0.1)
        elapsed = stats["last_ack"] - released_at
        rate = released / elapsed
        with psycopg.connect(system.database_url) as conn:
            stored = conn.execute("select count(*) from check_results").fetchone()[0]
        assert stored == released, f"{stored} results stored of {released}"
        # Floor: the same rows written again into the same tables by one COPY (services stopped
        # writing: every result is acked), in the same database and run.
        copy_rate, copied = floors.raw_copy(system.database_url)
        notes.append(f"ingestion: {checks} checks x {n:,} agents = {released:,} results, released at once by the "
                     f"agents (batches of 100), all stored and acked in {elapsed:.2f} s; creating the checks "
                     f"took {create_s:.1f} s ({expected / create_s:,.0f} tasks/s planned and dispatched). Floor: "
                     f"the same {copied:,} rows by one COPY into check_results plus one UPDATE of their "
                     f"check_tasks, one transaction: {copy_rate:,.0f} rows/s.")
    return [Row("ingestion", "results/s from agents stored in Postgres and acked", 10_000, rate, "results/s", False,
                f"{released:,} results from {n:,} agents; floor: raw COPY of the same rows", floor=copy_rate),
            Row("ingestion", "results/s stored and acked / raw COPY of the same rows", 0.3, rate / copy_rate,
                "x floor", False)]


async def _held(fleet: SimFleet, expected: int) -> bool:
    return (await fleet.stats())["held"] >= expected


async def _acked(fleet: SimFleet, expected: int) -> dict | None:
    stats = await fleet.stats()
    return stats if stats["acked"] >= expected else None


# ---- latency ------------------------------------------------------------------------------------

async def latency(scale: Scale, workdir: Path, notes: list[str]) -> list[Row]:
    async with bench_system(workdir) as system, targets(workdir) as tg:
        agents = system.add_agents(3)
        for i, agent in enumerate(agents):
            system.start_agent(f"lat-{i}", agent)
        registry = grpc.aio.insecure_channel(system.addr("registry"))
        system.channels.append(registry)

        async def online() -> bool:
            reply = await system.registry_stub(registry).ListAgents(registry_pb2.ListAgentsRequest(status="online"))
            return reply.online >= 3
        await until(online, timeout=30, what="3 agents online")
        gw = await start_gateway(system, workdir / "gateway")
        try:
            target = f"127.0.0.1:{tg.http_port}"
            grpc_request = scheduler_pb2.CreateCheckRequest(target=target, checks=["tcp"],
                                                            agents=checks_pb2.AgentSelector(limit=3))
            rest_body = json.dumps({"target": target, "checks": ["tcp"], "agents": {"limit": 3}}).encode()
            rest = Connection("127.0.0.1", gw.port)

            async def via_grpc() -> float:
                t0 = time.monotonic()
                created = await system.create.CreateCheck(grpc_request, timeout=10)
                done = await watch_until_done(system, created.check_id)
                return done - t0

            async def via_rest() -> float:
                t0 = time.monotonic()
                status, body = await rest.request("POST", "/api/checks", rest_body,
                                                  {"Content-Type": "application/json"})
                assert status == 200, (status, body[:300])
                check_id = json.loads(body)["check_id"]
                lines = await Connection("127.0.0.1", gw.port).stream_lines(
                    f"/api/checks/{check_id}/watch", until=_is_done)
                assert _is_done(lines[-1]), lines[-1][:300]
                return time.monotonic() - t0

            # Floor: the same hops through bare grpcio processes and a fresh tcp connection to the
            # same target per agent (bench/floors.py), interleaved with the product's runs.
            async with floors.raw_chain(target, agents=3) as via_floor:
                for _ in range(max(3, scale.latency_runs // 20)):  # warm-up: connections, caches
                    await via_grpc()
                    await via_rest()
                    await via_floor()
                grpc_ms, rest_ms, floor_ms = [], [], []
                for _ in range(scale.latency_runs):  # interleaved, so load from elsewhere hits all alike
                    grpc_ms.append(1000 * await via_grpc())
                    rest_ms.append(1000 * await via_rest())
                    floor_ms.append(await via_floor())
            rest.close()
            # The same with one more watch open elsewhere (a dashboard), which keeps the results
            # service's live-state subscription reader busy: shows what its idle wait costs.
            other = await _open_idle_watch(system, agents[0][0])
            busy_ms = [1000 * await via_grpc() for _ in range(max(1, scale.latency_runs // 2))]
            other.cancel()
        finally:
            gw.proc.stop()
    g50, g99, r50, r99 = (percentile(grpc_ms, 50), percentile(grpc_ms, 99), percentile(rest_ms, 50),
                          percentile(rest_ms, 99))
    f50, f99 = floors.summary(floor_ms)
    notes.append(f"latency (create -> done event, {scale.latency_runs} of each, interleaved): gRPC p50 {g50:.1f} / "
                 f"p99 {g99:.1f} ms; Envoy REST (POST + NDJSON watch) p50 {r50:.1f} / p99 {r99:.1f} ms. "
                 f"gRPC with one other watch open on the results service: p50 {percentile(busy_ms, 50):.1f} / "
                 f"p99 {percentile(busy_ms, 99):.1f} ms ({len(busy_ms)} checks). Floor (bare grpcio chain, "
                 f"same hops, 3 agent processes each opening a tcp connection to the target): p50 {f50:.2f} / "
                 f"p99 {f99:.2f} ms.")
    return [
        Row("latency", "create -> completed, 1 tcp check on 3 agents, gRPC p50", 15, g50, "ms", True, floor=f50),
        Row("latency", "create -> completed, 1 tcp check on 3 agents, gRPC p99", 50, g99, "ms", True, floor=f99),
        Row("latency", "create -> completed p50 / its floor (bare grpcio chain, same hops)", 3, g50 / f50,
            "x floor", True),
        Row("latency", "added by Envoy REST (p50 REST - p50 gRPC)", 2, r50 - g50, "ms", True,
            f"REST p50 {r50:.1f} ms, p99 {r99:.1f} ms"),
    ]


async def _open_idle_watch(system: BenchSystem, agent_id: str):
    """A WatchCheck held open on a check whose one task is never sent to an agent (it stays pending)."""
    deadline = timestamp_pb2.Timestamp()
    deadline.FromDatetime(datetime.now(UTC) + timedelta(minutes=10))
    check_id = str(uuid.uuid4())
    await results_pb2_grpc.ResultsIngestServiceStub(system.results_channel).OpenCheck(results_pb2.OpenCheckRequest(
        check_id=check_id, request=scheduler_pb2.CreateCheckRequest(target="127.0.0.1:9", checks=["tcp"]),
        tasks=[results_pb2.PlannedTask(task_id=str(uuid.uuid4()), agent_id=agent_id, check_type="tcp",
                                       deadline=deadline)], deadline=deadline))
    call = system.checks.WatchCheck(results_pb2.WatchCheckRequest(check_id=check_id))
    await call.read()  # the snapshot: subscribed
    return call


def _is_done(line: bytes) -> bool:
    doc = json.loads(line)
    return (doc.get("result", doc)).get("event") == "done"


# ---- agent throughput and footprint vs blackbox_exporter ---------------------------------------

def start_agent_process(workdir: Path, name: str, scheduler_addr: str, agent: tuple[str, str]) -> Proc:
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    env.update({"HOSTCHECK_SCHEDULER_ADDR": scheduler_addr, "HOSTCHECK_AGENT_ID": agent[0],
                "HOSTCHECK_API_TOKEN": agent[1], "HOSTCHECK_STATE_FILE": str(workdir / f"{name}.json"),
                "HOSTCHECK_NAME": name, "HOSTCHECK_ALLOW_TARGETS": "127.0.0.0/8,::1/128"})
    return Proc(hostcheck_cmd("agent"), env=env, log_path=workdir / f"{name}.log")


def probe_specs(tg: Targets) -> dict[str, tuple]:
    """check type -> (agent task target, options, blackbox module, blackbox target): the same targets."""
    return {
        "tcp": (f"127.0.0.1:{tg.http_port}", tcp_pb2.TcpOptions(), "tcp_connect", f"127.0.0.1:{tg.http_port}"),
        "http": (f"http://127.0.0.1:{tg.http_port}/", http_pb2.HttpOptions(), "http_2xx",
                 f"http://127.0.0.1:{tg.http_port}/"),
        "dns": (DNS_NAME, dns_pb2.DnsOptions(record_type="A", resolver=f"127.0.0.1:{tg.dns_port}"), "dns_a",
                f"127.0.0.1:{tg.dns_port}"),
    }


async def blackbox_load(bb: Blackbox, module: str, target: str, *, concurrency: int, seconds: float
                        ) -> tuple[float, int]:
    """(successful probes/s, failed) with `concurrency` requests in flight."""
    path = f"/probe?module={module}&target={target}"
    ok = failed = 0
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal ok, failed
        conn = Connection("127.0.0.1", bb.port)
        try:
            while time.monotonic() < stop_at:
                status, body = await conn.request("GET", path)
                if status == 200 and b"\nprobe_success 1" in body:
                    ok += 1
                else:
                    failed += 1
        finally:
            conn.close()

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ok / (time.monotonic() - t0), failed


async def agent_throughput(scale: Scale, workdir: Path, notes: list[str]) -> list[Row]:
    from hostcheck.core.config import AgentConfig

    concurrency = AgentConfig().concurrency
    rows = []
    server, port, feeder = await start_feeder()
    workdir.mkdir(parents=True, exist_ok=True)
    agent = start_agent_process(workdir, "throughput-agent", f"127.0.0.1:{port}", (str(uuid.uuid4()), "x"))
    try:
        async with targets(workdir) as tg:
            bb = await start_blackbox(workdir)
            try:
                await until(feeder.connected.is_set, timeout=30, what="agent connected to the feeder")
                for check_type, (target, options, module, bb_target) in probe_specs(tg).items():
                    agent_rates, bb_rates, agent_per_cpu, bb_per_cpu = [], [], [], []
                    for _ in range(scale.throughput_rounds):
                        feeder.feed(task_maker(check_type, target, options), window=2 * concurrency)
                        await asyncio.sleep(min(0.5, scale.throughput_s))  # warm-up
                        cpu0 = cpu_s(agent.pid)
                        rate, ok, errors = await feeder.measure(scale.throughput_s)
                        agent_cpu_s = cpu_s(agent.pid) - cpu0
                        feeder.pause()
                        assert not errors, f"agent {check_type} errors: {errors}"
                        agent_rates.append(ok / scale.throughput_s)
                        agent_per_cpu.append(ok / max(agent_cpu_s, 1 / CLK_TCK))
                        await asyncio.sleep(0.3)  # the agent finishes what it holds
                        cpu0, t0 = cpu_s(bb.proc.pid), time.monotonic()
                        bb_rate, failed = await blackbox_load(bb, module, bb_target, concurrency=concurrency,
                                                              seconds=scale.throughput_s)
                        bb_wall, bb_cpu_s = time.monotonic() - t0, cpu_s(bb.proc.pid) - cpu0
                        assert not failed, f"blackbox {module}: {failed} failed probes"
                        bb_rates.append(bb_rate)
                        bb_per_cpu.append(bb_rate * bb_wall / max(bb_cpu_s, 1 / CLK_TCK))
                        notes.append(f"throughput {check_type}: agent {agent_rates[-1]:,.0f} checks/s at "
                                     f"{100 * agent_cpu_s / scale.throughput_s:.0f}% CPU "
                                     f"({agent_per_cpu[-1]:,.0f} per CPU-second), blackbox_exporter "
                                     f"{bb_rate:,.0f} probes/s at {100 * bb_cpu_s / bb_wall:.0f}% CPU "
                                     f"({bb_per_cpu[-1]:,.0f} per CPU-second) ({concurrency} in flight each)")
                    a, b = max(agent_rates), max(bb_rates)
                    ac, bc = max(agent_per_cpu), max(bb_per_cpu)
                    rows.append(Row("agent throughput", f"{check_type}: agent checks/s / blackbox_exporter probes/s",
                                    1.0, a / b, "x", False, f"agent {a:,.0f}/s, blackbox_exporter {b:,.0f}/s"))
                    rows.append(Row("agent throughput",
                                    f"{check_type}: per CPU-second, agent checks / blackbox_exporter probes",
                                    1.0, ac / bc, "x", False,
                                    f"agent {ac:,.0f}/CPU-s, blackbox_exporter {bc:,.0f}/CPU-s"))
            finally:
                bb.stop()
    finally:
        agent.stop()
        await server.stop(0)
    return rows


async def footprint(scale: Scale, workdir: Path, notes: list[str]) -> list[Row]:
    async with bench_system(workdir) as system, targets(workdir) as tg:
        agent_id = system.add_agents(1)[0]
        agent = system.start_agent("idle-agent", agent_id)
        bb = await start_blackbox(workdir)
        try:
            # One check of each kind first, so both have loaded what probing needs.
            for check_type, (target, options, module, bb_target) in probe_specs(tg).items():
                request = scheduler_pb2.CreateCheckRequest(target=target, checks=[check_type])
                getattr(request, check_type).CopyFrom(options)

                async def create(request=request):
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        return await system.create.CreateCheck(request, timeout=10)
                created = await until(create, timeout=30, what="the agent takes a check")
                await watch_until_done(system, created.check_id)
                status, body = await Connection("127.0.0.1", bb.port).request(
                    "GET", f"/probe?module={module}&target={bb_target}")
                assert status == 200 and b"\nprobe_success 1" in body, body[-300:]
            # Floor: a bare Python + grpcio process holding one heartbeating stream to the same scheduler.
            bare = await floors.idle_agent(system.addr("scheduler"), system.add_agents(1, prefix="floor")[0])
            try:
                await asyncio.sleep(min(2.0, scale.footprint_s))
                window = CpuWindow({"agent": agent.pid, "blackbox": bb.proc.pid, "floor": bare.pid})
                await asyncio.sleep(scale.footprint_s)
                cpu = window.percent()
                agent_mb, bb_mb, floor_mb = (rss_kb(agent.pid) / 1024, rss_kb(bb.proc.pid) / 1024,
                                             rss_kb(bare.pid) / 1024)
            finally:
                await bare.stop()
        finally:
            bb.stop()
    notes.append(f"footprint over {scale.footprint_s:g} s idle (after one tcp, http and dns check each): agent "
                 f"{agent_mb:.1f} MB RSS, {cpu['agent']:.3f}% CPU; blackbox_exporter {bb_mb:.1f} MB, "
                 f"{cpu['blackbox']:.3f}% CPU. Floor (Python + grpcio holding one heartbeating stream to the "
                 f"same scheduler, same window): {floor_mb:.1f} MB, {cpu['floor']:.3f}% CPU.")
    return [
        Row("agent footprint", "idle agent RSS", 45, agent_mb, "MB", True,
            f"blackbox_exporter {bb_mb:.1f} MB; floor: Python + grpcio, one stream", floor=floor_mb),
        Row("agent footprint", "idle agent CPU", 0.5, cpu["agent"], "% of a core", True,
            f"blackbox_exporter {cpu['blackbox']:.3f}%", floor=cpu["floor"]),
    ]


# ---- watchers -----------------------------------------------------------------------------------

async def watchers(scale: Scale, workdir: Path, notes: list[str]) -> list[Row]:
    total = scale.watch_checks * scale.watchers_per_check
    delays: list[float] = []
    async with bench_system(workdir) as system, sim_fleet(scale, workdir, processes=1) as fleet:
        agents = system.add_agents(scale.watch_agents)
        await fleet.connect(system.addr("scheduler"), agents, mode="hold",
                            streams_per_channel=scale.streams_per_channel)
        check_ids = [(await system.create.CreateCheck(
            hold_request("127.0.0.1:9", scale.watch_tasks_per_check), timeout=30)).check_id
            for _ in range(scale.watch_checks)]
        channels = [grpc.aio.insecure_channel(system.addr("results"), options=[("bench.channel", i)])
                    for i in range(max(1, total // 100))]
        system.channels.extend(channels)
        ready = 0
        finished = 0

        async def watch(i: int, check_id: str) -> None:
            nonlocal ready, finished
            stub = results_pb2_grpc.ResultsServiceStub(channels[i % len(channels)])
            async for event in stub.WatchCheck(results_pb2.WatchCheckRequest(check_id=check_id), timeout=300):
                if event.event == "snapshot":
                    ready += 1
                elif event.event == "task":
                    stored = event.task.completed_at.seconds + event.task.completed_at.nanos / 1e9
                    delays.append(1000 * (time.time() - stored))
                elif event.event == "done":
                    break
            finished += 1

        results_pid = system.pid("results")
        rss0 = rss_kb(results_pid)
        # Watchers arrive at 500/s: a burst of thousands of new streams within ~0.1 s makes grpcio's
        # aio server cancel some (RST_STREAM CANCEL) before the handler runs; a ramp does not.
        tasks = []
        for i, c in enumerate(c for c in check_ids for _ in range(scale.watchers_per_check)):
            tasks.append(asyncio.create_task(watch(i, c)))
            if i % 100 == 99:
                await asyncio.sleep(0.2)
        await until(lambda: ready >= total or any(t.done() for t in tasks), timeout=120,
                    what=f"{total} watchers subscribed")
        for t in tasks:
            if t.done():
                t.result()
        rss1 = rss_kb(results_pid)
        window = CpuWindow({"results": results_pid})
        await fleet.release(scale.watch_spread_s)
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), 120)
        finally:
            for t in tasks:
                t.cancel()
        cpu = window.percent()
    expected = total * scale.watch_tasks_per_check
    assert len(delays) == expected, f"{len(delays)} task events of {expected}"
    p50, p99 = percentile(delays, 50), percentile(delays, 99)
    # Floor: the same events published straight to Redis on as many channels, read by as many
    # watchers over as many connections as the watch streams used, over the same spread.
    floor_delays = await floors.raw_publish(REDIS_URL, checks=scale.watch_checks,
                                            watchers_per_check=scale.watchers_per_check,
                                            events_per_check=scale.watch_tasks_per_check,
                                            connections=max(1, total // 100), spread_s=scale.watch_spread_s)
    f50, f99 = floors.summary(floor_delays)
    notes.append(f"watchers: {total:,} WatchCheck streams on {scale.watch_checks} checks; "
                 f"{expected:,} task events delivered over ~{scale.watch_spread_s:g} s: p50 {p50:.1f}, "
                 f"p99 {p99:.1f}, max {max(delays):.1f} ms after storing; results RSS "
                 f"{rss0 / 1024:.0f} -> {rss1 / 1024:.0f} MB with the watchers "
                 f"({(rss1 - rss0) / total:.0f} KB each), results CPU {cpu['results']:.0f}% while delivering. "
                 f"Floor (the same {len(floor_delays):,} deliveries as raw Redis PUBLISH to "
                 f"{max(1, total // 100)} subscriber connections): p50 {f50:.2f}, p99 {f99:.2f} ms.")
    return [
        Row("watchers", "WatchCheck streams held by one results process", total, finished, "streams", False),
        Row("watchers", "event delivered after storing, p99", 50, p99, "ms", True,
            f"p50 {p50:.1f} ms; floor: raw Redis publish, p50 {f50:.2f} ms", floor=f99),
    ]


SCENARIOS = {
    "stream_capacity": stream_capacity,
    "fanout": fanout,
    "ingestion": ingestion,
    "latency": latency,
    "agent_throughput": agent_throughput,
    "footprint": footprint,
    "watchers": watchers,
    "retention": retention,
}
