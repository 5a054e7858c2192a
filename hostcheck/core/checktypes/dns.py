"""dns: one query of one record type to a resolver over udp, tcp or tls, or a trace from the root; answers, rcode, time."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from typing import Any

from hostcheck.core.checktypes._blackbox import ProbeSeries, seconds
from hostcheck.core.checktypes.base import CheckType, number
from hostcheck.core.errors import FieldViolation
from hostcheck.core.targets import IPAddress, Target
from hostcheck.v1 import dns_pb2

# The types the prober's own wire code reads over udp; the others go through dnspython (agent/probers/dns.py).
WIRE_RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "PTR", "SRV", "CAA")
RECORD_TYPES = (*WIRE_RECORD_TYPES, "DNSKEY", "DS", "HTTPS", "SVCB", "NAPTR", "TLSA", "SSHFP")
PROTOCOLS = ("udp", "tcp", "tls")
DEFAULT_PORT = 53
# DNS over TLS (RFC 7858).
DEFAULT_TLS_PORT = 853
# Answers the CLI's summary shows.
SHOWN_ANSWERS = 3


def parse_resolver(value: str, default_port: int = DEFAULT_PORT) -> tuple[IPAddress, int]:
    """`ip`, `ip:port`, `[v6]` or `[v6]:port` -> (ip, port); ValueError saying what is wrong."""
    host, port = value, str(default_port)
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
    protocol = options.protocol.lower()
    if protocol and protocol not in PROTOCOLS:
        violations.append(FieldViolation("dns.protocol", f"must be one of {', '.join(PROTOCOLS)}"))
    if options.trace and options.resolver:
        violations.append(FieldViolation("dns.resolver", "must be empty for a trace (it starts at the root servers)"))
    if options.trace and protocol == "tls":
        violations.append(FieldViolation("dns.protocol", "a trace asks authoritative servers: udp or tcp"))
    if options.tls_server_name and protocol != "tls":
        violations.append(FieldViolation("dns.tls_server_name", "is for the tls protocol only"))


def addresses(options: dns_pb2.DnsOptions) -> list[tuple[str, IPAddress]]:
    """The resolver, where the query goes (a malformed one is reported by `validate`)."""
    if not options.resolver:
        return []
    try:
        return [("dns.resolver", parse_resolver(options.resolver)[0])]
    except ValueError:
        return []


def summary(result: dns_pb2.DnsResult) -> str:
    shown = ", ".join(a.value for a in result.answers[:SHOWN_ANSWERS])
    if len(result.answers) > SHOWN_ANSWERS:
        shown += " ..."
    via = f"{len(result.trace)}-step trace, last {result.resolver}" if result.trace else result.resolver
    return (f"{result.rcode} {result.record_type} via {via} ({result.protocol or 'udp'}) "
            f"in {number(result.query_ms)} ms: {shown}")


def probe_metrics(f: Mapping[str, Any]) -> Iterator[ProbeSeries]:
    """blackbox_exporter's dns prober series (prober/dns.go)."""
    answered = bool(f["rcode"])
    yield "probe_dns_query_succeeded", (), 1 if answered else 0
    if answered:
        yield "probe_dns_answer_rrs", (), f["#answers"] or 0
        yield "probe_dns_authority_rrs", (), f["#authority"] or 0
    request = seconds(f["query_ms"])
    if request is not None:
        yield "probe_dns_duration_seconds", (("phase", "request"),), request


SPEC = CheckType(
    name="dns", order=4, options=dns_pb2.DnsOptions, result=dns_pb2.DnsResult,
    default_timeout_ms=5_000, max_timeout_ms=30_000, validate=validate, summary=summary, addresses=addresses,
    probe_fields=("rcode", "query_ms", "#answers", "#authority"), probe_metrics=probe_metrics,
)
