"""One contract, two implementations: Redis (production) and in-process memory (embedded default)."""

from __future__ import annotations

import asyncio
import time

import pytest

from hostcheck.services.storage.livestate import MemoryLiveState, Presence, RedisLiveState
from tests.conftest import REDIS_URL
from tests.helpers import assert_eventually


@pytest.fixture(params=["memory", "redis"])
async def live(request, live_prefix):
    state = MemoryLiveState() if request.param == "memory" else RedisLiveState(REDIS_URL, prefix=live_prefix)
    yield state
    await state.close()


def presence(agent_id: str, scheduler_id: str = "s1", **kw) -> Presence:
    return Presence(agent_id=agent_id, scheduler_id=scheduler_id, last_heartbeat=time.time(), **kw)


async def test_presence_round_trip(live):
    p = presence("a1", tasks_in_flight=3, version="1.2", capabilities=["tcp"], name="n", region="eu",
                 country="DE", city="Berlin", labels={"k": "v"})
    await live.set_presence(p, ttl_s=30)
    got = await live.get_presence(["a1", "missing"])
    assert list(got) == ["a1"]
    assert got["a1"] == p
    assert [x.agent_id for x in await live.online_agents()] == ["a1"]


async def test_presence_expires_without_heartbeat(live):
    await live.set_presence(presence("short"), ttl_s=0.2)
    await live.set_presence(presence("long"), ttl_s=30)
    await assert_eventually(lambda: _online_ids(live, {"long"}), timeout=5, message="short-lived presence expired")
    assert await live.get_presence(["short"]) == {}


async def _online_ids(live, expected: set[str]) -> bool:
    return {p.agent_id for p in await live.online_agents()} == expected


async def test_clear_presence_only_by_holder(live):
    await live.set_presence(presence("a1", "s1"), ttl_s=30)
    # The agent moved to s2 meanwhile: s1's late cleanup must not remove it.
    await live.set_presence(presence("a1", "s2"), ttl_s=30)
    assert await live.clear_presence("a1", "s1") is False
    assert "a1" in await live.get_presence(["a1"])
    assert await live.clear_presence("a1", "s2") is True
    assert await live.get_presence(["a1"]) == {}
    assert await live.online_agents() == []


async def test_inflight(live):
    await live.add_inflight({"a1": {"t1": 10.0, "t2": 20.0}, "a2": {"t3": 30.0}})
    assert await live.inflight("a1") == {"t1": 10.0, "t2": 20.0}
    assert await live.inflight("a2") == {"t3": 30.0}
    await live.remove_inflight("a1", ["t1", "unknown"])
    assert await live.inflight("a1") == {"t2": 20.0}
    await live.remove_inflight("a1", ["t2"])
    assert await live.inflight("a1") == {}
    assert await live.inflight("never") == {}


async def test_inflight_of_many_agents_forgotten_at_once(live, monkeypatch):
    """remove_inflight_many forgets a stored batch's tasks of every agent in one call: ids of other
    agents, unknown ids and agents without entries are left alone; chunks cut through the agents."""
    import hostcheck.services.storage.livestate as livestate
    monkeypatch.setattr(livestate, "INFLIGHT_CHUNK", 2)
    many = [f"m{i}" for i in range(2500)]  # more than one HDEL's worth in the script
    await live.add_inflight({"a1": {"t1": 1.0, "t2": 2.0}, "a2": {"t3": 3.0, "t4": 4.0}, "a3": {"t5": 5.0},
                             "a4": dict.fromkeys(many, 6.0)})
    await live.remove_inflight_many({"a1": ["t1", "t3"], "a2": ["t3", "t4"], "a3": [], "never": ["t5"],
                                     "a4": [*many[:-1], "unknown"]})
    assert await live.inflight("a1") == {"t2": 2.0}
    assert await live.inflight("a2") == {}
    assert await live.inflight("a3") == {"t5": 5.0}
    assert await live.inflight("a4") == {many[-1]: 6.0}
    assert await live.inflight("never") == {}
    await live.remove_inflight_many({})
    if isinstance(live, RedisLiveState):  # a record whose agent stopped getting tasks expires
        assert 0 < await live.redis.ttl(live._k("inflight", "a1")) <= livestate.INFLIGHT_TTL_S


async def test_publish_reaches_every_subscriber_of_the_channel_only(live):
    async with live.subscribe("c1") as s1, live.subscribe("c1") as s2, live.subscribe("c2") as other:
        await live.publish("c1", b"hello")
        assert await s1.get(timeout=5) == b"hello"
        assert await s2.get(timeout=5) == b"hello"
        assert await other.get(timeout=0.2) is None
    # After unsubscribing, publishing is harmless.
    await live.publish("c1", b"nobody listens")


async def test_subscribed_names_the_channels_someone_listens_to(live, live_prefix):
    def subscribed(channels: list[str], expected: set[str]):
        async def check() -> bool:
            return await live.subscribed(channels) == expected
        return check
    assert await live.subscribed([]) == set()
    assert await live.subscribed(["w1", "w2"]) == set()
    async with live.subscribe("w1"):
        await assert_eventually(subscribed(["w1", "w2"], {"w1"}), message="w1 only")
        if isinstance(live, RedisLiveState):
            # Another replica's subscribers count too: Redis knows them all.
            other = RedisLiveState(REDIS_URL, prefix=live_prefix)
            try:
                async with other.subscribe("w2"):
                    await assert_eventually(subscribed(["w1", "w2", "w3"], {"w1", "w2"}),
                                            message="the other replica's subscription counts")
            finally:
                await other.close()
    await assert_eventually(subscribed(["w1", "w2"], set()), message="nobody after unsubscribing")


async def test_a_subscription_is_in_effect_when_subscribe_returns(live):
    """Publishers skip channels nobody subscribes to (Events._watched): a subscriber, first or not,
    must count, and get what is published, from the moment its subscribe returns."""
    for i in range(20):
        async with live.subscribe(f"now{i}") as first:
            assert await live.subscribed([f"now{i}"]) == {f"now{i}"}
            async with live.subscribe(f"now{i}") as second:
                await live.publish_many([(f"now{i}", b"a"), (f"now{i}", b"b")])
                assert [await second.get(timeout=5), await second.get(timeout=5)] == [b"a", b"b"]
            assert [await first.get(timeout=5), await first.get(timeout=5)] == [b"a", b"b"]


async def test_publish_keeps_order(live):
    async with live.subscribe("ordered") as sub:
        for i in range(50):
            await live.publish("ordered", str(i).encode())
        got = [await sub.get(timeout=5) for _ in range(50)]
    assert got == [str(i).encode() for i in range(50)]


async def test_rate_limit_window(live):
    results = [await live.hit_rate_limit("ip:1", 3, 60) for _ in range(5)]
    assert [ok for ok, _ in results] == [True, True, True, False, False]
    assert all(1 <= retry <= 60 for _, retry in results)
    assert (await live.hit_rate_limit("ip:2", 3, 60))[0] is True


async def test_rate_limit_resets_after_window(live):
    assert (await live.hit_rate_limit("ip:w", 1, 1))[0] is True
    assert (await live.hit_rate_limit("ip:w", 1, 1))[0] is False

    async def allowed_again() -> bool:
        ok, _ = await live.hit_rate_limit("ip:w", 1, 1)
        return ok
    await assert_eventually(allowed_again, timeout=5, interval=0.1, message="window reset")


async def test_concurrent_rate_limit_counts_exactly(live):
    results = await asyncio.gather(*[live.hit_rate_limit("ip:c", 10, 60) for _ in range(30)])
    assert sum(ok for ok, _ in results) == 10


async def test_many_presences_at_once(live):
    await live.set_presences([presence(f"m{i}", tasks_in_flight=i) for i in range(250)], ttl_s=30)
    got = await live.get_presence([f"m{i}" for i in range(250)])
    assert len(got) == 250 and got["m7"].tasks_in_flight == 7
    assert len(await live.online_agents()) == 250


async def test_presences_beyond_one_write_call_all_land_with_their_expiry(live):
    from hostcheck.services.storage.livestate import PRESENCE_CHUNK

    n = 2 * PRESENCE_CHUNK + 7  # the Redis store writes them in chunks of one script call each
    await live.set_presences([presence(f"c{i}", tasks_in_flight=i, labels={"i": str(i)}) for i in range(n)],
                             ttl_s=5)
    got = await live.get_presence([f"c{i}" for i in range(n)])
    assert len(got) == n and got[f"c{n - 1}"].tasks_in_flight == n - 1 and got["c1500"].labels == {"i": "1500"}
    assert len(await live.online_agents()) == n
    await assert_eventually(lambda: _online_ids(live, set()), timeout=15, message="every chunk's presences expired")
