"""Redis live state hands a message to the publishing process's own subscribers at publish, and
drops Redis's copy of it: each subscriber gets each message once, in order, and other processes
still get every message through Redis (issue 17: a watcher on the results process that stored
a check no longer waits for the Redis round trip to see its `done`)."""

from __future__ import annotations

import asyncio

import pytest

from hostcheck.services.storage import livestate
from hostcheck.services.storage.livestate import RedisLiveState
from tests.conftest import REDIS_URL


@pytest.fixture
async def pair(live_prefix):
    here, other = RedisLiveState(REDIS_URL, prefix=live_prefix), RedisLiveState(REDIS_URL, prefix=live_prefix)
    yield here, other
    await here.close()
    await other.close()


async def _drain(sub, n: int) -> list[bytes]:
    return [await sub.get(timeout=5) for _ in range(n)]


async def test_local_subscriber_has_the_message_before_publish_returns(pair):
    here, _ = pair
    async with here.subscribe("c") as sub:
        publishing = asyncio.ensure_future(here.publish_many([("c", b"1"), ("c", b"2")]))
        await asyncio.sleep(0)  # the publish has started, not finished (its pipeline waits for Redis)
        assert sub.queue.qsize() == 2 and not publishing.done()
        await publishing
        assert await _drain(sub, 2) == [b"1", b"2"]


async def test_each_subscriber_gets_each_message_once_from_here_and_from_elsewhere(pair):
    here, other = pair
    async with here.subscribe("c") as mine, other.subscribe("c") as theirs:
        for i in range(20):
            await here.publish("c", b"here %d" % i)
            await other.publish("c", b"there %d" % i)
        # the same bytes again, from here and from elsewhere: both delivered, each once
        await here.publish_many([("c", b"same"), ("c", b"same")])
        await other.publish("c", b"same")
        await here.publish("c", b"end")
        await other.publish("c", b"end")
        for sub in (mine, theirs):
            got = await _drain(sub, 45)
            assert sorted(got) == sorted([b"here %d" % i for i in range(20)] + [b"there %d" % i for i in range(20)]
                                         + [b"same"] * 3 + [b"end"] * 2)
            assert [m for m in got if m.startswith(b"here")] == [b"here %d" % i for i in range(20)]
            assert await sub.get(timeout=0.3) is None  # nothing twice
    assert not here._echoes and not other._echoes  # every copy from Redis came back and was dropped


async def test_a_failed_publish_expects_no_copy(pair, monkeypatch):
    here, _ = pair
    async with here.subscribe("c") as sub:
        async def broken(*args, **kwargs):
            raise ConnectionError("redis down")
        monkeypatch.setattr(here.redis, "publish", broken)
        with pytest.raises(ConnectionError):
            await here.publish("c", b"x")
        monkeypatch.undo()
        assert await sub.get(timeout=5) == b"x"  # delivered here before the failure
        assert not here._echoes
        await here.publish("c", b"x")  # the same bytes again: delivered once more, its copy dropped
        assert await sub.get(timeout=5) == b"x"
        assert await sub.get(timeout=0.3) is None


async def test_a_copy_that_never_comes_is_forgotten(pair):
    """A message published while Redis had not yet taken the subscription never comes back: after
    ECHO_TTL_S a message with the same bytes from another process is delivered, not taken for it."""
    here, other = pair
    async with here.subscribe("c") as sub:
        here._deliver_local([("c", b"lost")])  # delivered here; its publish never reached Redis
        assert await sub.get(timeout=5) == b"lost"
        here._expire_echoes(livestate.time.monotonic() + livestate.ECHO_TTL_S)
        await other.publish("c", b"lost")
        assert await sub.get(timeout=5) == b"lost"
    assert not here._echoes and not here._echo_log


async def test_no_local_delivery_without_a_local_subscriber(pair):
    here, other = pair
    async with other.subscribe("c") as theirs:
        await here.publish("c", b"only there")
        assert await theirs.get(timeout=5) == b"only there"
    assert not here._echoes and not here._echo_log
