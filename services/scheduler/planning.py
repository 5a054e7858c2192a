"""Planning a check: validate the request, apply the per-IP rate limit, pick agents from
live presence, and turn the picks into tasks (what the results service stores and what
each agent is sent)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hostcheck.core import limits
from hostcheck.core.checks import ValidCheck, task_options, validate_create
from hostcheck.core.errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from hostcheck.core.targets import TargetGuard
from hostcheck.core.timestamps import ts
from hostcheck.services.auth import KEY, Caller
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
            if now - self._snapshot[0] >= self.max_age_s / 2 and (self._read is None or self._read.done()):
                # Read the next snapshot now, in the background, so that a caller rarely waits for one
                # (three live-state round trips on that check's path to its agents, issue 17).
                self._read = asyncio.ensure_future(self._refresh(now))
                self._read.add_done_callback(_retrieve)
            return self._snapshot[1]
        if self._read is None or self._read.done():
            self._read = asyncio.ensure_future(self._refresh(now))
        return await asyncio.shield(self._read)

    async def _refresh(self, asked_at: float) -> list[Presence]:
        agents = await self.live.online_agents()
        if self._snapshot is None or self._snapshot[0] <= asked_at:
            self._snapshot = (asked_at, agents)
        return agents


def _retrieve(future: asyncio.Future) -> None:
    """A background read's error is not raised there: the next caller that waits for a read sees its own."""
    if not future.cancelled():
        future.exception()


# An API key's quota is per hour.
KEY_QUOTA_WINDOW_S = 3600


class RateLimit:
    """Checks per caller per window, counted in live state so every replica shares the count.

    Anonymous callers: `limit` per client IP per `window_s` (0: no limit). An API key: its
    own quota per hour, whatever its IP. The admin: no limit.
    """

    def __init__(self, live: LiveState, *, limit: int, window_s: int) -> None:
        self.live = live
        self.limit = limit
        self.window_s = window_s

    async def hit(self, caller: Caller) -> None:
        """Counts one check of `caller`; raises ResourceExhausted (with when to retry) past its limit."""
        if caller.is_admin:
            return
        if caller.role == KEY:
            key, limit, window, who = (f"checks:key:{caller.key_id}", caller.quota_per_hour, KEY_QUOTA_WINDOW_S,
                                       f"API key {caller.key_id}")
        elif self.limit:
            key, limit, window, who = f"checks:{caller.ip}", self.limit, self.window_s, caller.ip
        else:
            return
        # Counted before the check goes ahead, so live state being down refuses it (UNAVAILABLE).
        allowed, retry = await self.live.hit_rate_limit(key, limit, window)
        if not allowed:
            raise ResourceExhausted(f"rate limit of {limit} checks per {window} s for {who} reached",
                                    retry_after_s=retry)


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
    # The API key that created the check; "" when anonymous or the admin (see Planner.plan).
    created_by_key_id: str = ""
    # Set when the check is a monitor's run (services/scheduler/monitors.py): the results service
    # opens at most one check per run.
    monitor_id: str = ""
    monitor_run: int = 0


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


# The agent ids of an earlier check (AgentSelector.same_as); raises NotFound for an unknown check.
CheckAgents = Callable[[str], Awaitable[Sequence[str]]]


async def _no_check_agents(check_id: str) -> Sequence[str]:
    raise FailedPrecondition("this scheduler cannot look up earlier checks (agents.same_as)")


# Requests whose validation a planner remembers (see Planner._validate).
VALID_REQUESTS = 256


class Planner:
    """Turns a CreateCheck request into a Plan, or says why not."""

    def __init__(self, online: OnlineAgents, *, guard: TargetGuard, rate_limit: RateLimit,
                 dispatch_grace_s: float, check_agents: CheckAgents = _no_check_agents) -> None:
        self.online = online
        self.guard = guard
        self.rate_limit = rate_limit
        self.grace = timedelta(seconds=dispatch_grace_s)
        self.check_agents = check_agents
        self._valid: OrderedDict[bytes, ValidCheck] = OrderedDict()

    def _validate(self, request: scheduler_pb2.CreateCheckRequest) -> ValidCheck:
        """validate_create, remembered for the VALID_REQUESTS last requests that passed it (by their
        bytes): it depends on nothing else (the guard is fixed), and a monitor or a dashboard sends
        the same request again and again. It was ~5% of the scheduler's CPU per check (issue 17);
        the key costs a few us. The ValidCheck is shared: it is only read."""
        key = request.SerializeToString(deterministic=True)
        valid = self._valid.get(key)
        if valid is not None:
            self._valid.move_to_end(key)
            return valid
        valid = self._valid[key] = validate_create(request, self.guard)
        while len(self._valid) > VALID_REQUESTS:
            self._valid.popitem(last=False)
        return valid

    async def plan(self, request: scheduler_pb2.CreateCheckRequest, caller: Caller, *, check_id: str | None = None,
                   charge: bool = True) -> Plan:
        """`check_id`: the id the check must have (a monitor run's, claimed with it); `charge=False`: the
        check does not count against the caller's rate limit or quota (a monitor's run: monitors are
        bounded by their number per key and their minimum interval instead)."""
        # A request refused (invalid, or no agent matches) does not count against the caller's quota.
        valid = self._validate(request)
        sel = valid.request.agents
        same_as = set(await self.check_agents(sel.same_as)) if sel.same_as else None
        try:
            picked = pick_agents(await self.online.get(), sel, valid.check_types, same_as=same_as)
        except FailedPrecondition:
            # The snapshot may predate an agent that just connected: decide on a fresh one.
            picked = pick_agents(await self.online.get(fresh=True), sel, valid.check_types, same_as=same_as)
        tasks = sum(len(types) for _, types in picked)
        if tasks > limits.MAX_TASKS_PER_CHECK:  # only same_as without a limit can get here
            raise InvalidArgument(field="agents.limit", reason=f"{len(picked)} agents x {len(valid.check_types)} "
                                  f"check types is over {limits.MAX_TASKS_PER_CHECK} tasks per check; "
                                  "ask for fewer agents")
        if charge:
            await self.rate_limit.hit(caller)
        plan = plan_tasks(valid, picked, client_ip=caller.ip, now=datetime.now(UTC), grace=self.grace,
                          check_id=check_id)
        # The admin's checks are anonymous-owned (deletable by the admin only); a key owns its own.
        plan.created_by_key_id = caller.key_id
        return plan
