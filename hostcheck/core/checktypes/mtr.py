"""mtr: rounds of probes with growing TTL, as `mtr --report`; per hop loss, last/avg/best/worst, stddev, jitter."""

from __future__ import annotations

from hostcheck.core.checktypes._paths import validate_protocol
from hostcheck.core.checktypes.base import CheckType, number, optional
from hostcheck.core.errors import FieldViolation
from hostcheck.core.targets import Target
from hostcheck.v1 import mtr_pb2

DEFAULT_COUNT = 10
# Rounds per check: mtr --report's default is 10; 30 at the default interval take 7.5 s plus the last wait.
MAX_COUNT = 30
DEFAULT_INTERVAL_MS = 250
MIN_INTERVAL_MS = 100
MAX_INTERVAL_MS = 5000
DEFAULT_MAX_HOPS = 30
MAX_HOPS = 64
# Hops the CLI's summary shows.
SHOWN_HOPS = 8


def validate(options: mtr_pb2.MtrOptions, target: Target | None, violations: list[FieldViolation]) -> None:
    if options.count and not 1 <= options.count <= MAX_COUNT:
        violations.append(FieldViolation("mtr.count", f"must be 1-{MAX_COUNT}"))
    if options.interval_ms and not MIN_INTERVAL_MS <= options.interval_ms <= MAX_INTERVAL_MS:
        violations.append(FieldViolation("mtr.interval_ms", f"must be {MIN_INTERVAL_MS}-{MAX_INTERVAL_MS}"))
    if options.max_hops and not 1 <= options.max_hops <= MAX_HOPS:
        violations.append(FieldViolation("mtr.max_hops", f"must be 1-{MAX_HOPS}"))
    validate_protocol("mtr", options.protocol, violations)


def summary(result: mtr_pb2.MtrResult) -> str:
    hops = [f"{h.name or h.address or '???'} {number(h.loss_percent)}% {optional(h, 'avg_ms')} ms"
            for h in result.hops[:SHOWN_HOPS]]
    more = " ..." if len(result.hops) > SHOWN_HOPS else ""
    reached = "reached" if result.destination_reached else "not reached"
    return f"{result.address} {reached} in {len(result.hops)} hop(s), {result.count} rounds: {' > '.join(hops)}{more}"


SPEC = CheckType(
    name="mtr", order=8, options=mtr_pb2.MtrOptions, result=mtr_pb2.MtrResult,
    # 10 rounds at 250 ms and a last wait of 2 s: under 5 s; 30 rounds at 5 s need the maximum.
    default_timeout_ms=30_000, max_timeout_ms=180_000, validate=validate, summary=summary,
)
