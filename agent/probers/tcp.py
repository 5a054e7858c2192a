"""tcp: connect time to host:port and the address used; refused and timed out told apart."""

from __future__ import annotations

import asyncio
import errno
import time

from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, ms, resolve
from hostcheck.v1 import tcp_pb2


def _port(request: ProbeRequest) -> int:
    port = request.options.port or request.target.port
    if not port:
        raise ProbeError("bad_target", "tcp needs a port (target host:port or options.port)")
    return port


async def probe(request: ProbeRequest) -> ProbeResult:
    port = _port(request)
    started = time.perf_counter()
    addrs = await resolve(request, port=port)
    resolved = time.perf_counter()
    addr = addrs[0]
    data = tcp_pb2.TcpResult(address=str(addr), port=port, ip_version=addr.version, dns_ms=ms(resolved - started))
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(str(addr), port), timeout=max(0.001, request.timeout - (resolved - started)))
    except TimeoutError as exc:
        raise ProbeError("timeout", f"connect to {addr} port {port} timed out", data) from exc
    except ConnectionRefusedError as exc:
        raise ProbeError("refused", f"connect to {addr} port {port}: connection refused", data) from exc
    except OSError as exc:
        code = {errno.ENETUNREACH: "unreachable", errno.EHOSTUNREACH: "unreachable"}.get(exc.errno or 0, "error")
        raise ProbeError(code, f"connect to {addr} port {port}: {exc.strerror or exc}", data) from exc
    connected = time.perf_counter()
    writer.transport.abort()
    data.connect_ms = ms(connected - resolved)
    return ProbeResult(success=True, data=data)
