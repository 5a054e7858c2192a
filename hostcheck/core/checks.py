"""Validation of a create request, and the options each task carries.

Pure domain code: no gRPC, no storage. Every violation names the field (as in
the JSON/proto request) and the reason; all are reported at once. The rules of
each check type are in its spec (hostcheck.core.checktypes); this module applies
them and the rules every type shares.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from hostcheck.core import limits
from hostcheck.core.checktypes import CHECK_TYPES, CheckType
from hostcheck.core.checktypes.base import validate_port
from hostcheck.core.errors import FieldViolation, InvalidArgument
from hostcheck.core.regex import compile_pattern
from hostcheck.core.selectors import planned_agents, validate_selector
from hostcheck.core.targets import Target, TargetError, TargetGuard, parse_target
from hostcheck.v1 import checks_pb2, scheduler_pb2

# The limits of every field are in hostcheck.core.limits (one table).
MAX_AGENTS = limits.MAX_AGENTS
MAX_LABEL_LEN = limits.MAX_STRING


@dataclass(frozen=True)
class ValidCheck:
    """A create request that passed validation, normalised."""

    request: scheduler_pb2.CreateCheckRequest
    target: Target
    check_types: tuple[str, ...]

    def timeout_ms(self, check_type: str) -> int:
        return self.request.timeout_ms or CHECK_TYPES[check_type].default_timeout_ms


def validate_create(request: scheduler_pb2.CreateCheckRequest, guard: TargetGuard) -> ValidCheck:
    """Validates a create request; raises InvalidArgument listing every bad field."""
    bad: list[FieldViolation] = []
    # Sizes first: a field over its limit gets one violation and no field-by-field rules (a
    # type's own rule on the same field, e.g. http.body's, is kept instead: see the end).
    sizes: list[FieldViolation] = []
    over = limits.check_sizes(request, sizes)
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
    for i, name in enumerate(request.checks if "checks" not in over else ()):
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

    _validate_options(request, types, target, guard, over, bad)
    _validate_selector(request.agents, over, bad)
    _validate_fan_out(request.agents, types, bad)
    if sizes or bad:
        named = {v.field for v in bad}
        raise InvalidArgument([v for v in sizes if v.field not in named] + bad)
    assert target is not None
    normal = scheduler_pb2.CreateCheckRequest()
    normal.CopyFrom(request)
    normal.target = request.target.strip()
    del normal.checks[:]
    normal.checks.extend(types)
    return ValidCheck(request=normal, target=target, check_types=tuple(types))


def _validate_options(request: scheduler_pb2.CreateCheckRequest, types: list[str], target: Target | None,
                      guard: TargetGuard, over: set[str], bad: list[FieldViolation]) -> None:
    """Each requested type's options, in the types' order: the rules all share, then the type's own."""
    for name, spec in CHECK_TYPES.items():
        if name in types:
            options = getattr(request, name)
            _validate_shared(spec, options, target, bad)
            _compile_regexps(options, name, over, bad)
            spec.validate(options, target, bad)
            for field, ip in spec.addresses(options):
                reason = guard.refusal(ip)
                if reason:
                    bad.append(FieldViolation(field, reason))


def _compile_regexps(message, path: str, over: set[str], bad: list[FieldViolation], name: str = "") -> None:
    """Every regular expression option (`regexp` or `*_regexp`, at any depth) compiles with RE2 within its limits."""
    name = name or path
    for field, value in message.ListFields():
        field_path, field_name = f"{path}.{field.name}", f"{name}.{field.name}"
        if field_path in over:
            continue
        if field.message_type is not None and not field.message_type.GetOptions().map_entry:
            items = value if field.is_repeated else [value]
            for i, item in enumerate(items):
                _compile_regexps(item, field_path, over, bad, f"{field_name}[{i}]" if field.is_repeated else field_name)
        elif field.type == field.TYPE_STRING and not field.is_repeated and limits.is_regexp(field.name):
            try:
                compile_pattern(field_name, value)
            except InvalidArgument as exc:
                bad.extend(exc.violations)


def _validate_shared(spec: CheckType, options, target: Target | None, bad: list[FieldViolation]) -> None:
    name = spec.name
    if spec.has_port_option:
        validate_port(f"{name}.port", options.port, bad)
    if spec.needs_port and target is not None and not target.port and not options.port:
        bad.append(FieldViolation(f"{name}.port", f"{name} needs a port: target host:port or {name}.port"))


def _validate_selector(sel: checks_pb2.AgentSelector, over: set[str], bad: list[FieldViolation]) -> None:
    validate_selector(sel, over, bad)


def _validate_fan_out(sel: checks_pb2.AgentSelector, types: list[str], bad: list[FieldViolation]) -> None:
    """Agents x check types within MAX_TASKS_PER_CHECK: that bounds one check's size (GET, watch)."""
    if (not types or sel.limit > MAX_AGENTS or len(sel.agent_ids) > MAX_AGENTS
            or sum(loc.limit for loc in sel.locations) > MAX_AGENTS):
        return  # reported by validate_selector
    agents = planned_agents(sel)
    if agents * len(types) > limits.MAX_TASKS_PER_CHECK:
        field = "agents.agent_ids" if sel.agent_ids else "agents.locations" if sel.locations else "agents.limit"
        bad.append(FieldViolation(field, f"{agents} agents x {len(types)} check types is over "
                                         f"{limits.MAX_TASKS_PER_CHECK} tasks per check; ask for fewer agents"))


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
