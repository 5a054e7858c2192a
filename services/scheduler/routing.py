"""Routing between scheduler replicas, through live state's pub/sub.

An agent's stream lives on one replica; a check may be created on any. Tasks for an agent
held here go down its stream at once; tasks for an agent held elsewhere are published on
that replica's channel (`scheduler:<id>`), which it delivers locally. Cancels (results ->
every replica) and revocations (registry -> every replica) arrive the same way; each replica
acts on the agents it holds and ignores the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from hostcheck.services.scheduler.sessions import AgentSessions
from hostcheck.services.storage.livestate import (
    CANCELS_CHANNEL,
    REVOCATIONS_CHANNEL,
    LiveState,
    scheduler_channel,
)
from hostcheck.v1 import scheduler_pb2

log = logging.getLogger(__name__)


class Router:
    """Delivers task batches to agents wherever their streams are, and serves this replica's channels."""

    def __init__(self, live: LiveState, sessions: AgentSessions) -> None:
        self.live = live
        self.sessions = sessions

    @property
    def scheduler_id(self) -> str:
        return self.sessions.scheduler_id

    @property
    def channel(self) -> str:
        """Where other replicas publish tasks for the agents held here."""
        return scheduler_channel(self.scheduler_id)

    async def holders(self, hints: dict[str, str]) -> dict[str, str]:
        """The replica holding each agent's stream now: this one, else its live presence, else its hint.

        `hints` maps agent id -> the replica its presence named when it was picked; an agent may
        have moved since (the pick reads a snapshot), so remote ones are read again, in one call.
        """
        remote = [a for a in hints if a not in self.sessions]
        current = await self.live.get_presence(remote) if remote else {}
        return {agent_id: self.scheduler_id if agent_id in self.sessions
                else (current[agent_id].scheduler_id if agent_id in current else hint)
                for agent_id, hint in hints.items()}

    async def send(self, agent_id: str, batch: scheduler_pb2.TaskBatch, holder: str) -> None:
        """Down the agent's stream when held here, else to `holder`'s channel."""
        if agent_id in self.sessions:
            self.sessions.deliver(agent_id, batch)
        else:
            await self.live.publish(scheduler_channel(holder), scheduler_pb2.RoutedTasks(
                agent_id=agent_id, batch=batch).SerializeToString())

    def _routed(self, raw: bytes) -> None:
        routed = scheduler_pb2.RoutedTasks.FromString(raw)
        self.sessions.deliver(routed.agent_id, routed.batch)

    def _cancels(self, raw: bytes) -> None:
        # {"reason": str, "tasks": [[agent_id, task_id], ...]} (results: DeleteCheck)
        payload = json.loads(raw)
        by_agent: dict[str, list[str]] = {}
        for agent_id, task_id in payload.get("tasks", []):
            by_agent.setdefault(agent_id, []).append(task_id)
        self.sessions.cancel(by_agent, payload.get("reason", ""))

    def _revocation(self, raw: bytes) -> None:
        self.sessions.revoke(raw.decode())

    async def run(self, subscribed: asyncio.Event | None = None) -> None:
        """Serves this replica's channels until cancelled; sets `subscribed` once every channel is."""
        handlers: dict[str, Callable[[bytes], None]] = {
            self.channel: self._routed,
            CANCELS_CHANNEL: self._cancels,
            REVOCATIONS_CHANNEL: self._revocation,
        }
        async with contextlib.AsyncExitStack() as stack:
            subs = {name: await stack.enter_async_context(self.live.subscribe(name)) for name in handlers}
            if subscribed is not None:
                subscribed.set()
            waiting = {asyncio.ensure_future(sub.get()): name for name, sub in subs.items()}
            try:
                while True:
                    done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                    for fut in done:
                        name = waiting.pop(fut)
                        raw = fut.result()  # never None: no timeout
                        try:
                            if raw is not None:
                                handlers[name](raw)
                        except Exception:  # noqa: BLE001 - one bad message must not stop routing
                            log.exception("cannot handle a message on %s", name)
                        waiting[asyncio.ensure_future(subs[name].get())] = name
            finally:
                for fut in waiting:
                    fut.cancel()
