"""udp: one datagram to host:port and the reply, if any; the port's state as nmap names it."""

from __future__ import annotations

from hostcheck.core.checktypes.base import DNS_LOOKUP, CheckType, Duration, optional
from hostcheck.core.errors import FieldViolation
from hostcheck.core.targets import Target
from hostcheck.v1 import udp_pb2

# The largest UDP payload in one 1500-byte Ethernet frame without fragmenting (1500 - 20 IP - 8 UDP).
MAX_PAYLOAD = 1472
# Characters of the reply the CLI's summary shows.
SHOWN_REPLY = 30


def validate(options: udp_pb2.UdpOptions, target: Target | None, violations: list[FieldViolation]) -> None:
    if options.payload_hex:
        try:
            if len(bytes.fromhex(options.payload_hex)) > MAX_PAYLOAD:
                violations.append(FieldViolation("udp.payload_hex", f"must be at most {MAX_PAYLOAD} bytes"))
        except ValueError:
            violations.append(FieldViolation("udp.payload_hex", "is not hex"))
    if len(options.payload.encode()) > MAX_PAYLOAD:
        violations.append(FieldViolation("udp.payload", f"must be at most {MAX_PAYLOAD} bytes"))


def summary(result: udp_pb2.UdpResult) -> str:
    return (f"{result.state}: {result.reply_size} bytes from {result.address} port {result.port} "
            f"in {optional(result, 'rtt_ms')} ms: {result.reply_text[:SHOWN_REPLY]!r}")


SPEC = CheckType(
    name="udp", order=5, options=udp_pb2.UdpOptions, result=udp_pb2.UdpResult,
    default_timeout_ms=5_000, max_timeout_ms=30_000, validate=validate, summary=summary, needs_port=True,
    durations=(Duration(DNS_LOOKUP, "dns_ms"),),
)
