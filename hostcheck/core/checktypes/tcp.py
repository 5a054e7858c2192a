"""tcp: connect to host:port; the connect time and the address used; optionally STARTTLS, send and expect."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hostcheck.core.checktypes._blackbox import TLS_FIELDS, ProbeSeries, tls_series
from hostcheck.core.checktypes.base import DNS_LOOKUP, CheckType, Duration, number
from hostcheck.core.errors import FieldViolation, InvalidArgument
from hostcheck.core.targets import Target
from hostcheck.v1 import tcp_pb2

STARTTLS = ("smtp", "imap", "pop3", "ftp")


def validate(options: tcp_pb2.TcpOptions, target: Target | None, violations: list[FieldViolation]) -> None:
    if options.starttls and options.starttls.lower() not in STARTTLS:
        violations.append(FieldViolation("tcp.starttls", f"must be one of {', '.join(STARTTLS)}"))
    if options.insecure_tls and not options.starttls:
        violations.append(FieldViolation("tcp.insecure_tls", "is for starttls only"))
    if options.expect:
        # Not named *_regexp (blackbox's name), so compiled here rather than by hostcheck.core.checks.
        from hostcheck.core.regex import compile_pattern  # not at import: an agent loads this spec, RE2 ~1 MB

        try:
            compile_pattern("tcp.expect", options.expect)
        except InvalidArgument as exc:
            violations.extend(exc.violations)


def summary(result: tcp_pb2.TcpResult) -> str:
    line = f"connected to {result.address} port {result.port} in {number(result.connect_ms)} ms"
    if result.HasField("tls"):
        line += f", STARTTLS {result.tls.version} in {number(result.tls_ms)} ms"
    if result.response_ms:
        line += f", response in {number(result.response_ms)} ms"
    return line


def probe_metrics(f: Mapping[str, Any]) -> Iterator[ProbeSeries]:
    """blackbox_exporter's tcp prober series (prober/tcp.go): the TLS ones when it spoke TLS."""
    if f["tls.version"]:
        yield from tls_series(f["tls.version"], f)


SPEC = CheckType(
    name="tcp", order=2, options=tcp_pb2.TcpOptions, result=tcp_pb2.TcpResult,
    default_timeout_ms=5_000, max_timeout_ms=30_000, validate=validate, summary=summary, needs_port=True,
    durations=(Duration(DNS_LOOKUP, "dns_ms"),),
    probe_fields=("tls.version", *TLS_FIELDS), probe_metrics=probe_metrics,
)
