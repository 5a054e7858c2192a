"""Live state: which agents are online, which scheduler holds each, their in-flight tasks,
pub/sub between processes, and rate-limit counters.

One small interface, two implementations: Redis (production, shared by replicas)
and in-process memory (the embedded default). `tests/test_livestate_contract.py`
runs one suite against both.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, fields
from typing import cast

import redis.asyncio as aioredis

# Pub/sub channels: every publisher and subscriber names them from here.
# results -> schedulers: {"tasks": {agent_id: [task_id, ...]}, "reason": ...}: cancel these on the agents.
CANCELS_CHANNEL = "cancels"
# registry -> schedulers: an agent id whose token was revoked; close its stream.
REVOCATIONS_CHANNEL = "revocations"


def check_channel(check_id: object) -> str:
    """Events of one check (results -> watchers)."""
    return f"check:{check_id}"


def scheduler_channel(scheduler_id: str) -> str:
    """Tasks routed to the scheduler replica that holds the agents' streams."""
    return f"scheduler:{scheduler_id}"


@dataclass
class Presence:
    """An agent's live state, refreshed by each heartbeat and expiring without them."""

    agent_id: str
    scheduler_id: str
    last_heartbeat: float
    tasks_in_flight: int = 0
    version: str = ""
    capabilities: list[str] = field(default_factory=list)
    # Copied from the registry at connect, so picking agents (and recording where each task
    # runs) needs no database.
    name: str = ""
    location: str = ""
    region: str = ""
    country: str = ""
    city: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Presence:
        """Reads a stored presence, ignoring fields this version does not know: replicas of two
        versions share live state during a rolling upgrade."""
        doc = json.loads(raw)
        return cls(**{k: v for k, v in doc.items() if k in _PRESENCE_FIELDS})


_PRESENCE_FIELDS = frozenset(f.name for f in fields(Presence))


class Subscription:
    """Messages of one channel, delivered to one local consumer."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)

    async def get(self, timeout: float | None = None) -> bytes | None:
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class _Fanout:
    """Local fan-out of channel messages to subscriptions."""

    def __init__(self) -> None:
        self.subs: dict[str, set[Subscription]] = defaultdict(set)

    def deliver(self, channel: str, payload: bytes) -> None:
        for sub in list(self.subs.get(channel, ())):
            try:
                sub.queue.put_nowait(payload)
            except asyncio.QueueFull:
                pass  # a consumer this far behind re-reads state from storage


class LiveState(ABC):
    def __init__(self) -> None:
        self._fanout = _Fanout()

    @abstractmethod
    async def set_presences(self, presences: list[Presence], ttl_s: float) -> None:
        """Writes many presences at once (a scheduler batches its agents' heartbeats)."""

    async def set_presence(self, presence: Presence, ttl_s: float) -> None:
        await self.set_presences([presence], ttl_s)

    @abstractmethod
    async def clear_presence(self, agent_id: str, scheduler_id: str) -> bool:
        """Removes the presence only if `scheduler_id` still holds the agent."""

    @abstractmethod
    async def get_presence(self, agent_ids: list[str]) -> dict[str, Presence]: ...

    @abstractmethod
    async def online_agents(self) -> list[Presence]: ...

    @abstractmethod
    async def add_inflight(self, tasks_by_agent: dict[str, dict[str, float]]) -> None:
        """Records in-flight tasks: agent id -> {task id: deadline}, for many agents at once."""

    @abstractmethod
    async def remove_inflight(self, agent_id: str, task_ids: list[str]) -> None: ...

    @abstractmethod
    async def inflight(self, agent_id: str) -> dict[str, float]: ...

    @abstractmethod
    async def publish(self, channel: str, payload: bytes) -> None: ...

    @abstractmethod
    async def _subscribe_remote(self, channel: str) -> None: ...

    @abstractmethod
    async def _unsubscribe_remote(self, channel: str) -> None: ...

    @abstractmethod
    async def hit_rate_limit(self, key: str, limit: int, window_s: int) -> tuple[bool, int]:
        """Counts one hit; returns (allowed, seconds until the window resets)."""

    @abstractmethod
    async def check_health(self) -> None: ...

    async def close(self) -> None:
        pass

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[Subscription]:
        sub = Subscription(channel)
        first = not self._fanout.subs.get(channel)
        self._fanout.subs[channel].add(sub)
        try:
            if first:
                await self._subscribe_remote(channel)
            yield sub
        finally:
            self._fanout.subs[channel].discard(sub)
            if not self._fanout.subs[channel]:
                del self._fanout.subs[channel]
                with contextlib.suppress(Exception):
                    await self._unsubscribe_remote(channel)


class MemoryLiveState(LiveState):
    """In-process live state for the embedded default (one process, no Redis)."""

    def __init__(self, clock=time.time) -> None:
        super().__init__()
        self._clock = clock
        self._presence: dict[str, tuple[Presence, float]] = {}
        self._inflight: dict[str, dict[str, float]] = defaultdict(dict)
        self._counters: dict[str, tuple[int, float]] = {}

    def _alive(self, agent_id: str) -> Presence | None:
        entry = self._presence.get(agent_id)
        if entry is None:
            return None
        presence, expires = entry
        if expires <= self._clock():
            del self._presence[agent_id]
            return None
        return presence

    async def set_presences(self, presences: list[Presence], ttl_s: float) -> None:
        for presence in presences:
            self._presence[presence.agent_id] = (presence, self._clock() + ttl_s)

    async def clear_presence(self, agent_id: str, scheduler_id: str) -> bool:
        current = self._alive(agent_id)
        if current is not None and current.scheduler_id == scheduler_id:
            del self._presence[agent_id]
            return True
        return False

    async def get_presence(self, agent_ids: list[str]) -> dict[str, Presence]:
        return {a: p for a in agent_ids if (p := self._alive(a)) is not None}

    async def online_agents(self) -> list[Presence]:
        return [p for a in list(self._presence) if (p := self._alive(a)) is not None]

    async def add_inflight(self, tasks_by_agent: dict[str, dict[str, float]]) -> None:
        for agent_id, task_deadlines in tasks_by_agent.items():
            self._inflight[agent_id].update(task_deadlines)

    async def remove_inflight(self, agent_id: str, task_ids: list[str]) -> None:
        tasks = self._inflight.get(agent_id)
        if tasks is not None:
            for task_id in task_ids:
                tasks.pop(task_id, None)
            if not tasks:
                del self._inflight[agent_id]

    async def inflight(self, agent_id: str) -> dict[str, float]:
        return dict(self._inflight.get(agent_id, {}))

    async def publish(self, channel: str, payload: bytes) -> None:
        self._fanout.deliver(channel, payload)

    async def _subscribe_remote(self, channel: str) -> None:
        pass

    async def _unsubscribe_remote(self, channel: str) -> None:
        pass

    async def hit_rate_limit(self, key: str, limit: int, window_s: int) -> tuple[bool, int]:
        now = self._clock()
        count, reset_at = self._counters.get(key, (0, now + window_s))
        if reset_at <= now:
            count, reset_at = 0, now + window_s
        count += 1
        self._counters[key] = (count, reset_at)
        return count <= limit, max(1, int(reset_at - now + 0.999))

    async def check_health(self) -> None:
        pass


_CLEAR_IF_HOLDER = """
local current = redis.call('GET', KEYS[1])
if current and cjson.decode(current).scheduler_id == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 1
end
return 0
"""

_RATE_LIMIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


class RedisLiveState(LiveState):
    """Live state in Redis, shared by every replica. Keys are prefixed so tests can share a server."""

    def __init__(self, url: str, *, prefix: str = "hc:") -> None:
        super().__init__()
        # A blocking pool: under a burst (thousands of agents connecting) callers wait for a free
        # connection instead of failing with MaxConnectionsError as the default pool does.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=10, socket_connect_timeout=3, socket_timeout=5, health_check_interval=10)
        self._pool = pool
        self.redis = aioredis.Redis(connection_pool=pool)
        self.prefix = prefix
        self._pubsub = self.redis.pubsub()
        self._reader: asyncio.Task | None = None
        self._subscribed = asyncio.Event()  # the reader sleeps on it while no channel is subscribed
        self._clear = self.redis.register_script(_CLEAR_IF_HOLDER)
        self._rate = self.redis.register_script(_RATE_LIMIT)

    def _k(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    # A presence is one JSON value per agent: reading thousands is one MGET of plain strings,
    # much cheaper to parse than a hash per agent.
    async def set_presences(self, presences: list[Presence], ttl_s: float) -> None:
        if not presences:
            return
        # The key's own expiry is the truth; the sorted set only indexes who may be online, so its
        # score outlives the key a little (never the other way round: online_agents reads the keys).
        expires = time.time() + ttl_s + 1.0
        async with self.redis.pipeline(transaction=False) as pipe:
            for presence in presences:
                pipe.set(self._k("agent", presence.agent_id), json.dumps(asdict(presence)), px=int(ttl_s * 1000))
            pipe.zadd(self._k("agents"), {p.agent_id: expires for p in presences})
            await pipe.execute()

    async def clear_presence(self, agent_id: str, scheduler_id: str) -> bool:
        return bool(await self._clear(keys=[self._k("agent", agent_id), self._k("agents")],
                                      args=[scheduler_id, agent_id]))

    async def get_presence(self, agent_ids: list[str]) -> dict[str, Presence]:
        if not agent_ids:
            return {}
        out: dict[str, Presence] = {}
        for start in range(0, len(agent_ids), 1000):
            chunk = agent_ids[start:start + 1000]
            values = await self.redis.mget([self._k("agent", a) for a in chunk])
            out.update({a: Presence.from_json(v) for a, v in zip(chunk, values, strict=True) if v})
        return out

    async def online_agents(self) -> list[Presence]:
        now = time.time()
        await self.redis.zremrangebyscore(self._k("agents"), "-inf", now)
        ids = [m.decode() for m in cast(list[bytes], await self.redis.zrangebyscore(self._k("agents"), now, "+inf"))]
        found = await self.get_presence(ids)
        return list(found.values())

    async def add_inflight(self, tasks_by_agent: dict[str, dict[str, float]]) -> None:
        # One round trip for a whole fan-out, not one per agent.
        async with self.redis.pipeline(transaction=False) as pipe:
            for agent_id, task_deadlines in tasks_by_agent.items():
                if task_deadlines:
                    key = self._k("inflight", agent_id)
                    pipe.hset(key, mapping={t: str(d) for t, d in task_deadlines.items()})
                    pipe.expire(key, 3600)
            await pipe.execute()

    async def remove_inflight(self, agent_id: str, task_ids: list[str]) -> None:
        if task_ids:
            await self.redis.hdel(self._k("inflight", agent_id), *task_ids)

    async def inflight(self, agent_id: str) -> dict[str, float]:
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self._k("inflight", agent_id)))
        return {k.decode(): float(v) for k, v in raw.items()}

    async def publish(self, channel: str, payload: bytes) -> None:
        await self.redis.publish(self._k("ch", channel), payload)

    async def _subscribe_remote(self, channel: str) -> None:
        await self._pubsub.subscribe(self._k("ch", channel))
        self._subscribed.set()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="livestate-pubsub")

    async def _unsubscribe_remote(self, channel: str) -> None:
        await self._pubsub.unsubscribe(self._k("ch", channel))

    async def _read(self) -> None:
        strip = len(self._k("ch", ""))
        while True:
            try:
                msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis restarted: resubscribe and carry on
                await asyncio.sleep(0.5)
                with contextlib.suppress(Exception):
                    channels = [self._k("ch", c) for c in self._fanout.subs]
                    if channels:
                        await self._pubsub.subscribe(*channels)
                continue
            if msg is None:
                if not self._pubsub.subscribed:
                    self._subscribed.clear()
                    await self._subscribed.wait()
                continue
            if msg.get("type") == "message":
                self._fanout.deliver(msg["channel"].decode()[strip:], msg["data"])

    async def hit_rate_limit(self, key: str, limit: int, window_s: int) -> tuple[bool, int]:
        count, ttl = await self._rate(keys=[self._k("rate", key)], args=[window_s])
        return int(count) <= limit, max(1, int(ttl))

    async def check_health(self) -> None:
        await self.redis.ping()

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()
        await self.redis.aclose()
        await self._pool.disconnect()


def create_live_state(url: str, prefix: str = "hc:") -> LiveState:
    """`memory://` for the in-process implementation, `redis://...` for Redis."""
    if url in ("memory://", "memory"):
        return MemoryLiveState()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisLiveState(url, prefix=prefix)
    raise ValueError(f"live state URL {url!r}: use redis://host:port/db or memory://")
