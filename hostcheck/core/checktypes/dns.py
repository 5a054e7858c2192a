"""dns: one query of one record type to a chosen resolver (or the agent's own); answers, rcode, time."""

from __future__ import annotations

import ipaddress

from hostcheck.core.checktypes.base import CheckType, number
from hostcheck.core.errors import FieldViolation
from hostcheck.core.targets import IPAddress, Target
from hostcheck.v1 import dns_pb2

RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "PTR", "SRV", "CAA")
DEFAULT_PORT = 53
# Answers the CLI's summary shows.
SHOWN_ANSWERS = 3


def parse_resolver(value: str) -> tuple[IPAddress, int]:
    """`ip`, `ip:port`, `[v6]` or `[v6]:port` -> (ip, port); ValueError saying what is wrong."""
    host, port = value, str(DEFAULT_PORT)
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{value!r} is not ip or ip:port")
            port = rest[1:]
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{value!r} is not ip or ip:port") from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port!r} is out of range 1-65535")
    return ip, int(port)


def validate(options: dns_pb2.DnsOptions, target: Target | None, violations: list[FieldViolation]) -> None:
    if options.record_type and options.record_type.upper() not in RECORD_TYPES:
        violations.append(FieldViolation("dns.record_type", f"must be one of {', '.join(RECORD_TYPES)}"))
    if options.resolver:
        try:
            parse_resolver(options.resolver)
        except ValueError as exc:
            violations.append(FieldViolation("dns.resolver", str(exc)))


def summary(result: dns_pb2.DnsResult) -> str:
    shown = ", ".join(a.value for a in result.answers[:SHOWN_ANSWERS])
    if len(result.answers) > SHOWN_ANSWERS:
        shown += " ..."
    return (f"{result.rcode} {result.record_type} via {result.resolver} "
            f"in {number(result.query_ms)} ms: {shown}")


SPEC = CheckType(
    name="dns", order=4, options=dns_pb2.DnsOptions, result=dns_pb2.DnsResult,
    default_timeout_ms=5_000, max_timeout_ms=30_000, validate=validate, summary=summary,
)
