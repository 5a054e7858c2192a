"""Retention under load (issue 13): one sweep removes `retention_results` results (1,000,000 at full
scale: two months of partitions, their tasks and their 20,000 checks) while RecordResults runs at a
steady rate; its p99 during the sweep is compared with its p99 just before, without one.

The results service runs as its own process on Postgres and Redis with the production defaults,
except: retention off in it (days 0), because this process is the replica that sweeps, running
the same code (services/results/retention.py) with the 30-day default; and offline_after_s raised,
because the agents whose results are sent here are not connected anywhere (else their pending tasks
would be timed out under the measurement). Old rows are written straight into the database (as
months of use would have left them); the live checks' pending tasks too (as OpenCheck would write them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import psycopg
import redis

from bench.report import Row
from bench.system import percentile
from hostcheck.services.results.retention import Retention, add_months, ensure_partitions, month_start
from hostcheck.services.storage import db
from hostcheck.services.storage.livestate import RedisLiveState
from hostcheck.v1 import checks_pb2, results_pb2, results_pb2_grpc, scheduler_pb2, tcp_pb2
from tests.conftest import REDIS_URL, fresh_postgres_db
from tests.helpers import Proc, free_port, hostcheck_cmd, wait_serving

if TYPE_CHECKING:
    from bench.scenarios import Scale

TASKS_PER_CHECK = 50
RESULTS_PER_CALL = 10
# RecordResults calls in flight at most; a call that would exceed it is counted as refused.
MAX_IN_FLIGHT = 64
WARMUP_S = 5.0
# What a stored tcp result looks like (the typed data RecordResults writes).
RESULT_DATA = '{"tcp": {"address": "93.184.216.34", "port": 80, "ip_version": 4, "connect_ms": 12.5}}'


def seed_expired(url: str, months: list[datetime], results: int) -> int:
    """Checks of TASKS_PER_CHECK tasks, each answered, spread over `months`; returns the checks written."""
    checks = max(1, results // TASKS_PER_CHECK)
    start, end = months[0], add_months(months[-1], 1) - timedelta(hours=1)
    series = ("(SELECT i, %(start)s::timestamptz + i * %(step)s * interval '1 second' AS ts "
              "FROM generate_series(0, %(n)s - 1) i) s")
    args = {"start": start, "step": (end - start).total_seconds() / checks, "n": checks}
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO checks (id, target, check_types, request, status, created_at, completed_at, "
                     "deadline_at, client_ip) SELECT md5('c' || i)::uuid, 'example.com:80', '[\"tcp\"]', '{}', "
                     "'completed', ts, ts + interval '2 seconds', ts + interval '1 minute', '203.0.113.7' "
                     f"FROM {series}", args)
        conn.execute("INSERT INTO check_tasks (id, check_id, agent_id, agent_name, check_type, status, reason, "
                     "created_at, started_at, completed_at, deadline_at) SELECT md5('t' || i || '-' || j)::uuid, "
                     "md5('c' || i)::uuid, md5('a' || j)::uuid, 'agent-' || j, 'tcp', 'completed', '', ts, ts, "
                     f"ts + interval '1 second', ts + interval '1 minute' FROM {series}, "
                     f"generate_series(0, {TASKS_PER_CHECK - 1}) j", args)
        conn.execute("INSERT INTO check_results (id, task_id, check_id, agent_id, check_type, success, data, "
                     "error_code, duration_ms, started_at, created_at, late) SELECT md5('r' || i || '-' || j)::uuid, "
                     "md5('t' || i || '-' || j)::uuid, md5('c' || i)::uuid, md5('a' || j)::uuid, 'tcp', true, "
                     f"'{RESULT_DATA}', '', 12.5, ts, ts + interval '1 second', false FROM {series}, "
                     f"generate_series(0, {TASKS_PER_CHECK - 1}) j", args)
        conn.commit()
        # Now rather than by autovacuum during the measurement (a million inserted rows call for it).
        conn.autocommit = True
        conn.execute("VACUUM (ANALYZE) checks, check_tasks, check_results")
        conn.execute("CHECKPOINT")  # and their pages written out now, not by a checkpoint under the measurement
    return checks


def seed_pending(url: str, calls: int) -> list[tuple[str, list[tuple[str, str]]]]:
    """`calls` live checks of RESULTS_PER_CALL pending tasks: (check id, [(agent id, task id), ...]) each."""
    now = datetime.now(UTC)
    deadline = now + timedelta(hours=1)
    agents = [str(uuid.uuid4()) for _ in range(RESULTS_PER_CALL)]
    batches = [(str(uuid.uuid4()), [(a, str(uuid.uuid4())) for a in agents]) for _ in range(calls)]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY checks (id, target, check_types, request, status, created_at, deadline_at, client_ip) "
                      "FROM STDIN") as copy:
            for check_id, _ in batches:
                copy.write_row((check_id, "example.com:80", '["tcp"]', "{}", "in_progress", now, deadline, ""))
        with cur.copy("COPY check_tasks (id, check_id, agent_id, agent_name, check_type, status, reason, created_at, "
                      "deadline_at) FROM STDIN") as copy:
            for check_id, tasks in batches:
                for agent_id, task_id in tasks:
                    copy.write_row((task_id, check_id, agent_id, "bench", "tcp", "pending", "", now, deadline))
    return batches


def record_request(check_id: str, tasks: list[tuple[str, str]]) -> results_pb2.RecordResultsRequest:
    return results_pb2.RecordResultsRequest(results=[results_pb2.AgentResult(
        agent_id=agent_id, result=scheduler_pb2.TaskResult(
            task_id=task_id, check_id=check_id, check_type="tcp", success=True, duration_ms=12.5,
            data=checks_pb2.ResultData(tcp=tcp_pb2.TcpResult(address="93.184.216.34", port=80, ip_version=4,
                                                             connect_ms=12.5))))
        for agent_id, task_id in tasks])


class Load:
    """RecordResults at a steady rate (open loop: a slow call does not slow the next one down)."""

    def __init__(self, stub: results_pb2_grpc.ResultsIngestServiceStub, batches: list, rps: float) -> None:
        self.stub, self.batches, self.rps = stub, batches, rps
        self.calls: list[tuple[float, float]] = []  # (started, seconds)
        self.refused = self.failed = 0
        self.ran_out = False
        self._in_flight: set[asyncio.Task] = set()

    async def run(self) -> None:
        t0 = time.monotonic()
        for n, (check_id, tasks) in enumerate(self.batches):
            delay = t0 + n / self.rps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(self._in_flight) >= MAX_IN_FLIGHT:
                self.refused += 1
                continue
            call = asyncio.create_task(self._call(record_request(check_id, tasks)))
            self._in_flight.add(call)
            call.add_done_callback(self._in_flight.discard)
        self.ran_out = True

    async def _call(self, request) -> None:
        started = time.monotonic()
        try:
            await self.stub.RecordResults(request, timeout=30)
        except grpc.aio.AioRpcError:
            self.failed += 1
            return
        self.calls.append((started, time.monotonic() - started))

    def between(self, start: float, end: float) -> list[float]:
        return [seconds * 1000 for started, seconds in self.calls if start <= started < end]

    async def drain(self) -> None:
        await asyncio.gather(*self._in_flight, return_exceptions=True)


async def retention(scale: Scale, workdir: Path, notes: list[str]) -> list[Row]:
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    with fresh_postgres_db() as url:
        await asyncio.to_thread(db.migrate, url)
        engine = db.create_engine(url)
        live = RedisLiveState(REDIS_URL, prefix=prefix)
        proc: Proc | None = None
        try:
            now = datetime.now(UTC)
            months = [add_months(month_start(now), -4), add_months(month_start(now), -3)]
            await ensure_partitions(engine, months[0], months[-1])
            t = time.monotonic()
            old_checks = await asyncio.to_thread(seed_expired, url, months, scale.retention_results)
            seed_s = time.monotonic() - t
            calls = int(scale.retention_rps * (WARMUP_S + scale.retention_window_s + scale.retention_sweep_max_s))
            batches = await asyncio.to_thread(seed_pending, url, calls)

            addr = f"127.0.0.1:{free_port()}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
            env.update({"HOSTCHECK_DATABASE_URL": url, "HOSTCHECK_LIVE_STATE_URL": REDIS_URL,
                        "HOSTCHECK_LIVE_STATE_PREFIX": prefix, "HOSTCHECK_LISTEN": addr, "HOSTCHECK_MIGRATE": "false",
                        "HOSTCHECK_RETENTION_DAYS": "0", "HOSTCHECK_OFFLINE_AFTER_S": "86400"})
            proc = Proc(hostcheck_cmd("results"), env=env, log_path=workdir / "results.log")
            await wait_serving(addr, proc, timeout=60)

            async with grpc.aio.insecure_channel(addr) as channel:
                load = Load(results_pb2_grpc.ResultsIngestServiceStub(channel), batches, scale.retention_rps)
                runner = asyncio.create_task(load.run())
                await asyncio.sleep(WARMUP_S)
                base_start = time.monotonic()
                await asyncio.sleep(scale.retention_window_s)
                sweep_start = time.monotonic()
                sweeper = Retention(engine, db.sessionmaker(engine), live, days=30, interval_s=3600)
                report = await sweeper.sweep_once()
                sweep_end = time.monotonic()
                runner.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
                await load.drain()
        finally:
            if proc is not None:
                proc.stop()
            await live.close()
            await engine.dispose()
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()

    without = load.between(base_start, sweep_start)
    during = load.between(sweep_start, sweep_end)
    p99_without, p99_during = percentile(without, 99), percentile(during, 99)
    sweep_s = sweep_end - sweep_start
    results = old_checks * TASKS_PER_CHECK
    if load.ran_out:
        notes.append("retention: the load ran out of live tasks before the sweep ended (more than "
                     f"{scale.retention_sweep_max_s:g} s)")
    notes.append(
        f"retention: a sweep removed {results:,} results and as many tasks ({len(report.dropped)} partitions "
        f"dropped: {', '.join(report.dropped)}) and {report.checks_deleted:,} checks in {sweep_s:.2f} s "
        f"(partitions {report.partitions_s:.2f} s, the checks' rows {report.checks_s:.2f} s; seeding took "
        f"{seed_s:.0f} s); RecordResults of {RESULTS_PER_CALL} results at "
        f"{scale.retention_rps:g} calls/s: p50 {percentile(without, 50):.1f} ms, p99 {p99_without:.1f} ms over "
        f"{len(without)} calls without a sweep; p50 {percentile(during, 50):.1f} ms, p99 {p99_during:.1f} ms "
        f"over {len(during)} calls during it; {load.failed} failed, {load.refused} not sent (over "
        f"{MAX_IN_FLIGHT} in flight)")
    return [
        Row("retention", f"RecordResults p99 during a sweep of {results:,} results, / without", 2.0,
            p99_during / p99_without if p99_without else float("nan"), "x", at_most=True,
            note=f"{p99_during:.1f} ms vs {p99_without:.1f} ms"),
        Row("retention", f"sweep of {results:,} results ({report.checks_deleted:,} checks)", 60.0, sweep_s, "s",
            at_most=True),
    ]
