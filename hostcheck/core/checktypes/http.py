"""http: one request (redirects followed as a chain) and its status, headers, phase timings and TLS."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from hostcheck.core.checktypes._blackbox import TLS_FIELDS, ProbeSeries, tls_series, value_of
from hostcheck.core.checktypes.base import DNS_LOOKUP, CheckType, Duration, ProbeHistogram, number
from hostcheck.core.errors import FieldViolation
from hostcheck.core.targets import Target
from hostcheck.v1 import http_pb2

METHODS = ("GET", "HEAD", "POST", "OPTIONS")
# As the result names them; HTTP/2.0 is blackbox_exporter's spelling of HTTP/2.
HTTP_VERSIONS = ("HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/2.0")
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
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
    # body_regexp and header_regexp[].regexp are compiled with RE2 by hostcheck.core.checks (every `regexp` option is).
    for i, rule in enumerate(options.header_regexp):
        if not _is_token(rule.header):
            violations.append(FieldViolation(f"http.header_regexp[{i}].header", "must be a header name"))
    for version in options.valid_http_versions:
        if version.strip().upper() not in HTTP_VERSIONS:
            violations.append(FieldViolation("http.valid_http_versions",
                                             f"{version!r} is not one of {', '.join(HTTP_VERSIONS[:3])}"))
    if options.fail_if_ssl and options.fail_if_not_ssl:
        violations.append(FieldViolation("http.fail_if_ssl", "fail_if_ssl and fail_if_not_ssl fail every check"))
    if len(options.body) > MAX_BODY:
        violations.append(FieldViolation("http.body", f"must be at most {MAX_BODY // 1024} KiB"))


def _is_token(name: str) -> bool:
    """An HTTP field name (RFC 9110 token)."""
    return bool(name) and all(c in _TOKEN for c in name)


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


def probe_metrics(f: Mapping[str, Any]) -> Iterator[ProbeSeries]:
    """blackbox_exporter's http prober series (prober/http.go)."""
    yield "probe_http_status_code", (), value_of(f["status_code"]) or 0
    length = value_of(f["headers.content-length"])
    yield "probe_http_content_length", (), -1 if length is None else length
    yield "probe_http_uncompressed_body_length", (), value_of(f["body_size"]) or 0
    yield "probe_http_redirects", (), f["#redirects"] or 0
    tls_version = f["tls.version"]
    yield "probe_http_ssl", (), 1 if tls_version else 0
    version = f["http_version"]
    if isinstance(version, str) and version.startswith("HTTP/"):
        version_number = value_of(version[5:])
        if version_number is not None:
            yield "probe_http_version", (), version_number
    if tls_version:
        yield from tls_series(tls_version, f)


SPEC = CheckType(
    name="http", order=1, options=http_pb2.HttpOptions, result=http_pb2.HttpResult,
    default_timeout_ms=10_000, max_timeout_ms=60_000, validate=validate, summary=summary,
    durations=(*(Duration(PHASES, f"timings.{timing}", (("phase", phase),))
                 for timing, phase in _PHASE_OF_TIMING.items()),
               Duration(DNS_LOOKUP, "timings.dns_ms")),
    probe_fields=("status_code", "body_size", "http_version", "headers.content-length", "tls.version", "#redirects",
                  *TLS_FIELDS),
    probe_metrics=probe_metrics,
)
