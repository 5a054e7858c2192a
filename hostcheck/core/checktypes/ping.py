"""ping: ICMP echo requests (or TCP connections) to one address; per-packet RTT and TTL, min/avg/max/stddev, loss."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hostcheck.core.checktypes._blackbox import ProbeSeries, value_of
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
PROTOCOLS = ("icmp", "tcp")
# A TCP ping without a port option or a port in the target probes http's.
DEFAULT_TCP_PORT = 80


def validate(options: ping_pb2.PingOptions, target: Target | None, violations: list[FieldViolation]) -> None:
    if options.count and not 1 <= options.count <= MAX_COUNT:
        violations.append(FieldViolation("ping.count", f"must be 1-{MAX_COUNT}"))
    if options.interval_ms and not MIN_INTERVAL_MS <= options.interval_ms <= MAX_INTERVAL_MS:
        violations.append(FieldViolation("ping.interval_ms", f"must be {MIN_INTERVAL_MS}-{MAX_INTERVAL_MS}"))
    if options.size > MAX_SIZE:
        violations.append(FieldViolation("ping.size", f"must be 0-{MAX_SIZE}"))
    protocol = options.protocol.lower()
    if protocol and protocol not in PROTOCOLS:
        violations.append(FieldViolation("ping.protocol", f"must be one of {', '.join(PROTOCOLS)}"))
    if options.size and protocol == "tcp":
        violations.append(FieldViolation("ping.size", "is for the icmp protocol only"))


def summary(result: ping_pb2.PingResult) -> str:
    rtts = "/".join(optional(result, f"rtt_{stat}_ms") for stat in ("min", "avg", "max"))
    if result.protocol == "tcp":
        return (f"{result.address} port {result.port}: {result.packets_received}/{result.packets_sent} "
                f"connections answered, rtt min/avg/max {rtts} ms")
    return (f"{result.address}: {result.packets_received}/{result.packets_sent} replies, "
            f"rtt min/avg/max {rtts} ms, ttl {optional(result, 'ttl')}")


def probe_metrics(f: Mapping[str, Any]) -> Iterator[ProbeSeries]:
    """blackbox_exporter's icmp prober series (prober/icmp.go); a TCP ping is not what it measures.
    The rtt is the average of the packets (blackbox sends one)."""
    if (f["protocol"] or "icmp") != "icmp":
        return
    rtt = value_of(f["rtt_avg_ms"])
    if rtt is not None:
        yield "probe_icmp_duration_seconds", (("phase", "rtt"),), rtt / 1000.0
    ttl = value_of(f["ttl"])
    if ttl is not None:
        yield "probe_icmp_reply_hop_limit", (), ttl


SPEC = CheckType(
    name="ping", order=3, options=ping_pb2.PingOptions, result=ping_pb2.PingResult,
    default_timeout_ms=10_000, max_timeout_ms=60_000, validate=validate, summary=summary,
    probe_fields=("protocol", "rtt_avg_ms", "ttl"), probe_metrics=probe_metrics,
)
