"""Picking agents for a check: pure functions over live presence."""

from __future__ import annotations

import random
from collections.abc import Sequence

from hostcheck.core.checks import DEFAULT_AGENTS
from hostcheck.core.errors import FailedPrecondition
from hostcheck.services.storage.livestate import Presence
from hostcheck.v1 import checks_pb2


def matches(p: Presence, sel: checks_pb2.AgentSelector) -> bool:
    if sel.agent_ids and p.agent_id not in sel.agent_ids:
        return False
    if sel.regions and p.region.lower() not in {r.lower() for r in sel.regions}:
        return False
    if sel.countries and p.country.upper() not in {c.upper() for c in sel.countries}:
        return False
    if sel.cities and p.city.lower() not in {c.lower() for c in sel.cities}:
        return False
    return all(p.labels.get(k) == v for k, v in sel.labels.items())


def pick_agents(online: Sequence[Presence], sel: checks_pb2.AgentSelector, check_types: Sequence[str],
                *, rng: random.Random | None = None) -> list[tuple[Presence, list[str]]]:
    """The agents to run a check, each with the check types it can run.

    Least-loaded first, ties broken at random so checks spread over equal agents.
    Raises FailedPrecondition when nothing matches, naming what was asked.
    """
    rng = rng or random.Random()
    if sel.agent_ids:
        missing = set(sel.agent_ids) - {p.agent_id for p in online}
        if missing:
            raise FailedPrecondition(f"agent(s) not online: {', '.join(sorted(missing))}")
    candidates = []
    for p in online:
        if not matches(p, sel):
            continue
        types = [t for t in check_types if not p.capabilities or t in p.capabilities]
        if types:
            candidates.append((p, types))
    if not candidates:
        wanted = []
        for name in ("regions", "countries", "cities"):
            if getattr(sel, name):
                wanted.append(f"{name}={','.join(getattr(sel, name))}")
        if sel.labels:
            wanted.append("labels=" + ",".join(f"{k}={v}" for k, v in sel.labels.items()))
        where = f" matching {' '.join(wanted)}" if wanted else ""
        raise FailedPrecondition(f"no online agent{where} can run {', '.join(check_types)} "
                                 f"({len(online)} agent(s) online)")
    rng.shuffle(candidates)
    candidates.sort(key=lambda c: c[0].tasks_in_flight)
    limit = len(sel.agent_ids) if sel.agent_ids else (sel.limit or DEFAULT_AGENTS)
    return candidates[:limit]
