"""http: one request (redirects followed as a chain) and its status, headers, phase timings and TLS."""

from __future__ import annotations

import re

from hostcheck.core.checktypes.base import DNS_LOOKUP, CheckType, Duration, ProbeHistogram, number
from hostcheck.core.errors import FieldViolation
from hostcheck.core.targets import Target
from hostcheck.v1 import http_pb2

METHODS = ("GET", "HEAD", "POST", "OPTIONS")
SCHEMES = ("http", "https")
MAX_BODY = 64 * 1024

# blackbox_exporter's metric and names of the phases, from the result's `timings` fields.
PHASES = ProbeHistogram("probe_http_duration_seconds", "Duration of http probes by phase (resolve, connect, tls, "
                        "processing, transfer), last hop of a redirect chain.", ("phase",))
_PHASE_OF_TIMING = {"dns_ms": "resolve", "tcp_ms": "connect", "tls_ms": "tls", "first_byte_ms": "processing",
                    "download_ms": "transfer"}


def validate(options: http_pb2.HttpOptions, target: Target | None, violations: list[FieldViolation]) -> None:
    if options.method and options.method.upper() not in METHODS:
        violations.append(FieldViolation("http.method", f"must be one of {', '.join(METHODS)}"))
    if options.path and not options.path.startswith("/"):
        violations.append(FieldViolation("http.path", "must start with /"))
    if options.scheme and options.scheme not in SCHEMES:
        violations.append(FieldViolation("http.scheme", "must be http or https"))
    for code in options.expected_status:
        if not 100 <= code <= 599:
            violations.append(FieldViolation("http.expected_status", f"{code} is not an HTTP status (100-599)"))
    if options.body_regexp:
        try:
            re.compile(options.body_regexp)
        except re.error as exc:
            violations.append(FieldViolation("http.body_regexp", f"not a regular expression: {exc}"))
    if len(options.body) > MAX_BODY:
        violations.append(FieldViolation("http.body", f"must be at most {MAX_BODY // 1024} KiB"))


def summary(result: http_pb2.HttpResult) -> str:
    redirects = len(result.redirects)
    line = (f"{result.http_version} {result.status_code} from {result.address} in {number(result.total_ms)} ms "
            f"(first byte {number(result.timings.first_byte_ms)} ms)")
    if redirects:
        line += f", {redirects} redirect(s)"
    if result.HasField("tls"):
        line += f", {result.tls.version}"
        if result.tls.HasField("certificate"):
            line += f", cert {result.tls.certificate.days_left} days left"
    return line


SPEC = CheckType(
    name="http", order=1, options=http_pb2.HttpOptions, result=http_pb2.HttpResult,
    default_timeout_ms=10_000, max_timeout_ms=60_000, validate=validate, summary=summary,
    durations=(*(Duration(PHASES, f"timings.{timing}", (("phase", phase),))
                 for timing, phase in _PHASE_OF_TIMING.items()),
               Duration(DNS_LOOKUP, "timings.dns_ms")),
)
