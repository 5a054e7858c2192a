"""An agent's stats count what it really did; /health through Envoy says degraded when a dependency is
really down (its own Redis, stopped by pid; its database, dropped), and ok again when Redis is back."""

from __future__ import annotations

import asyncio

import httpx
import psycopg

from hostcheck.v1 import http_pb2, registry_pb2, results_pb2, scheduler_pb2
from tests.conftest import PG_ADMIN_URL, System, fresh_postgres_db
from tests.gateway.conftest import start_gateway
from tests.helpers import Proc, assert_eventually, free_port


async def _ended(system, check_id: str) -> bool:
    check = (await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=check_id))).check
    return check.status in ("completed", "failed")  # failed: no task reported (all timed out)


async def test_agent_stats_count_each_result_and_timed_out_task(pg_system, tmp_path, http_target, tcp_target):
    agent = await pg_system.start_agent(tmp_path, "counted")
    closed = free_port()
    created = []
    for request in (scheduler_pb2.CreateCheckRequest(target=f"127.0.0.1:{tcp_target}", checks=["tcp"]),
                    scheduler_pb2.CreateCheckRequest(target=f"127.0.0.1:{closed}", checks=["tcp"]),
                    scheduler_pb2.CreateCheckRequest(target="127.0.0.1", checks=["http"],
                                                     http=http_pb2.HttpOptions(port=http_target.port))):
        created.append((await pg_system.create.CreateCheck(request)).check_id)
    for check_id in created:
        await assert_eventually(lambda c=check_id: _ended(pg_system, c), timeout=15, message="check ended")
    # A task whose agent goes away mid-probe ends timed out (no result).
    hung = await pg_system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target="127.0.0.1", checks=["http"], timeout_ms=1000, http=http_pb2.HttpOptions(port=http_target.port,
                                                                                          path="/hang")))
    await assert_eventually(lambda: http_target.hits.get("hang"), timeout=10, message="hung task started")
    await agent.stop(drain_timeout_s=0)
    await assert_eventually(lambda: _ended(pg_system, hung.check_id), timeout=15, message="hung check timed out")

    stats = await pg_system.agents_api.GetAgentStats(registry_pb2.GetAgentStatsRequest(
        agent_id=agent.identity.agent_id))
    assert (stats.results_total, stats.results_succeeded, stats.tasks_timed_out) == (3, 2, 1)
    by_type = {s.check_type: (s.total, s.succeeded, s.failed) for s in stats.by_type}
    assert by_type == {"tcp": (2, 1, 1), "http": (1, 1, 0)}
    assert all(s.avg_duration_ms > 0 for s in stats.by_type)


async def test_health_through_envoy_is_degraded_while_redis_or_the_database_is_down(tmp_path):
    port = free_port()
    redis_args = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    redis = Proc(redis_args, env={}, log_path=tmp_path / "redis.log")
    gw = None
    with fresh_postgres_db() as url:
        system = System(url, f"redis://127.0.0.1:{port}/0", "hct:health:")
        try:
            await assert_eventually(lambda: "Ready to accept connections" in redis.output(), timeout=10,
                                    message="redis up")
            await system.start()
            gw = await start_gateway(system, tmp_path)
            async with httpx.AsyncClient(base_url=gw.url, timeout=15) as rest:
                async def health() -> dict:
                    reply = await rest.get("/health")
                    assert reply.status_code == 200, reply.text
                    return reply.json()

                assert (await health())["status"] == "ok"
                redis.kill9()
                down = await health()
                assert (down["status"], down["database"], down["live_state_kind"]) == ("degraded", "ok", "redis")
                assert down["redis"].startswith("ConnectionError") and down["live_state"] == down["redis"]

                redis = Proc(redis_args, env={}, log_path=tmp_path / "redis2.log")
                await assert_eventually(lambda: _status(health, "ok"), timeout=15, message="ok once redis is back")

                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
                down = await health()
                assert (down["status"], down["redis"]) == ("degraded", "ok") and down["database"] != "ok"
        finally:
            if gw is not None:
                gw.proc.stop()
            await asyncio.wait_for(system.stop(), 30)
            redis.stop()


async def _status(health, wanted: str) -> bool:
    return (await health())["status"] == wanted
