"""What CreateCheck waits for before OpenCheck (issue 17).

The online agents' snapshot is read again in the background once half its age is up, so a caller
rarely waits for the read. The rate limit still waits for live state's count of every hit: a hit let through
without it would let a check through while Redis is down."""

from __future__ import annotations

import asyncio

import pytest

from hostcheck.core.errors import ResourceExhausted
from hostcheck.services.auth import ANONYMOUS, Caller
from hostcheck.services.scheduler import planning
from hostcheck.services.scheduler.planning import OnlineAgents, RateLimit
from hostcheck.services.storage.livestate import MemoryLiveState, Presence


class GatedLive(MemoryLiveState):
    """Counts hits as live state does; each answer waits until `gate` is open. `down`: counting fails."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.gate.set()
        self.asked = 0
        self.down = False

    async def count_hit(self, key: str, window_s: int) -> tuple[int, int]:
        self.asked += 1
        await self.gate.wait()
        if self.down:
            raise ConnectionError("live state down")
        return await super().count_hit(key, window_s)


def anonymous(ip: str = "192.0.2.1") -> Caller:
    return Caller(ANONYMOUS, ip)


async def test_every_hit_is_counted_before_the_check_goes_ahead_and_the_limit_is_exact():
    live = GatedLive()
    limit = RateLimit(live, limit=3, window_s=60)
    for _ in range(3):
        await limit.hit(anonymous())
    with pytest.raises(ResourceExhausted):
        await limit.hit(anonymous())
    assert live.asked == 4


async def test_live_state_down_refuses_the_hit():
    """Redis down: the create is refused (the chaos tests expect UNAVAILABLE), not let through."""
    live = GatedLive()
    limit = RateLimit(live, limit=100, window_s=60)
    await limit.hit(anonymous())
    live.down = True
    with pytest.raises(ConnectionError):
        await limit.hit(anonymous())


async def test_online_snapshot_read_again_in_the_background_past_half_its_age():
    now = [1000.0]
    live = GatedLive()
    reads = 0
    online_agents = live.online_agents

    async def counted():
        nonlocal reads
        reads += 1
        await live.gate.wait()
        return await online_agents()
    live.online_agents = counted
    online = OnlineAgents(live, max_age_s=1.0, clock=lambda: now[0])
    assert await online.get() == [] and reads == 1
    await live.set_presence(Presence(agent_id="a1", scheduler_id="s1", last_heartbeat=now[0]), ttl_s=30)
    now[0] += 0.4
    assert await online.get() == [] and reads == 1  # young: no read
    now[0] += 0.2
    live.gate.clear()
    assert await asyncio.wait_for(online.get(), 1) == []  # past half its age: the old one, at once
    await asyncio.sleep(0)
    assert reads == 2  # and a read started
    assert await asyncio.wait_for(online.get(), 1) == []  # one read at a time
    live.gate.set()
    await online._read
    assert reads == 2
    assert [p.agent_id for p in await online.get()] == ["a1"]  # the new one, no wait
    now[0] += 1.0  # too old: a caller waits for a read
    live.gate.clear()
    waiting = asyncio.ensure_future(online.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    live.gate.set()
    assert [p.agent_id for p in await waiting] == ["a1"] and reads == 3


async def test_a_request_that_passed_validation_is_not_validated_again(monkeypatch):
    from hostcheck.core.errors import InvalidArgument
    from hostcheck.core.targets import TargetGuard
    from hostcheck.services.scheduler.planning import Planner
    from hostcheck.v1 import checks_pb2, scheduler_pb2

    calls = []
    real = planning.validate_create

    def counted(request, guard):
        calls.append(request.target)
        return real(request, guard)
    monkeypatch.setattr(planning, "validate_create", counted)
    live = MemoryLiveState()
    await live.set_presence(Presence(agent_id="a1", scheduler_id="s1", last_heartbeat=1e12, capabilities=["tcp"]),
                            ttl_s=30)
    plans = Planner(OnlineAgents(live), guard=TargetGuard.from_cidrs(["127.0.0.0/8"]),
                    rate_limit=RateLimit(live, limit=0, window_s=60), dispatch_grace_s=1.0)
    ok = scheduler_pb2.CreateCheckRequest(target="127.0.0.1:80", checks=["tcp"],
                                          agents=checks_pb2.AgentSelector(limit=1))
    first, second = await plans.plan(ok, anonymous()), await plans.plan(ok, anonymous())
    assert calls == ["127.0.0.1:80"]
    assert first.check_id != second.check_id and first.tasks[0].task_id != second.tasks[0].task_id
    assert first.request == second.request
    other = scheduler_pb2.CreateCheckRequest(target="127.0.0.2:80", checks=["tcp"])
    await plans.plan(other, anonymous())
    assert calls == ["127.0.0.1:80", "127.0.0.2:80"]
    bad = scheduler_pb2.CreateCheckRequest(target="127.0.0.1:80", checks=["nope"])
    for _ in range(2):  # refused every time, validated every time
        with pytest.raises(InvalidArgument):
            await plans.plan(bad, anonymous())
    assert len(calls) == 4
    monkeypatch.setattr(planning, "VALID_REQUESTS", 1)
    third = scheduler_pb2.CreateCheckRequest(target="127.0.0.3:80", checks=["tcp"])
    await plans.plan(third, anonymous())  # the only one remembered now
    await plans.plan(third, anonymous())
    await plans.plan(ok, anonymous())
    assert calls[4:] == ["127.0.0.3:80", "127.0.0.1:80"]
