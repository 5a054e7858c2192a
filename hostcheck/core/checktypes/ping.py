"""ping: ICMP echo requests to one address; per-packet RTT and TTL, min/avg/max/stddev and loss."""

from __future__ import annotations

from hostcheck.core.checktypes.base import CheckType, optional
from hostcheck.core.errors import FieldViolation
from hostcheck.core.targets import Target
from hostcheck.v1 import ping_pb2

DEFAULT_COUNT = 4
# Echo requests per check: enough for a loss figure, few enough not to flood (16 at the default
# interval take 3.2 s of the default 10 s timeout).
MAX_COUNT = 16
DEFAULT_INTERVAL_MS = 200
MIN_INTERVAL_MS = 100
MAX_INTERVAL_MS = 5000
DEFAULT_SIZE = 56
# The largest ICMP payload in one 1500-byte Ethernet frame without fragmenting (1500 - 20 IP - 8 ICMP).
MAX_SIZE = 1472


def validate(options: ping_pb2.PingOptions, target: Target | None, violations: list[FieldViolation]) -> None:
    if options.count and not 1 <= options.count <= MAX_COUNT:
        violations.append(FieldViolation("ping.count", f"must be 1-{MAX_COUNT}"))
    if options.interval_ms and not MIN_INTERVAL_MS <= options.interval_ms <= MAX_INTERVAL_MS:
        violations.append(FieldViolation("ping.interval_ms", f"must be {MIN_INTERVAL_MS}-{MAX_INTERVAL_MS}"))
    if options.size > MAX_SIZE:
        violations.append(FieldViolation("ping.size", f"must be 0-{MAX_SIZE}"))


def summary(result: ping_pb2.PingResult) -> str:
    rtts = "/".join(optional(result, f"rtt_{stat}_ms") for stat in ("min", "avg", "max"))
    return (f"{result.address}: {result.packets_received}/{result.packets_sent} replies, "
            f"rtt min/avg/max {rtts} ms, ttl {optional(result, 'ttl')}")


SPEC = CheckType(
    name="ping", order=3, options=ping_pb2.PingOptions, result=ping_pb2.PingResult,
    default_timeout_ms=10_000, max_timeout_ms=60_000, validate=validate, summary=summary,
)
