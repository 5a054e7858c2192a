"""Planning a check: validate the request, apply the per-IP rate limit, pick agents from
live presence, and turn the picks into tasks (what the results service stores and what
each agent is sent)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hostcheck.core.checks import ValidCheck, task_options, validate_create
from hostcheck.core.errors import FailedPrecondition, ResourceExhausted
from hostcheck.core.targets import TargetGuard
from hostcheck.core.timestamps import ts
from hostcheck.services.scheduler.selection import pick_agents
from hostcheck.services.storage.livestate import LiveState, Presence
from hostcheck.v1 import results_pb2, scheduler_pb2

# How stale the list of online agents that CreateCheck picks from may be (see OnlineAgents).
ONLINE_SNAPSHOT_S = 1.0


class OnlineAgents:
    """Online agents, from a snapshot at most `max_age_s` old.

    Reading every agent's presence costs ~1 ms per 25 agents (decoding in Python); with
    thousands online, once per CreateCheck was most of the scheduler's CPU. Concurrent
    callers share one read. Routing does not use the snapshot (see Router.holders).
    """

    def __init__(self, live: LiveState, *, max_age_s: float = ONLINE_SNAPSHOT_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.live = live
        self.max_age_s = max_age_s
        self._clock = clock
        self._snapshot: tuple[float, list[Presence]] | None = None
        self._read: asyncio.Future[list[Presence]] | None = None

    async def get(self, *, fresh: bool = False) -> list[Presence]:
        now = self._clock()
        if not fresh and self._snapshot is not None and now - self._snapshot[0] < self.max_age_s:
            return self._snapshot[1]
        if self._read is None or self._read.done():
            self._read = asyncio.ensure_future(self.live.online_agents())
        agents = await asyncio.shield(self._read)
        self._snapshot = (now, agents)
        return agents


class RateLimit:
    """Checks per client IP per window, counted in live state so every replica shares the count."""

    def __init__(self, live: LiveState, *, limit: int, window_s: int) -> None:
        self.live = live
        self.limit = limit
        self.window_s = window_s

    async def hit(self, client_ip: str) -> None:
        """Counts one check of `client_ip`; raises ResourceExhausted (with when to retry) past the limit."""
        allowed, retry = await self.live.hit_rate_limit(f"checks:{client_ip}", self.limit, self.window_s)
        if not allowed:
            raise ResourceExhausted(f"rate limit of {self.limit} checks per {self.window_s} s for {client_ip} "
                                    "reached", retry_after_s=retry)


@dataclass
class AgentTasks:
    """One agent's share of a check."""

    # The replica holding the agent's stream when it was picked (dispatch checks it again).
    holder: str
    tasks: list[scheduler_pb2.Task] = field(default_factory=list)


@dataclass
class Plan:
    """A check ready to be stored and dispatched."""

    check_id: str
    request: scheduler_pb2.CreateCheckRequest  # validated and normalised
    client_ip: str
    # What the results service stores: every task with the agent it runs on.
    tasks: list[results_pb2.PlannedTask]
    # When the last task is due (its timeout plus the dispatch grace).
    deadline: datetime
    # What each agent is sent, by agent id.
    by_agent: dict[str, AgentTasks]


def plan_tasks(valid: ValidCheck, picked: Sequence[tuple[Presence, Sequence[str]]], *, client_ip: str,
               now: datetime, grace: timedelta, check_id: str | None = None) -> Plan:
    """One task per picked agent and check type it can run.

    An agent is sent its task's own timeout as deadline; the results service waits `grace`
    longer for the result (dispatch and reporting take time) before ending it as timed out.
    """
    check_id = check_id or str(uuid.uuid4())
    planned: list[results_pb2.PlannedTask] = []
    by_agent: dict[str, AgentTasks] = {}
    for presence, check_types in picked:
        share = by_agent.setdefault(presence.agent_id, AgentTasks(holder=presence.scheduler_id))
        for check_type in check_types:
            task_id = str(uuid.uuid4())
            timeout = timedelta(milliseconds=valid.timeout_ms(check_type))
            planned.append(results_pb2.PlannedTask(
                task_id=task_id, agent_id=presence.agent_id, check_type=check_type, deadline=ts(now + timeout + grace),
                agent_name=presence.name, location=presence.location, region=presence.region,
                country=presence.country, city=presence.city))
            share.tasks.append(scheduler_pb2.Task(
                task_id=task_id, check_id=check_id, check_type=check_type, target=valid.request.target,
                options=task_options(valid.request, check_type), timeout_ms=valid.timeout_ms(check_type),
                deadline=ts(now + timeout), ip_version=valid.request.ip_version))
    deadline = max(t.deadline.ToDatetime(tzinfo=UTC) for t in planned)
    return Plan(check_id=check_id, request=valid.request, client_ip=client_ip, tasks=planned, deadline=deadline,
                by_agent=by_agent)


class Planner:
    """Turns a CreateCheck request into a Plan, or says why not."""

    def __init__(self, online: OnlineAgents, *, guard: TargetGuard, rate_limit: RateLimit | None,
                 dispatch_grace_s: float) -> None:
        self.online = online
        self.guard = guard
        self.rate_limit = rate_limit
        self.grace = timedelta(seconds=dispatch_grace_s)

    async def plan(self, request: scheduler_pb2.CreateCheckRequest, client_ip: str) -> Plan:
        # A request refused as invalid does not count against the client's rate limit.
        valid = validate_create(request, self.guard)
        if self.rate_limit is not None:
            await self.rate_limit.hit(client_ip)
        try:
            picked = pick_agents(await self.online.get(), valid.request.agents, valid.check_types)
        except FailedPrecondition:
            # The snapshot may predate an agent that just connected: decide on a fresh one.
            picked = pick_agents(await self.online.get(fresh=True), valid.request.agents, valid.check_types)
        return plan_tasks(valid, picked, client_ip=client_ip, now=datetime.now(UTC), grace=self.grace)
