"""Live state: which agents are online, which scheduler holds each, their in-flight tasks,
pub/sub between processes, and rate-limit counters.

One small interface, two implementations: Redis (production, shared by replicas)
and in-process memory (the embedded default). `tests/test_livestate_contract.py`
runs one suite against both.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, fields
from typing import cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

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
    asn: int = 0

    @classmethod
    def from_json(cls, raw: str | bytes) -> Presence:
        """Reads a stored presence, ignoring fields this version does not know: replicas of two
        versions share live state during a rolling upgrade."""
        doc = json.loads(raw)
        return cls(**{k: v for k, v in doc.items() if k in _PRESENCE_FIELDS})


_PRESENCE_FIELDS = frozenset(f.name for f in fields(Presence))


class Subscription:
    """Messages of one channel, delivered to one local consumer."""

    def __init__(self, channel: str, max_pending: int = 10_000) -> None:
        self.channel = channel
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=max_pending)
        # A message arrived while `max_pending` were waiting, and was dropped.
        self.overflowed = False
        # Called once, at the first dropped message; when set, the consumer is dropped: what waited
        # is freed and nothing more is delivered (a watcher that stopped reading).
        self.on_overflow: Callable[[], object] | None = None
        # Messages may have been lost since the consumer last looked (take_gap): the connection to
        # Redis was lost and the channel subscribed again. Until then nothing is lost (Redis pub/sub
        # delivers every message published while subscribed), so a consumer that re-reads state
        # only after a gap, or after a failed publish, does no reads while messages flow (issue 17).
        self.gap = False

    def mark_gap(self) -> None:
        """Some messages may have been lost; the consumer's next get() returns None at once."""
        self.gap = True
        self.wake()

    def wake(self) -> None:
        """A consumer waiting in get() returns None now (one busy reading messages gets them first)."""
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(b"")

    def take_gap(self) -> bool:
        """Whether messages may have been lost since the last call."""
        gap, self.gap = self.gap, False
        return gap

    async def get(self, timeout: float | None = None) -> bytes | None:
        """The next message; None after `timeout` s without one, or at a gap (see mark_gap)."""
        # A message already waiting is taken at once, and a wait is bounded by asyncio.timeout:
        # wait_for wraps every get in a new task, which was a watcher's biggest cost per event.
        if not self.queue.empty():
            return self.queue.get_nowait() or None
        try:
            async with asyncio.timeout(timeout):
                return await self.queue.get() or None
        except TimeoutError:
            return None


class _Fanout:
    """Local fan-out of channel messages to subscriptions."""

    def __init__(self) -> None:
        self.subs: dict[str, set[Subscription]] = defaultdict(set)

    def deliver(self, channel: str, payload: bytes) -> None:
        for sub in list(self.subs.get(channel, ())):
            if sub.overflowed and sub.on_overflow is not None:
                continue  # dropped: gets nothing more
            try:
                sub.queue.put_nowait(payload)
            except asyncio.QueueFull:
                # A consumer this far behind re-reads state from storage, or is dropped (on_overflow):
                # then what waited for it is freed at once, whenever its task gets to end.
                if not sub.overflowed and sub.on_overflow is not None:
                    while not sub.queue.empty():
                        sub.queue.get_nowait()
                    sub.queue.put_nowait(b"")  # wakes a consumer waiting in get(): it sees `overflowed`
                    sub.on_overflow()
                sub.overflowed = True


class LiveState(ABC):
    # What stores it ("redis", "memory"), as GET /health names it.
    kind: str = ""

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
    async def remove_inflight_many(self, tasks_by_agent: dict[str, list[str]]) -> None:
        """Forgets in-flight tasks: agent id -> [task id, ...], for many agents at once (the result
        forwarder forgets a whole stored batch's tasks in one call); unknown ids are ignored."""

    async def remove_inflight(self, agent_id: str, task_ids: list[str]) -> None:
        await self.remove_inflight_many({agent_id: task_ids})

    @abstractmethod
    async def inflight(self, agent_id: str) -> dict[str, float]: ...

    @abstractmethod
    async def publish(self, channel: str, payload: bytes) -> None: ...

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        """Publishes (channel, payload) pairs in this order (one round trip on Redis)."""
        for channel, payload in messages:
            await self.publish(channel, payload)

    @abstractmethod
    async def subscribed(self, channels: list[str]) -> set[str]:
        """Those of `channels` that someone (in any process sharing this live state) subscribes to now:
        publishing to the others reaches nobody (retention removes thousands of checks at once)."""

    @abstractmethod
    async def _subscribe_remote(self, channel: str) -> None: ...

    async def _subscribed_remote(self, channel: str) -> None:
        """Returns once the channel's subscription (made by another subscriber) is in effect."""

    @abstractmethod
    async def _unsubscribe_remote(self, channel: str) -> None: ...

    async def hit_rate_limit(self, key: str, limit: int, window_s: int) -> tuple[bool, int]:
        """Counts one hit; returns (allowed, seconds until the window resets)."""
        count, ttl = await self.count_hit(key, window_s)
        return count <= limit, max(1, ttl)

    @abstractmethod
    async def count_hit(self, key: str, window_s: int) -> tuple[int, int]:
        """Counts one hit in the key's window; returns (hits in the window, seconds until it resets)."""

    @abstractmethod
    async def check_health(self) -> None: ...

    async def close(self) -> None:
        pass

    @contextlib.asynccontextmanager
    async def subscribe(self, channel: str, *, max_pending: int = 10_000) -> AsyncIterator[Subscription]:
        """Messages of `channel` from now on; at most `max_pending` wait (later ones are dropped, see
        Subscription.overflowed). Every subscriber of a channel gets the same bytes object."""
        sub = Subscription(channel, max_pending)
        first = not self._fanout.subs.get(channel)
        self._fanout.subs[channel].add(sub)
        try:
            if first:
                await self._subscribe_remote(channel)
            else:
                await self._subscribed_remote(channel)
            yield sub
        finally:
            self._fanout.subs[channel].discard(sub)
            if not self._fanout.subs[channel]:
                del self._fanout.subs[channel]
                with contextlib.suppress(Exception):
                    await self._unsubscribe_remote(channel)


class MemoryLiveState(LiveState):
    """In-process live state for the embedded default (one process, no Redis)."""

    kind = "memory"

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

    async def remove_inflight_many(self, tasks_by_agent: dict[str, list[str]]) -> None:
        for agent_id, task_ids in tasks_by_agent.items():
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

    async def subscribed(self, channels: list[str]) -> set[str]:
        return {c for c in channels if self._fanout.subs.get(c)}

    async def _subscribe_remote(self, channel: str) -> None:
        pass

    async def _unsubscribe_remote(self, channel: str) -> None:
        pass

    async def count_hit(self, key: str, window_s: int) -> tuple[int, int]:
        now = self._clock()
        count, reset_at = self._counters.get(key, (0, now + window_s))
        if reset_at <= now:
            count, reset_at = 0, now + window_s
        count += 1
        self._counters[key] = (count, reset_at)
        return count, max(1, int(reset_at - now + 0.999))

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

# KEYS: n presence keys, then the index (sorted set); ARGV: ttl in ms, index score, n values, n agent ids.
_SET_PRESENCES = """
local n = #KEYS - 1
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[2 + i], 'PX', ARGV[1])
  redis.call('ZADD', KEYS[n + 1], ARGV[2], ARGV[2 + n + i])
end
return n
"""
# KEYS: n in-flight hashes; ARGV: the hashes' ttl in s, then for each its number of tasks, then
# task id and deadline for each.
_ADD_INFLIGHT = """
local at = 2
for i = 1, #KEYS do
  local n = tonumber(ARGV[at])
  for j = at + 1, at + 2 * n, 1000 do  -- unpack() is limited to a few thousand values
    redis.call('HSET', KEYS[i], unpack(ARGV, j, math.min(j + 999, at + 2 * n)))
  end
  redis.call('EXPIRE', KEYS[i], ARGV[1])
  at = at + 1 + 2 * n
end
return #KEYS
"""
# Seconds an agent's in-flight record outlives its last new task.
INFLIGHT_TTL_S = 3600
# KEYS: n in-flight hashes; ARGV: for each, its number of task ids, then those ids.
_REMOVE_INFLIGHT = """
local at = 1
for i = 1, #KEYS do
  local n = tonumber(ARGV[at])
  for j = at + 1, at + n, 1000 do  -- unpack() is limited to a few thousand values
    redis.call('HDEL', KEYS[i], unpack(ARGV, j, math.min(j + 999, at + n)))
  end
  at = at + 1 + n
end
return #KEYS
"""
# Agents whose in-flight tasks one script call forgets.
INFLIGHT_CHUNK = 1000
# Presences written by one script call (a call blocks Redis while it runs: ~1 ms per 1,000).
PRESENCE_CHUNK = 1000
# Messages published by one pipeline.
PUBLISH_CHUNK = 1000
# Seconds a subscriber waits for Redis to confirm its channel's SUBSCRIBE.
SUBSCRIBE_CONFIRM_S = 5.0

_RATE_LIMIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"""


# Seconds a message delivered here at publish waits for its copy from Redis to be dropped.
ECHO_TTL_S = 30.0


class _Echo:
    """A message published and delivered here, whose copy from Redis is still to come."""

    __slots__ = ("channel", "expires", "payload", "pending")

    def __init__(self, channel: str, payload: bytes, expires: float) -> None:
        self.channel = channel
        self.payload = payload
        self.expires = expires
        self.pending = True


class RedisLiveState(LiveState):
    """Live state in Redis, shared by every replica. Keys are prefixed so tests can share a server."""

    kind = "redis"

    def __init__(self, url: str, *, prefix: str = "hc:") -> None:
        super().__init__()
        # A blocking pool: under a burst (thousands of agents connecting) callers wait for a free
        # connection instead of failing with MaxConnectionsError as the default pool does.
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=64, timeout=10, socket_connect_timeout=3, socket_timeout=5, health_check_interval=10,
            # A pooled connection that died with a Redis restart fails on its next use: retry such a
            # command once or twice on a fresh connection (connection errors only: a timeout may have
            # run the command, and the rate-limit script must not count twice).
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2), retry_on_error=[RedisConnectionError])
        self._pool = pool
        self.redis = aioredis.Redis(connection_pool=pool)
        self.prefix = prefix
        self._pubsub = self.redis.pubsub()
        self._reader: asyncio.Task | None = None
        self._subscribed = asyncio.Event()  # the reader sleeps on it while no channel is subscribed
        # channel -> resolved when Redis confirms its SUBSCRIBE (see _subscribe_remote)
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        # Messages published here and delivered to this process's subscribers at once, whose copy
        # from Redis is dropped when it arrives: channel -> payload -> in publish order (_deliver_local).
        self._echoes: dict[str, dict[bytes, collections.deque[_Echo]]] = {}
        self._echo_log: collections.deque[_Echo] = collections.deque()  # by expiry
        self._clear = self.redis.register_script(_CLEAR_IF_HOLDER)
        self._rate = self.redis.register_script(_RATE_LIMIT)
        self._set_presences = self.redis.register_script(_SET_PRESENCES)
        self._add_inflight = self.redis.register_script(_ADD_INFLIGHT)
        self._remove_inflight = self.redis.register_script(_REMOVE_INFLIGHT)

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
        # One script call per chunk, not a pipeline of a SET per agent: the client packs one command
        # and parses one reply (a pipeline's per-reply parsing was most of a heartbeat's CPU, issue 17).
        # vars(), not asdict(): asdict deep-copies every field before encoding.
        for start in range(0, len(presences), PRESENCE_CHUNK):
            chunk = presences[start:start + PRESENCE_CHUNK]
            await self._set_presences(
                keys=[*(self._k("agent", p.agent_id) for p in chunk), self._k("agents")],
                args=[int(ttl_s * 1000), expires, *(json.dumps(vars(p)) for p in chunk),
                      *(p.agent_id for p in chunk)])

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
        # One script call per chunk of agents for a whole fan-out, not a command per agent: a pipeline's
        # replies are parsed one by one (see set_presences).
        items = [(agent_id, deadlines) for agent_id, deadlines in tasks_by_agent.items() if deadlines]
        for start in range(0, len(items), INFLIGHT_CHUNK):
            chunk = items[start:start + INFLIGHT_CHUNK]
            args: list[str | int | float] = [INFLIGHT_TTL_S]
            for _, deadlines in chunk:
                args.append(len(deadlines))
                for task_id, deadline in deadlines.items():
                    args += (task_id, deadline)
            await self._add_inflight(keys=[self._k("inflight", agent_id) for agent_id, _ in chunk], args=args)

    async def remove_inflight_many(self, tasks_by_agent: dict[str, list[str]]) -> None:
        # One script call per chunk of agents, not an HDEL per agent: a stored batch holds the results of
        # hundreds of agents, and a call per agent (its own pool checkout, timeout and reply) was
        # a third of the scheduler's CPU while ingesting (issue 17).
        items = [(agent_id, task_ids) for agent_id, task_ids in tasks_by_agent.items() if task_ids]
        for start in range(0, len(items), INFLIGHT_CHUNK):
            chunk = items[start:start + INFLIGHT_CHUNK]
            args: list[str | int] = []
            for _, task_ids in chunk:
                args.append(len(task_ids))
                args.extend(task_ids)
            await self._remove_inflight(keys=[self._k("inflight", agent_id) for agent_id, _ in chunk], args=args)

    async def inflight(self, agent_id: str) -> dict[str, float]:
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self._k("inflight", agent_id)))
        return {k.decode(): float(v) for k, v in raw.items()}

    def _deliver_local(self, messages: list[tuple[str, bytes]]) -> list[_Echo]:
        """Hands the messages of channels subscribed in this process to their subscribers now, and
        notes each as an echo to expect back from Redis (see _take_echo).

        A watcher on the publishing process got its events through Redis: the publish's round trip,
        then the subscription connection's read and parse, ~1-2 ms on every check's path to `done`
        (issue 17). Redis still gets every message, for the other processes.
        """
        subs = self._fanout.subs
        echoes: list[_Echo] = []
        now = time.monotonic()
        self._expire_echoes(now)
        for channel, payload in messages:
            if not subs.get(channel):
                continue
            self._fanout.deliver(channel, payload)
            echo = _Echo(channel, payload, now + ECHO_TTL_S)
            self._echoes.setdefault(channel, {}).setdefault(payload, collections.deque()).append(echo)
            self._echo_log.append(echo)
            echoes.append(echo)
        return echoes

    def _take_echo(self, channel: str, payload: bytes) -> bool:
        """Whether this message from Redis is one published here and delivered already (then it is
        dropped: a subscriber gets each message once). Redis returns this process's own messages
        on the subscription connection; they are told apart by their bytes, the oldest first."""
        by_payload = self._echoes.get(channel)
        if not by_payload:
            return False
        waiting = by_payload.get(payload)
        if not waiting:
            return False
        waiting.popleft().pending = False
        if not waiting:
            del by_payload[payload]
            if not by_payload:
                del self._echoes[channel]
        return True

    def _forget_echoes(self, echoes: list[_Echo]) -> None:
        """These will not come back (their publish failed, or it is too late): stop waiting for them."""
        for echo in echoes:
            if not echo.pending:
                continue
            echo.pending = False
            by_payload = self._echoes.get(echo.channel, {})
            waiting = by_payload.get(echo.payload)
            if waiting is not None:
                with contextlib.suppress(ValueError):
                    waiting.remove(echo)
                if not waiting:
                    del by_payload[echo.payload]
                    if not by_payload:
                        self._echoes.pop(echo.channel, None)

    def _expire_echoes(self, now: float) -> None:
        """Echoes not back after ECHO_TTL_S (the subscription was lost meanwhile, or not yet in
        effect at Redis) are no longer expected: a later message with the same bytes is delivered."""
        queue = self._echo_log
        expired = []
        while queue and (queue[0].expires <= now or not queue[0].pending):
            echo = queue.popleft()
            if echo.pending:
                expired.append(echo)
        if expired:
            self._forget_echoes(expired)

    async def publish(self, channel: str, payload: bytes) -> None:
        echoes = self._deliver_local([(channel, payload)])
        try:
            await self.redis.publish(self._k("ch", channel), payload)
        except BaseException:
            self._forget_echoes(echoes)
            raise

    async def publish_many(self, messages: list[tuple[str, bytes]]) -> None:
        # One pipeline per chunk: a write's hundreds of events were as many PUBLISH round trips,
        # each taking a pooled connection, and queued behind each other (issue 17).
        echoes = self._deliver_local(messages)
        try:
            for start in range(0, len(messages), PUBLISH_CHUNK):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for channel, payload in messages[start:start + PUBLISH_CHUNK]:
                        pipe.publish(self._k("ch", channel), payload)
                    await pipe.execute()
        except BaseException:
            self._forget_echoes(echoes)
            raise

    async def subscribed(self, channels: list[str]) -> set[str]:
        if not channels:
            return set()
        # One PUBSUB NUMSUB for them all: counts subscribers on every connection to this Redis.
        counts = await self.redis.pubsub_numsub(*(self._k("ch", c) for c in channels))
        return {c for c, (_, n) in zip(channels, counts, strict=True) if n}

    async def _subscribe_remote(self, channel: str) -> None:
        """Subscribes and waits for Redis to confirm it: from then on a publish reaches this process,
        and `subscribed()` (PUBSUB NUMSUB, which publishers use to skip unwatched checks) counts it.
        Without the wait, a watcher could read its snapshot, and an event be published to nobody,
        before Redis had taken the SUBSCRIBE off the socket."""
        confirmed = asyncio.get_running_loop().create_future()
        self._confirmations[channel] = confirmed
        await self._pubsub.subscribe(self._k("ch", channel))
        self._subscribed.set()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.create_task(self._read(), name="livestate-pubsub")
        await self._subscribed_remote(channel)

    async def _subscribed_remote(self, channel: str) -> None:
        confirmed = self._confirmations.get(channel)
        if confirmed is not None and not confirmed.done():
            with contextlib.suppress(TimeoutError):  # Redis restarting: the reader resubscribes
                await asyncio.wait_for(asyncio.shield(confirmed), SUBSCRIBE_CONFIRM_S)

    async def _unsubscribe_remote(self, channel: str) -> None:
        self._confirmations.pop(channel, None)
        await self._pubsub.unsubscribe(self._k("ch", channel))

    async def _read(self) -> None:
        strip = len(self._k("ch", ""))
        while True:
            try:
                msg = await self._pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
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
            kind = msg.get("type")
            if kind == "message":
                channel, data = msg["channel"].decode()[strip:], msg["data"]
                if not self._echoes or not self._take_echo(channel, data):
                    self._fanout.deliver(channel, data)
            elif kind == "subscribe":
                channel = msg["channel"].decode()[strip:]
                confirmed = self._confirmations.get(channel)
                if confirmed is not None and not confirmed.done():
                    confirmed.set_result(None)
                else:
                    # Subscribed again after a lost connection (here or by redis-py's reconnect):
                    # what was published meanwhile reached nobody here.
                    for sub in list(self._fanout.subs.get(channel, ())):
                        sub.mark_gap()

    async def count_hit(self, key: str, window_s: int) -> tuple[int, int]:
        count, ttl = await self._rate(keys=[self._k("rate", key)], args=[window_s])
        return int(count), max(1, int(ttl))

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

