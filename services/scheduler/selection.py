"""Picking agents for a check: pure functions over live presence.

A selector's filters (continents, regions, countries, cities, ASNs, networks, labels to have
and not to have, free-text `magic`) must all match; each names values of which any matches.
`locations` are places within that, each with its own limit; `same_as` narrows the agents to
those of an earlier check (the caller looks them up). Among the matching agents, picks are
spread over places (countries, then cities within a country, in turn), least loaded first.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence

from hostcheck.core.errors import FailedPrecondition
from hostcheck.core.geo import CONTINENT_NAMES, continent_of, country_names
from hostcheck.core.selectors import DEFAULT_AGENTS, FILTERS, Filters, location_limits
from hostcheck.services.storage.livestate import Presence
from hostcheck.v1 import checks_pb2

# The label naming an agent's network (AgentSelector.networks), e.g. network=Deutsche Telekom.
NETWORK_LABEL = "network"

Pick = tuple[Presence, list[str]]


def facts(p: Presence) -> frozenset[str]:
    """What a `magic` filter can match on an agent, lowercased."""
    continent = continent_of(p.country)
    values = {continent, CONTINENT_NAMES.get(continent, ""), p.country, p.region, p.city,
              *country_names(p.country), *p.labels.values()}
    if p.asn:
        values.add(f"as{p.asn}")
    return frozenset(v.strip().lower() for v in values if v and v.strip())


def _magic_matches(p: Presence, items: Sequence[str]) -> bool:
    known = facts(p)
    return any(all(part.strip().lower() in known for part in item.split("+")) for item in items)


def _lower(values: Sequence[str]) -> set[str]:
    return {v.strip().lower() for v in values}


def matches_filters(p: Presence, f: Filters) -> bool:
    """Whether an agent matches every filter of a selector or one of its locations."""
    if f.continents and continent_of(p.country) not in {c.strip().upper() for c in f.continents}:
        return False
    if f.regions and p.region.lower() not in _lower(f.regions):
        return False
    if f.countries and p.country.upper() not in {c.strip().upper() for c in f.countries}:
        return False
    if f.cities and p.city.lower() not in _lower(f.cities):
        return False
    if f.asns and p.asn not in f.asns:
        return False
    if f.networks and p.labels.get(NETWORK_LABEL, "").lower() not in _lower(f.networks):
        return False
    if not all(p.labels.get(k) == v for k, v in f.labels.items()):
        return False
    if any(p.labels.get(k) == v for k, v in f.exclude_labels.items()):
        return False
    return not f.magic or _magic_matches(p, f.magic)


def matches(p: Presence, sel: checks_pb2.AgentSelector) -> bool:
    if sel.agent_ids and p.agent_id not in sel.agent_ids:
        return False
    return matches_filters(p, sel)


def spread(candidates: Sequence[Pick], limit: int, rng: random.Random) -> list[Pick]:
    """Up to `limit` of the candidates, spread over places: countries in turn, and within a country its
    cities in turn; least loaded first within a place (ties at random), and places in the order of
    their least loaded agent."""
    ordered = list(candidates)
    rng.shuffle(ordered)
    ordered.sort(key=lambda c: c[0].tasks_in_flight)
    countries: dict[str, dict[str, list[Pick]]] = {}
    for c in ordered:
        countries.setdefault(c[0].country.upper(), {}).setdefault(c[0].city.lower(), []).append(c)
    per_country = [_round_robin(list(cities.values())) for cities in countries.values()]
    return _round_robin(per_country)[:limit]


def _round_robin(queues: list[list[Pick]]) -> list[Pick]:
    out: list[Pick] = []
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out


def pick_agents(online: Sequence[Presence], sel: checks_pb2.AgentSelector, check_types: Sequence[str],
                *, rng: random.Random | None = None, same_as: Collection[str] | None = None) -> list[Pick]:
    """The agents to run a check, each with the check types it can run.

    `same_as`: the agent ids of the earlier check `sel.same_as` names (looked up by the caller).
    Raises FailedPrecondition when nothing matches, naming what was asked.
    """
    rng = rng or random.Random()
    if sel.agent_ids:
        missing = set(sel.agent_ids) - {p.agent_id for p in online}
        if missing:
            raise FailedPrecondition(f"agent(s) not online: {', '.join(sorted(missing))}")
    pool = online
    if same_as is not None:
        pool = [p for p in online if p.agent_id in same_as]
        if not pool:
            raise FailedPrecondition(f"none of the {len(same_as)} agent(s) of check {sel.same_as} is online")
    candidates = []
    for p in pool:
        if not matches(p, sel):
            continue
        types = [t for t in check_types if not p.capabilities or t in p.capabilities]
        if types:
            candidates.append((p, types))

    if sel.locations:
        picked: list[Pick] = []
        taken: set[str] = set()
        for loc, share in zip(sel.locations, location_limits(sel), strict=True):
            here = [c for c in candidates if c[0].agent_id not in taken and matches_filters(c[0], loc)]
            for c in spread(here, share, rng):
                taken.add(c[0].agent_id)
                picked.append(c)
        if sel.limit:
            picked = picked[:sel.limit]
    else:
        if sel.agent_ids:
            limit = len(sel.agent_ids)
        elif sel.limit:
            limit = sel.limit
        else:
            limit = len(same_as) if same_as is not None else DEFAULT_AGENTS
        picked = spread(candidates, limit, rng)
    if not picked:
        raise FailedPrecondition(f"no online agent{_describe(sel)} can run {', '.join(check_types)} "
                                 f"({len(online)} agent(s) online)")
    return picked


def _describe(sel: checks_pb2.AgentSelector) -> str:
    """What a selector asked for, for the error when nothing matches."""
    def filters(f: Filters) -> list[str]:
        out = []
        for name in FILTERS:
            value = getattr(f, name)
            if not value:
                continue
            if name in ("labels", "exclude_labels"):
                out.append(f"{name}=" + ",".join(f"{k}={v}" for k, v in sorted(value.items())))
            else:
                out.append(f"{name}=" + ",".join(str(v) for v in value))
        return out
    wanted = filters(sel)
    if sel.same_as:
        wanted.append(f"same_as={sel.same_as}")
    for i, loc in enumerate(sel.locations):
        wanted.append(f"locations[{i}]=({' '.join(filters(loc)) or 'any'})")
    return f" matching {' '.join(wanted)}" if wanted else ""
