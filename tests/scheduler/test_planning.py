"""Planning: the rate limit, the snapshot of online agents, and tasks planned from picks."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from hostcheck.core.checks import validate_create
from hostcheck.core.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from hostcheck.core.targets import TargetGuard
from hostcheck.services.auth import ADMIN, ANONYMOUS, KEY, Caller
from hostcheck.services.scheduler.planning import OnlineAgents, Planner, RateLimit, plan_tasks
from hostcheck.services.storage.livestate import Presence
from hostcheck.v1 import checks_pb2, http_pb2, scheduler_pb2

GUARD = TargetGuard.from_cidrs(("127.0.0.0/8",))


def presence(agent_id: str, scheduler_id: str = "s-1", **fields) -> Presence:
    defaults = {"name": agent_id, "location": f"{agent_id} rack", "region": "eu", "country": "DE", "city": "Berlin"}
    return Presence(agent_id=agent_id, scheduler_id=scheduler_id, last_heartbeat=time.time(), **{**defaults, **fields})


def request(**fields) -> scheduler_pb2.CreateCheckRequest:
    return scheduler_pb2.CreateCheckRequest(**{"target": "127.0.0.1:8080", "checks": ["tcp"], **fields})


def test_plan_has_a_task_per_agent_and_type_with_where_it_runs():
    valid = validate_create(request(checks=["tcp", "http"], http=http_pb2.HttpOptions(port=8081), timeout_ms=2000),
                            GUARD)
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    grace = timedelta(seconds=5)
    a1, a2 = presence("a1", "s-1"), presence("a2", "s-2", name="second", city="Paris", country="FR")
    plan = plan_tasks(valid, [(a1, ["tcp", "http"]), (a2, ["tcp"])], client_ip="198.51.100.7", now=now, grace=grace)

    assert plan.client_ip == "198.51.100.7" and plan.request.target == "127.0.0.1:8080"
    assert [(t.agent_id, t.check_type) for t in plan.tasks] == [("a1", "tcp"), ("a1", "http"), ("a2", "tcp")]
    stored = {t.task_id: t for t in plan.tasks}
    assert [(t.agent_name, t.location, t.region, t.country, t.city) for t in plan.tasks][-1] == (
        "second", "a2 rack", "eu", "FR", "Paris")
    # The results service waits the grace longer than the agent is given.
    for t in plan.tasks:
        assert t.deadline.ToDatetime(tzinfo=UTC) == now + timedelta(milliseconds=2000) + grace
    assert plan.deadline == now + timedelta(milliseconds=2000) + grace

    assert {a: share.holder for a, share in plan.by_agent.items()} == {"a1": "s-1", "a2": "s-2"}
    sent = [t for share in plan.by_agent.values() for t in share.tasks]
    assert sorted(t.task_id for t in sent) == sorted(stored)
    for task in sent:
        assert task.check_id == plan.check_id and task.target == "127.0.0.1:8080"
        assert task.deadline.ToDatetime(tzinfo=UTC) == now + timedelta(milliseconds=2000)
        # A task carries only its own type's options.
        assert [f.name for f, _ in task.options.ListFields()] == [task.check_type]
    http_task = next(t for t in sent if t.check_type == "http")
    assert http_task.options.http.port == 8081


async def test_rate_limit_counts_per_client_ip(live):
    limit = RateLimit(live, limit=2, window_s=60)
    await limit.hit(anonymous("192.0.2.1"))
    await limit.hit(anonymous("192.0.2.1"))
    with pytest.raises(ResourceExhausted, match="rate limit of 2 checks per 60 s for 192.0.2.1") as refused:
        await limit.hit(anonymous("192.0.2.1"))
    assert 1 <= refused.value.retry_after_s <= 60
    await limit.hit(anonymous("192.0.2.2"))  # another client has its own count


async def test_a_key_has_its_own_hourly_quota_whatever_its_ip_and_the_admin_none(live):
    limit = RateLimit(live, limit=1, window_s=60)
    key = Caller(KEY, "192.0.2.1", key_id="k1", quota_per_hour=2)
    await limit.hit(anonymous("192.0.2.1"))  # the IP's anonymous count is separate from the key's
    await limit.hit(key)
    await limit.hit(Caller(KEY, "192.0.2.9", key_id="k1", quota_per_hour=2))
    with pytest.raises(ResourceExhausted, match="rate limit of 2 checks per 3600 s for API key k1") as refused:
        await limit.hit(key)
    assert 3500 <= refused.value.retry_after_s <= 3600
    await limit.hit(Caller(KEY, "192.0.2.1", key_id="k2", quota_per_hour=1))  # another key: its own count
    for _ in range(5):
        await limit.hit(Caller(ADMIN, "192.0.2.1"))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_online_agents_come_from_a_snapshot_until_it_is_old_or_fresh_is_asked(live):
    clock = Clock()
    online = OnlineAgents(live, max_age_s=1.0, clock=clock)
    assert await online.get() == []
    await live.set_presence(presence("a1"), ttl_s=30)
    assert await online.get() == [], "the snapshot is still young"
    assert [p.agent_id for p in await online.get(fresh=True)] == ["a1"]
    await live.set_presence(presence("a2"), ttl_s=30)
    clock.now += 1.0
    assert sorted(p.agent_id for p in await online.get()) == ["a1", "a2"]


async def test_concurrent_callers_share_one_read(live):
    online = OnlineAgents(live)
    reads = 0
    online_agents = live.online_agents

    async def counted():
        nonlocal reads
        reads += 1
        return await online_agents()
    live.online_agents = counted  # observes the real read
    await live.set_presence(presence("a1"), ttl_s=30)
    got = await asyncio.gather(*(online.get(fresh=True) for _ in range(5)))
    assert reads == 1
    assert all([p.agent_id for p in g] == ["a1"] for g in got)


def anonymous(ip: str) -> Caller:
    return Caller(ANONYMOUS, ip)


ANON = anonymous("192.0.2.1")


def planner(live, *, limit: int = 0) -> Planner:
    return Planner(OnlineAgents(live, max_age_s=60), guard=GUARD,
                   rate_limit=RateLimit(live, limit=limit, window_s=60), dispatch_grace_s=1.0)


async def test_an_agent_newer_than_the_snapshot_is_found(live):
    plans = planner(live)
    with pytest.raises(FailedPrecondition, match="no online agent"):
        await plans.plan(request(), ANON)
    # The snapshot (60 s) has no agent, so planning reads again before refusing.
    await live.set_presence(presence("late"), ttl_s=30)
    plan = await plans.plan(request(), ANON)
    assert [t.agent_id for t in plan.tasks] == ["late"]


async def test_the_selector_picks_among_online_agents(live):
    await live.set_presences([presence("de", country="DE"), presence("fr", country="FR")], ttl_s=30)
    plan = await planner(live).plan(request(agents=checks_pb2.AgentSelector(countries=["fr"])), ANON)
    assert [(t.agent_id, t.country) for t in plan.tasks] == [("fr", "FR")]
    nobody = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(FailedPrecondition, match=f"agent.s. not online: {nobody}"):
        await planner(live).plan(request(agents=checks_pb2.AgentSelector(agent_ids=[nobody])), ANON)


async def test_an_invalid_request_is_refused_before_it_counts_against_the_limit(live):
    await live.set_presence(presence("a1"), ttl_s=30)
    plans = planner(live, limit=1)
    with pytest.raises(InvalidArgument):
        await plans.plan(request(target="10.0.0.1"), ANON)  # a private address: refused by the guard
    await plans.plan(request(), ANON)
    with pytest.raises(ResourceExhausted):
        await plans.plan(request(), ANON)


async def test_a_request_no_agent_can_serve_does_not_count_and_a_key_owns_its_check(live):
    plans = planner(live)
    key = Caller(KEY, "192.0.2.1", key_id="00000000-0000-4000-8000-00000000000a", quota_per_hour=1)
    with pytest.raises(FailedPrecondition):
        await plans.plan(request(), key)  # no agent online
    await live.set_presence(presence("a1"), ttl_s=30)
    plan = await plans.plan(request(), key)
    assert plan.created_by_key_id == key.key_id and plan.client_ip == "192.0.2.1"
    with pytest.raises(ResourceExhausted):
        await plans.plan(request(), key)
    assert (await plans.plan(request(), Caller(ADMIN, "192.0.2.1"))).created_by_key_id == ""
