"""tls: a TLS handshake with host:port (SNI, optionally after STARTTLS); protocol, cipher, ALPN, the chain."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hostcheck.core.checktypes._blackbox import TLS_FIELDS, ProbeSeries, tls_series
from hostcheck.core.checktypes.base import DNS_LOOKUP, CheckType, Duration, ProbeHistogram, number
from hostcheck.core.errors import FieldViolation
from hostcheck.core.targets import Target, parse_target
from hostcheck.v1 import tls_pb2

DEFAULT_PORT = 443
DEFAULT_ALPN = ("h2", "http/1.1")
STARTTLS = ("smtp", "imap", "pop3", "ftp")
# ALPN protocol ids are 1-255 bytes (RFC 7301); a handful is plenty for a check.
MAX_ALPN = 8
# A certificate valid for longer than ~27 years is unheard of; a larger threshold is a typo.
MAX_MIN_DAYS_LEFT = 10_000

PHASES = ProbeHistogram("probe_tls_duration_seconds", "Duration of tls probes by phase (connect, starttls, "
                        "handshake).", ("phase",))


def validate(options: tls_pb2.TlsOptions, target: Target | None, violations: list[FieldViolation]) -> None:
    if options.server_name:
        try:
            name = parse_target(options.server_name)
        except ValueError as exc:  # TargetError, or what urlsplit raises for a malformed URL
            violations.append(FieldViolation("tls.server_name", f"not a host name: {exc}"))
        else:
            if name.port or name.scheme or name.path:
                violations.append(FieldViolation("tls.server_name", "must be a bare host name"))
    if len(options.alpn) > MAX_ALPN:
        violations.append(FieldViolation("tls.alpn", f"at most {MAX_ALPN} protocols"))
    for protocol in options.alpn:
        if not 1 <= len(protocol.encode()) <= 255 or not protocol.isascii() or not protocol.isprintable():
            violations.append(FieldViolation("tls.alpn", f"{protocol!r} is not an ALPN protocol id (1-255 "
                                                         "printable ASCII characters)"))
    if options.starttls and options.starttls.lower() not in STARTTLS:
        violations.append(FieldViolation("tls.starttls", f"must be one of {', '.join(STARTTLS)}"))
    if options.min_days_left > MAX_MIN_DAYS_LEFT:
        violations.append(FieldViolation("tls.min_days_left", f"must be at most {MAX_MIN_DAYS_LEFT}"))


def summary(result: tls_pb2.TlsResult) -> str:
    line = f"{result.version} {result.cipher} with {result.address} port {result.port} " \
           f"in {number(result.handshake_ms)} ms"
    if result.alpn:
        line += f", ALPN {result.alpn}"
    if result.chain:
        leaf = result.chain[0]
        line += f", {leaf.subject or leaf.sha256[:16]}, {result.days_left} days left"
    line += ", verified" if result.verified else f", NOT verified ({result.verify_error})"
    return line


def probe_metrics(f: Mapping[str, Any]) -> Iterator[ProbeSeries]:
    """blackbox_exporter's TLS series (prober/tls.go) of the session."""
    yield from tls_series(f["version"], f)


SPEC = CheckType(
    name="tls", order=7, options=tls_pb2.TlsOptions, result=tls_pb2.TlsResult,
    default_timeout_ms=10_000, max_timeout_ms=60_000, validate=validate, summary=summary,
    durations=(Duration(PHASES, "connect_ms", (("phase", "connect"),)),
               Duration(PHASES, "starttls_ms", (("phase", "starttls"),)),
               Duration(PHASES, "handshake_ms", (("phase", "handshake"),)),
               Duration(DNS_LOOKUP, "dns_ms")),
    probe_fields=("version", *TLS_FIELDS), probe_metrics=probe_metrics,
)
