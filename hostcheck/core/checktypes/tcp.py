"""tcp: connect to host:port; the connect time and the address used."""

from __future__ import annotations

from hostcheck.core.checktypes.base import DNS_LOOKUP, CheckType, Duration, number
from hostcheck.v1 import tcp_pb2


def summary(result: tcp_pb2.TcpResult) -> str:
    return f"connected to {result.address} port {result.port} in {number(result.connect_ms)} ms"


SPEC = CheckType(
    name="tcp", order=2, options=tcp_pb2.TcpOptions, result=tcp_pb2.TcpResult,
    default_timeout_ms=5_000, max_timeout_ms=30_000, summary=summary, needs_port=True,
    durations=(Duration(DNS_LOOKUP, "dns_ms"),),
)
