"""udp: send one datagram to host:port and wait for a reply; the port's state as nmap names it.

- "open": a reply came back (its bytes and the round-trip time are reported);
- "closed": ICMP port unreachable came back (ECONNREFUSED on the connected socket);
- "open|filtered": nothing came back before the timeout: a service that ignores
  this payload and a firewall that drops it look the same.

Only "open" is a success. "closed" fails with error_code "closed" and
"open|filtered" with "no_reply": a check asks whether something answers.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time

from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, budget, ms, resolve
from hostcheck.v1 import udp_pb2

REPLY_CAP = 2048


def _port(request: ProbeRequest) -> int:
    port = request.options.port or request.target.port
    if not port:
        raise ProbeError("bad_target", "udp needs a port (target host:port or options.port)")
    return port


def _payload(options) -> bytes:
    if options.payload_hex:
        try:
            return bytes.fromhex(options.payload_hex)
        except ValueError as exc:
            raise ProbeError("bad_options", f"payload_hex is not hex: {exc}") from exc
    return options.payload.encode()


def printable(data: bytes) -> str:
    """The bytes as text, with anything but printable ASCII shown as '.' (like hexdump -C)."""
    return "".join(chr(b) if 32 <= b < 127 else "." for b in data)


class _FirstAnswer(asyncio.DatagramProtocol):
    """Resolves `answer` with the first datagram or socket error."""

    def __init__(self) -> None:
        self.answer: asyncio.Future[tuple[float, bytes | OSError]] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr) -> None:
        if not self.answer.done():
            self.answer.set_result((time.perf_counter(), data))

    def error_received(self, exc: Exception) -> None:
        if not self.answer.done() and isinstance(exc, OSError):
            self.answer.set_result((time.perf_counter(), exc))


async def probe(request: ProbeRequest) -> ProbeResult:
    port = _port(request)
    payload = _payload(request.options)
    started = time.perf_counter()
    addr = (await resolve(request, port=port))[0]
    data = udp_pb2.UdpResult(address=str(addr), port=port, ip_version=addr.version, payload_size=len(payload),
                             dns_ms=ms(time.perf_counter() - started))
    loop = asyncio.get_running_loop()
    # A connected socket: the kernel reports ICMP port unreachable on it as ECONNREFUSED.
    sock = socket.socket(socket.AF_INET6 if addr.version == 6 else socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    try:
        sock.connect((str(addr), port))
    except OSError as exc:
        sock.close()
        raise ProbeError("unreachable", f"{addr} port {port}: {exc.strerror or exc}", data) from exc
    transport, protocol = await loop.create_datagram_endpoint(_FirstAnswer, sock=sock)
    try:
        sent = time.perf_counter()
        # On the socket itself: asyncio's transport.sendto() silently drops an empty datagram (Python 3.11).
        try:
            sock.send(payload)
        except OSError as exc:
            code = "closed" if isinstance(exc, ConnectionRefusedError) else "send_error"
            data.state = "closed" if code == "closed" else "error"
            return ProbeResult(False, data, f"{addr} port {port}: {exc.strerror or exc}", code)
        wait = started + budget(request) - sent
        try:
            async with asyncio.timeout(max(wait, 0.001)):
                received, answer = await protocol.answer
        except TimeoutError:
            data.state = "open|filtered"
            return ProbeResult(False, data, f"no reply from {addr} port {port} within {request.timeout:g} s",
                               "no_reply")
    finally:
        transport.close()
    data.rtt_ms = ms(received - sent)
    if isinstance(answer, ConnectionRefusedError):
        data.state = "closed"
        return ProbeResult(False, data, f"{addr} port {port}: ICMP port unreachable", "closed")
    if isinstance(answer, OSError):
        data.state = "unreachable"
        code = "unreachable" if answer.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH) else "error"
        return ProbeResult(False, data, f"{addr} port {port}: {answer.strerror or answer}", code)
    shown = answer[:REPLY_CAP]
    data.state = "open"
    data.reply_size = len(answer)
    data.reply_hex = shown.hex()
    data.reply_text = printable(shown)
    data.reply_truncated = len(answer) > REPLY_CAP
    return ProbeResult(True, data)
