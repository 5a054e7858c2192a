"""What a check type is: the one spec that the API's validation, the agent, the CLI and telemetry read.

Each type is one module of this package, named after the type, that defines
`SPEC = CheckType(...)`: its options and result messages (declared in its own
proto file), timeouts, limits, validation, the CLI's one-line summary and the
durations it exports as metrics. The package finds the modules itself (see
__init__.py), so no list anywhere names the types.

Pure: protobuf messages and the core only, no gRPC and no I/O. The agent, the
API and the CLI all load these modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from hostcheck.core.checktypes._blackbox import ProbeSeries
from hostcheck.core.errors import FieldViolation
from hostcheck.core.targets import IPAddress, Target

# (the type's options message, the parsed target or None when it did not parse, violations to append to)
Validator = Callable[[Message, Target | None, list[FieldViolation]], None]
# The type's result message -> one line for the CLI.
Summarizer = Callable[[Message], str]
# A type's own blackbox_exporter series from the values its probe_fields name (checktypes/_blackbox.py).
ProbeMetrics = Callable[[Mapping[str, Any]], Iterable[ProbeSeries]]
# The type's options message -> addresses in it that the agent sends packets to besides the target
# (e.g. dns.resolver), as (field, address): the API's target guard judges each like an IP target.
Addresses = Callable[[Message], list[tuple[str, IPAddress]]]


@dataclass(frozen=True)
class ProbeHistogram:
    """A Prometheus histogram of probe durations (seconds) an agent exports; core.telemetry creates it."""

    name: str
    documentation: str
    # Label names; "check_type" is filled in with the probe's type, the others by the Duration.
    labelnames: tuple[str, ...]


@dataclass(frozen=True)
class Duration:
    """One `..._ms` field of a result, observed in seconds into a histogram when it was measured.

    A field that is unset (0 for a plain double, absent for an optional one) was
    not measured (e.g. the TLS phase of a request without TLS) and is not observed.
    """

    histogram: ProbeHistogram
    # Dotted path in the type's result message, e.g. "timings.tcp_ms".
    field: str
    # Values of the histogram's labels other than check_type, e.g. (("phase", "connect"),).
    labels: tuple[tuple[str, str], ...] = ()


# blackbox_exporter's name; the time to resolve the target's name before probing it.
DNS_LOOKUP = ProbeHistogram("probe_dns_lookup_time_seconds", "Time to resolve the target's name, by check type.",
                            ("check_type",))


def _no_rules(options: Message, target: Target | None, violations: list[FieldViolation]) -> None:
    """A type whose options need no checks beyond the generic ones."""


def _no_probe_metrics(fields: Mapping[str, Any]) -> Iterable[ProbeSeries]:
    return ()


def _no_addresses(options: Message) -> list[tuple[str, IPAddress]]:
    """A type whose options name no address to send packets to."""
    return []


@dataclass(frozen=True)
class CheckType:
    """One check type: everything about it that is not its prober or its UI module."""

    # As in CreateCheckRequest.checks and the field names of CheckOptions and ResultData.
    name: str
    # Position in lists (CHECK_TYPES, help texts); the field number in ResultData's oneof.
    order: int
    # The options message class, e.g. http_pb2.HttpOptions.
    options: type[Message]
    # The result message class, e.g. http_pb2.HttpResult.
    result: type[Message]
    # Per-task timeout when the request gives none, and the most a request may ask for.
    default_timeout_ms: int
    max_timeout_ms: int
    # The CLI's one line for a successful result.
    summary: Summarizer
    # The type's own option rules (the generic ones are in hostcheck.core.checks.validate_create).
    validate: Validator = _no_rules
    # The target must carry a port or the options must give one (options.port).
    needs_port: bool = False
    # Durations of a result the agent exports as metrics.
    durations: tuple[Duration, ...] = ()
    # Addresses in the options the agent sends packets to (guarded at the API like a target IP).
    addresses: Addresses = _no_addresses
    # For monitors' Prometheus scrape: what the type reads of a result's data, and the series
    # blackbox_exporter's prober of its kind would export from it (checktypes/_blackbox.py).
    probe_fields: tuple[str, ...] = ()
    probe_metrics: ProbeMetrics = _no_probe_metrics

    def __post_init__(self) -> None:
        for duration in self.durations:
            _check_number_field(self.result, duration.field, f"{self.name}: duration {duration.field!r}")
            wanted = set(duration.histogram.labelnames) - {"check_type"}
            given = {name for name, _ in duration.labels}
            if given != wanted:
                raise ValueError(f"{self.name}: {duration.histogram.name} needs labels {sorted(wanted)}, "
                                 f"{duration.field!r} gives {sorted(given)}")

    @property
    def has_port_option(self) -> bool:
        """Whether the options have a `port` (checked 1-65535 by the API; set by the CLI's --port)."""
        return "port" in self.options.DESCRIPTOR.fields_by_name


def _check_number_field(message_type: type[Message], path: str, where: str) -> None:
    """`path` (dotted) names a number field of `message_type`, through singular message fields."""
    descriptor = message_type.DESCRIPTOR
    *parents, name = path.split(".")
    for parent in parents:
        field_descriptor = descriptor.fields_by_name.get(parent)
        if field_descriptor is None or field_descriptor.message_type is None or field_descriptor.is_repeated:
            raise ValueError(f"{where}: {parent!r} is not a message field of {descriptor.full_name}")
        descriptor = field_descriptor.message_type
    field_descriptor = descriptor.fields_by_name.get(name)
    if field_descriptor is None or field_descriptor.message_type is not None or field_descriptor.is_repeated:
        raise ValueError(f"{where}: {name!r} is not a number field of {descriptor.full_name}")


def validate_port(field_name: str, port: int, violations: list[FieldViolation]) -> None:
    """A port given (non-zero) must be 1-65535."""
    if port and not 1 <= port <= 65535:
        violations.append(FieldViolation(field_name, f"port {port} is out of range 1-65535"))


def number(value: float | int) -> str:
    """A measurement as a person reads it: 200 rather than 200.0, 12.345 as is."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def optional(message: Message, field_name: str) -> str:
    """An optional field as text, "-" when it is unset."""
    return number(getattr(message, field_name)) if message.HasField(field_name) else "-"
