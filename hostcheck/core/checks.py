"""Check types, their option rules, and validation of a create request.

Pure domain code: no gRPC, no storage. Every violation names the field (as in
the JSON/proto request) and the reason; all are reported at once.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass

from hostcheck.core.errors import FieldViolation, InvalidArgument
from hostcheck.core.targets import Target, TargetError, TargetGuard, parse_target
from hostcheck.v1 import checks_pb2, scheduler_pb2


@dataclass(frozen=True)
class CheckTypeSpec:
    name: str
    default_timeout_ms: int
    max_timeout_ms: int
    # The target must carry or be given a port (tcp, udp).
    needs_port: bool = False


CHECK_TYPES: dict[str, CheckTypeSpec] = {spec.name: spec for spec in (
    CheckTypeSpec("http", 10_000, 60_000),
    CheckTypeSpec("tcp", 5_000, 30_000, needs_port=True),
    CheckTypeSpec("ping", 10_000, 60_000),
    CheckTypeSpec("dns", 5_000, 30_000),
    CheckTypeSpec("udp", 5_000, 30_000, needs_port=True),
    CheckTypeSpec("traceroute", 60_000, 120_000),
)}

HTTP_METHODS = ("GET", "HEAD", "POST", "OPTIONS")
DNS_RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "NS", "TXT", "SOA", "PTR", "SRV", "CAA")
MAX_AGENTS = 1000
DEFAULT_AGENTS = 10
MAX_LABEL_LEN = 255


@dataclass(frozen=True)
class ValidCheck:
    """A create request that passed validation, normalised."""

    request: scheduler_pb2.CreateCheckRequest
    target: Target
    check_types: tuple[str, ...]

    def timeout_ms(self, check_type: str) -> int:
        return self.request.timeout_ms or CHECK_TYPES[check_type].default_timeout_ms


def _validate_port(field: str, port: int, out: list[FieldViolation]) -> None:
    if port and not 1 <= port <= 65535:
        out.append(FieldViolation(field, f"port {port} is out of range 1-65535"))


def _validate_resolver(value: str, out: list[FieldViolation]) -> None:
    if not value:
        return
    host, port = value, None
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        out.append(FieldViolation("dns.resolver", f"{value!r} is not ip or ip:port"))
        return
    if port is not None and (not port.isdigit() or not 1 <= int(port) <= 65535):
        out.append(FieldViolation("dns.resolver", f"port {port!r} is out of range 1-65535"))


def validate_create(request: scheduler_pb2.CreateCheckRequest, guard: TargetGuard) -> ValidCheck:
    """Validates a create request; raises InvalidArgument listing every bad field."""
    bad: list[FieldViolation] = []
    target: Target | None = None
    try:
        target = parse_target(request.target)
    except TargetError as exc:
        bad.append(FieldViolation("target", str(exc)))
    if target is not None and target.ip is not None:
        reason = guard.refusal(target.ip)
        if reason:
            bad.append(FieldViolation("target", reason))

    types: list[str] = []
    if not request.checks:
        bad.append(FieldViolation("checks", f"at least one check type is required: {', '.join(CHECK_TYPES)}"))
    for i, name in enumerate(request.checks):
        normal = name.strip().lower()
        if normal not in CHECK_TYPES:
            bad.append(FieldViolation(f"checks[{i}]", f"unknown check type {name[:40]!r}; known: {', '.join(CHECK_TYPES)}"))
        elif normal in types:
            bad.append(FieldViolation(f"checks[{i}]", f"check type {normal!r} given twice"))
        else:
            types.append(normal)

    for name in CHECK_TYPES:
        if request.HasField(name) and name not in types:
            bad.append(FieldViolation(name, f"options for {name!r} given but {name!r} is not in checks"))

    if request.timeout_ms:
        for name in types:
            spec = CHECK_TYPES[name]
            if not 100 <= request.timeout_ms <= spec.max_timeout_ms:
                bad.append(FieldViolation("timeout_ms", f"must be 100-{spec.max_timeout_ms} ms for {name}"))
    if request.ip_version not in (0, 4, 6):
        bad.append(FieldViolation("ip_version", "must be 4, 6 or 0 (any)"))
    elif target is not None and target.ip is not None and request.ip_version not in (0, target.ip.version):
        bad.append(FieldViolation("ip_version", f"target is an IPv{target.ip.version} address"))

    _validate_options(request, types, target, bad)
    _validate_selector(request.agents, bad)
    if bad:
        raise InvalidArgument(bad)
    assert target is not None
    normal = scheduler_pb2.CreateCheckRequest()
    normal.CopyFrom(request)
    normal.target = request.target.strip()
    del normal.checks[:]
    normal.checks.extend(types)
    return ValidCheck(request=normal, target=target, check_types=tuple(types))


def _validate_options(request, types: list[str], target: Target | None, bad: list[FieldViolation]) -> None:
    target_port = target.port if target else None
    if "http" in types:
        http = request.http
        if http.method and http.method.upper() not in HTTP_METHODS:
            bad.append(FieldViolation("http.method", f"must be one of {', '.join(HTTP_METHODS)}"))
        if http.path and not http.path.startswith("/"):
            bad.append(FieldViolation("http.path", "must start with /"))
        if http.scheme and http.scheme not in ("http", "https"):
            bad.append(FieldViolation("http.scheme", "must be http or https"))
        _validate_port("http.port", http.port, bad)
        for code in http.expected_status:
            if not 100 <= code <= 599:
                bad.append(FieldViolation("http.expected_status", f"{code} is not an HTTP status (100-599)"))
        if http.body_regexp:
            try:
                re.compile(http.body_regexp)
            except re.error as exc:
                bad.append(FieldViolation("http.body_regexp", f"not a regular expression: {exc}"))
        if len(http.body) > 64 * 1024:
            bad.append(FieldViolation("http.body", "must be at most 64 KiB"))
    for name in ("tcp", "udp"):
        if name in types:
            opts = getattr(request, name)
            _validate_port(f"{name}.port", opts.port, bad)
            if not opts.port and not target_port and target is not None:
                bad.append(FieldViolation(f"{name}.port", f"{name} needs a port: target host:port or {name}.port"))
    if "udp" in types and request.udp.payload_hex:
        try:
            payload = bytes.fromhex(request.udp.payload_hex)
            if len(payload) > 1472:
                bad.append(FieldViolation("udp.payload_hex", "must be at most 1472 bytes"))
        except ValueError:
            bad.append(FieldViolation("udp.payload_hex", "is not hex"))
    if "udp" in types and len(request.udp.payload.encode()) > 1472:
        bad.append(FieldViolation("udp.payload", "must be at most 1472 bytes"))
    if "ping" in types:
        ping = request.ping
        if ping.count and not 1 <= ping.count <= 16:
            bad.append(FieldViolation("ping.count", "must be 1-16"))
        if ping.interval_ms and not 100 <= ping.interval_ms <= 5000:
            bad.append(FieldViolation("ping.interval_ms", "must be 100-5000"))
        if ping.size > 1472:
            bad.append(FieldViolation("ping.size", "must be 0-1472"))
    if "dns" in types:
        dns = request.dns
        if dns.record_type and dns.record_type.upper() not in DNS_RECORD_TYPES:
            bad.append(FieldViolation("dns.record_type", f"must be one of {', '.join(DNS_RECORD_TYPES)}"))
        _validate_resolver(dns.resolver, bad)
    if "traceroute" in types:
        tr = request.traceroute
        if tr.max_hops and not 1 <= tr.max_hops <= 64:
            bad.append(FieldViolation("traceroute.max_hops", "must be 1-64"))
        if tr.probes_per_hop and not 1 <= tr.probes_per_hop <= 5:
            bad.append(FieldViolation("traceroute.probes_per_hop", "must be 1-5"))


def _validate_selector(sel: checks_pb2.AgentSelector, bad: list[FieldViolation]) -> None:
    if sel.limit and not 1 <= sel.limit <= MAX_AGENTS:
        bad.append(FieldViolation("agents.limit", f"must be 1-{MAX_AGENTS}"))
    for i, agent_id in enumerate(sel.agent_ids):
        if not is_uuid(agent_id):
            bad.append(FieldViolation(f"agents.agent_ids[{i}]", "is not a UUID"))
    for field in ("regions", "countries", "cities"):
        for i, value in enumerate(getattr(sel, field)):
            if not value or len(value) > MAX_LABEL_LEN:
                bad.append(FieldViolation(f"agents.{field}[{i}]", f"must be 1-{MAX_LABEL_LEN} characters"))


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return False
    return True


def require_uuid(field: str, value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise InvalidArgument(field=field, reason=f"{value[:64]!r} is not a UUID") from None


def task_options(request: scheduler_pb2.CreateCheckRequest, check_type: str) -> checks_pb2.CheckOptions:
    """The options a task of `check_type` carries: only its own type's."""
    options = checks_pb2.CheckOptions()
    if request.HasField(check_type):
        getattr(options, check_type).CopyFrom(getattr(request, check_type))
    else:
        getattr(options, check_type).SetInParent()
    return options
