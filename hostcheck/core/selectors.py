"""Validation of an AgentSelector, and how many agents it asks for.

Pure domain code, like checks.py (which calls `validate_selector`): every violation names its
field. Lengths and counts of the selector's fields are bounded by core/limits.py already; the
rules here are what those cannot say. Which agents match is the scheduler's
(services/scheduler/selection.py).
"""

from __future__ import annotations

import uuid

from google.protobuf import unknown_fields
from google.protobuf.message import Message

from hostcheck.core import limits
from hostcheck.core.errors import FieldViolation
from hostcheck.core.geo import CONTINENT_NAMES
from hostcheck.v1 import checks_pb2

MAX_AGENTS = limits.MAX_AGENTS
DEFAULT_AGENTS = 10
# The largest ASN (32-bit); 0 is "unknown" on an agent, so never asked for.
MAX_ASN = 2**32 - 1

# The filters a selector and each of its locations share (all must match).
STRING_FILTERS = ("continents", "regions", "countries", "cities", "networks", "magic")
FILTERS = (*STRING_FILTERS, "asns", "labels", "exclude_labels")

Filters = checks_pb2.AgentSelector | checks_pb2.AgentLocation


def validate_selector(sel: checks_pb2.AgentSelector, over: set[str], bad: list[FieldViolation]) -> None:
    """Appends a violation for each rule of `sel` broken; `over`: field paths already over their limits."""
    _refuse_unknown("agents", sel, bad)
    if sel.limit and not 1 <= sel.limit <= MAX_AGENTS:
        bad.append(FieldViolation("agents.limit", f"must be 1-{MAX_AGENTS}"))
    seen: set[str] = set()
    for i, agent_id in enumerate(sel.agent_ids if "agents.agent_ids" not in over else ()):
        if not _is_uuid(agent_id):
            bad.append(FieldViolation(f"agents.agent_ids[{i}]", "is not a UUID"))
        elif agent_id.lower() in seen:
            bad.append(FieldViolation(f"agents.agent_ids[{i}]", f"agent {agent_id} given twice"))
        seen.add(agent_id.lower())
    _validate_filters("agents", sel, over, bad)
    if sel.same_as and not _is_uuid(sel.same_as):
        bad.append(FieldViolation("agents.same_as", f"{sel.same_as[:64]!r} is not a check id (a UUID)"))
    if sel.agent_ids and sel.same_as:
        bad.append(FieldViolation("agents.same_as", "give agent_ids or same_as, not both"))
    if sel.agent_ids and sel.locations:
        bad.append(FieldViolation("agents.locations", "give agent_ids or locations, not both"))
    if "agents.locations" in over:
        return
    for i, loc in enumerate(sel.locations):
        path = f"agents.locations[{i}]"
        _refuse_unknown(path, loc, bad)
        if loc.limit and not 1 <= loc.limit <= MAX_AGENTS:
            bad.append(FieldViolation(f"{path}.limit", f"must be 1-{MAX_AGENTS}"))
        _validate_filters(path, loc, over, bad, over_path="agents.locations")
    if sel.locations and all(1 <= loc.limit <= MAX_AGENTS for loc in sel.locations):
        total = sum(loc.limit for loc in sel.locations)
        if total > MAX_AGENTS:
            bad.append(FieldViolation("agents.locations", f"the locations' limits add up to {total}, "
                                                          f"over {MAX_AGENTS} agents"))


def _validate_filters(path: str, f: Filters, over: set[str], bad: list[FieldViolation], *,
                      over_path: str = "agents") -> None:
    for name in STRING_FILTERS:
        if f"{over_path}.{name}" in over:
            continue
        for i, value in enumerate(getattr(f, name)):
            if not value.strip():
                bad.append(FieldViolation(f"{path}.{name}[{i}]", "must not be empty"))
            elif name == "continents" and value.strip().upper() not in CONTINENT_NAMES:
                bad.append(FieldViolation(f"{path}.{name}[{i}]", f"unknown continent {value[:40]!r}; "
                                                                  f"known: {', '.join(CONTINENT_NAMES)}"))
            elif name == "magic" and any(not part.strip() for part in value.split("+")):
                bad.append(FieldViolation(f"{path}.{name}[{i}]", "has an empty filter around '+'"))
    for i, asn in enumerate(f.asns):
        if asn == 0:
            bad.append(FieldViolation(f"{path}.asns[{i}]", f"must be 1-{MAX_ASN}"))
    for name in ("labels", "exclude_labels"):
        for key in getattr(f, name):
            if not key.strip():
                bad.append(FieldViolation(f"{path}.{name}", "a label key must not be empty"))
                break


def _refuse_unknown(path: str, message: Message, bad: list[FieldViolation]) -> None:
    """A field this version does not know (a gRPC client built from a newer or misspelt proto) is
    refused: ignoring a filter would run the check on agents it meant to leave out. (Over REST the
    gateway's key list catches unknown names first: services/restbody.py.)"""
    for field in unknown_fields.UnknownFieldSet(message):
        bad.append(FieldViolation(path, f"unknown field number {field.field_number}: this server's "
                                        f"{message.DESCRIPTOR.name} has no such field"))
        return


def location_limits(sel: checks_pb2.AgentSelector) -> list[int]:
    """Each location's limit: its own, or an even share of the selector's limit (default 10) among
    the locations that give none (the first ones get the remainder), at least 1 each."""
    unset = [i for i, loc in enumerate(sel.locations) if not loc.limit]
    total = sel.limit or DEFAULT_AGENTS
    share, extra = divmod(total, len(unset)) if unset else (0, 0)
    limits_ = [loc.limit for loc in sel.locations]
    for n, i in enumerate(unset):
        limits_[i] = max(1, share + (1 if n < extra else 0))
    return limits_


def planned_agents(sel: checks_pb2.AgentSelector) -> int:
    """The most agents `sel` can pick (without same_as: that depends on the earlier check)."""
    if sel.agent_ids:
        return len(sel.agent_ids)
    if sel.locations:
        total = sum(location_limits(sel))
        return min(total, sel.limit) if sel.limit else total
    return sel.limit or DEFAULT_AGENTS


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True
