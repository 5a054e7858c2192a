"""traceroute: ICMP echo, UDP or TCP SYN probes with growing TTL; per hop the address, RTTs, loss and the name."""

from __future__ import annotations

from hostcheck.core.checktypes._paths import validate_protocol
from hostcheck.core.checktypes.base import CheckType
from hostcheck.core.errors import FieldViolation
from hostcheck.core.targets import Target
from hostcheck.v1 import traceroute_pb2

DEFAULT_MAX_HOPS = 30
MAX_HOPS = 64
DEFAULT_PROBES = 2
MAX_PROBES = 5
# Hops the CLI's summary shows.
SHOWN_HOPS = 8


def validate(options: traceroute_pb2.TracerouteOptions, target: Target | None,
             violations: list[FieldViolation]) -> None:
    if options.max_hops and not 1 <= options.max_hops <= MAX_HOPS:
        violations.append(FieldViolation("traceroute.max_hops", f"must be 1-{MAX_HOPS}"))
    if options.probes_per_hop and not 1 <= options.probes_per_hop <= MAX_PROBES:
        violations.append(FieldViolation("traceroute.probes_per_hop", f"must be 1-{MAX_PROBES}"))
    validate_protocol("traceroute", options.protocol, violations)


def summary(result: traceroute_pb2.TracerouteResult) -> str:
    path = " > ".join(h.name or h.address or "*" for h in result.hops[:SHOWN_HOPS])
    if len(result.hops) > SHOWN_HOPS:
        path += " ..."
    return f"{result.address} reached in {len(result.hops)} hop(s): {path}"


SPEC = CheckType(
    name="traceroute", order=6, options=traceroute_pb2.TracerouteOptions, result=traceroute_pb2.TracerouteResult,
    # A trace of 30 silent hops waits up to 2 s for each: a minute by default.
    default_timeout_ms=60_000, max_timeout_ms=120_000, validate=validate, summary=summary,
)
