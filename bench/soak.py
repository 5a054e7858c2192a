"""Soak (issue 6): many simulated agents and live watchers for a bounded time; nothing lost.

Simulated agents (bench.simagent, the real stream protocol and token check) answer every
task; checks are created at a steady rate for `seconds`; `watchers` WatchCheck streams
stay open the whole time, each following the newest check to its end and then the next.
At the end every check must be terminal, and the results stored must equal the results
the agents produced (one per task they received): nothing lost, nothing duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg

from bench.report import Row
from bench.scenarios import bench_system, sim_fleet, until
from bench.system import percentile
from hostcheck.v1 import checks_pb2, results_pb2, scheduler_pb2


@dataclass(frozen=True)
class SoakScale:
    agents: int = 1_000
    watchers: int = 200
    seconds: float = 60.0
    checks_per_s: float = 5.0
    agents_per_check: int = 50
    watchers_per_check: int = 10
    sim_processes: int = 4
    streams_per_channel: int = 50


FULL_SOAK = SoakScale()
SMOKE_SOAK = SoakScale(agents=12, watchers=6, seconds=2.0, checks_per_s=4.0, agents_per_check=4,
                       watchers_per_check=2, sim_processes=1, streams_per_channel=6)


async def soak(scale: SoakScale, workdir: Path, notes: list[str]) -> list[Row]:
    async with bench_system(workdir) as system, sim_fleet(scale, workdir, scale.sim_processes) as fleet:
        agents = system.add_agents(scale.agents, prefix="soak")
        await fleet.connect(system.addr("scheduler"), agents, mode="synthetic",
                            streams_per_channel=scale.streams_per_channel)
        created: dict[str, float] = {}
        done_at: dict[str, float] = {}
        newest: list[str] = []
        stop = asyncio.Event()

        watching: dict[str, int] = {}

        async def watcher() -> None:
            """Follows the newest check short of watchers to its end, then the next; one stream at a time."""
            while not (stop.is_set() and all(c in done_at for c in created)):
                pending = [c for c in reversed(newest)
                           if c not in done_at and watching.get(c, 0) < scale.watchers_per_check]
                if not pending:
                    await asyncio.sleep(0.02)
                    continue
                check_id = pending[0]
                watching[check_id] = watching.get(check_id, 0) + 1
                with contextlib.suppress(grpc.aio.AioRpcError):
                    async for event in system.checks.WatchCheck(
                            results_pb2.WatchCheckRequest(check_id=check_id), timeout=120):
                        if event.event == "done":
                            done_at.setdefault(check_id, time.monotonic())
                            break

        watchers = [asyncio.create_task(watcher()) for _ in range(scale.watchers)]
        started = time.monotonic()
        errors = 0
        create_ms: list[float] = []
        request = scheduler_pb2.CreateCheckRequest(
            target="127.0.0.1:9", checks=["tcp"], agents=checks_pb2.AgentSelector(limit=scale.agents_per_check))
        interval = 1.0 / scale.checks_per_s
        next_at = started
        while time.monotonic() - started < scale.seconds:
            t0 = time.monotonic()
            try:
                reply = await system.create.CreateCheck(request, timeout=30)
                created[reply.check_id] = t0
                create_ms.append((time.monotonic() - t0) * 1000)
                newest.append(reply.check_id)
            except grpc.aio.AioRpcError:
                errors += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        stop.set()

        async def all_done() -> bool:
            return all(c in done_at for c in created)
        await until(all_done, timeout=120, what="every soak check done (watched)")
        await asyncio.gather(*watchers)
        stats = await fleet.stats()
        with psycopg.connect(system.database_url) as conn:
            stored = conn.execute("SELECT count(*), count(DISTINCT task_id) FROM check_results").fetchone()
            tasks = conn.execute("SELECT count(*), count(*) FILTER (WHERE status = 'timed_out') FROM check_tasks"
                                 ).fetchone()
            statuses = dict(conn.execute("SELECT status, count(*) FROM checks GROUP BY status").fetchall())
            # As the service saw it: from the check's creation to its last task's result stored.
            server = sorted(float(r[0]) for r in conn.execute(
                "SELECT extract(epoch FROM completed_at - created_at) * 1000 FROM checks").fetchall())
        latencies = sorted((done_at[c] - t) * 1000 for c, t in created.items())
        produced = stats["tasks_received"]
        notes.append(
            f"soak: {scale.agents} simulated agents, {scale.watchers} live watchers, {scale.seconds:g} s, "
            f"{len(created)} checks ({scale.agents_per_check} agents each, up to {scale.watchers_per_check} "
            f"watchers each, {errors} create errors), "
            f"{tasks[0]} tasks ({tasks[1]} timed out); results produced {produced}, stored {stored[0]} "
            f"({stored[1]} distinct tasks), acked {stats['acked']}; checks by status {statuses}; "
            f"create->complete as watchers saw it p50 {percentile(latencies, 50):.1f} ms, p99 "
            f"{percentile(latencies, 99):.1f} ms, as stored p50 {percentile(server, 50):.1f} ms, p99 "
            f"{percentile(server, 99):.1f} ms; CreateCheck calls p50 {percentile(create_ms, 50):.1f} ms; "
            f"agent disconnects {stats['disconnects']}")
        assert errors == 0, f"{errors} CreateCheck calls failed during the soak"
        assert stored[0] == stored[1] == produced == tasks[0], (stored, produced, tasks)
        assert statuses == {"completed": len(created)}, statuses
        p99 = percentile(server, 99)
        return [
            Row("soak", "results lost or duplicated (produced vs stored)", 0, float(abs(stored[0] - produced)),
                "results", True, f"{produced} produced, {stored[0]} stored"),
            Row("soak", f"create -> complete p99 with {scale.agents} agents, {scale.watchers} watchers", 50.0,
                p99, "ms", True, f"as stored; p50 {percentile(server, 50):.1f} ms over {len(created)} checks; "
                f"watchers saw p99 {percentile(latencies, 99):.0f} ms"),
        ]
