"""What the types that probe a path with growing TTL share: their protocols and default ports."""

from __future__ import annotations

from hostcheck.core.errors import FieldViolation

PROTOCOLS = ("icmp", "udp", "tcp")
# The classic first UDP port of a path probe (33434 + hops stays clear of most services); tcp's default is http's.
DEFAULT_UDP_PORT = 33434
DEFAULT_TCP_PORT = 80


def validate_protocol(prefix: str, protocol: str, violations: list[FieldViolation]) -> None:
    if protocol and protocol.lower() not in PROTOCOLS:
        violations.append(FieldViolation(f"{prefix}.protocol", f"must be one of {', '.join(PROTOCOLS)}"))


def default_port(protocol: str, target_port: int | None) -> int:
    """The destination port of a udp or tcp probe given no port option; 0 for icmp."""
    if protocol == "udp":
        return DEFAULT_UDP_PORT
    if protocol == "tcp":
        return target_port or DEFAULT_TCP_PORT
    return 0
