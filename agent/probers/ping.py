"""ping: ICMP echo to one address; per-packet RTT and TTL, min/avg/max/stddev and loss.

`protocol = tcp` times TCP connections instead (SYN to SYN-ACK): see _tcp_ping.py.

icmplib opens the socket (an unprivileged datagram "ping socket" first, raw as a
fallback) and sends the requests. Replies are read here instead of by
`icmplib.async_ping` for two reasons: icmplib waits for each reply before
sending the next request (one lost packet would stall the series by its whole
timeout), and it reads with `recvfrom`, which drops the TTL we report.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hostcheck.agent.probers import _tcp_ping
from hostcheck.agent.probers.base import (
    ProbeError,
    ProbeRequest,
    ProbeResult,
    Progress,
    budget,
    no_progress,
    resolve,
)
from hostcheck.core.checktypes.ping import (
    DEFAULT_COUNT,
    DEFAULT_INTERVAL_MS,
    DEFAULT_SIZE,
    DEFAULT_TCP_PORT,
    MAX_COUNT,
    MAX_SIZE,
    PROTOCOLS,
)
from hostcheck.core.targets import IPAddress
from hostcheck.v1 import ping_pb2

if TYPE_CHECKING:  # icmplib is imported by the first icmp check (the idle agent does not carry it)
    from icmplib import ICMPv4Socket, ICMPv6Socket

# A reply later than this after its request counts as lost (ping's -W).
REPLY_TIMEOUT = 2.0
MIN_LINGER = 0.2

# Linux socket options Python does not name.
_IP_RECVTTL = 12
_ICMP_ECHO_REPLY = {4: 0, 6: 129}


@dataclass
class _Series:
    """What was sent and received, by sequence number."""

    sent: dict[int, float] = field(default_factory=dict)
    rtts: dict[int, float] = field(default_factory=dict)
    ttls: dict[int, int | None] = field(default_factory=dict)
    duplicates: int = 0
    all_received: asyncio.Event = field(default_factory=asyncio.Event)


def open_socket(addr: IPAddress) -> ICMPv4Socket | ICMPv6Socket:
    """An ICMP socket for `addr`'s family: datagram if permitted, else raw."""
    from icmplib import ICMPv4Socket, ICMPv6Socket, SocketPermissionError

    kind = ICMPv4Socket if addr.version == 4 else ICMPv6Socket
    try:
        return kind(privileged=False)
    except SocketPermissionError:
        pass
    try:
        return kind(privileged=True)
    except SocketPermissionError as exc:
        raise ProbeError(
            "icmp_not_permitted",
            "this agent may open neither ICMP datagram sockets (allow its group with "
            "sysctl net.ipv4.ping_group_range) nor raw sockets (CAP_NET_RAW)") from exc


def _options(request: ProbeRequest) -> tuple[int, float, int]:
    opts = request.options
    count = opts.count or DEFAULT_COUNT
    interval_ms = opts.interval_ms or DEFAULT_INTERVAL_MS
    size = opts.size or DEFAULT_SIZE
    if not 1 <= count <= MAX_COUNT:
        raise ProbeError("bad_options", f"count {count} is out of range 1-{MAX_COUNT}")
    if size > MAX_SIZE:
        raise ProbeError("bad_options", f"size {size} is out of range 0-{MAX_SIZE}")
    return count, interval_ms / 1000.0, size


def _parse(packet: bytes, ancillary, *, version: int, raw: bool, ident: int) -> tuple[int, int | None] | None:
    """(sequence, ttl) of an echo reply to us, or None for any other packet."""
    ttl = None
    if version == 4 and raw:
        header_len = (packet[0] & 0x0F) * 4 if packet else 0
        ttl = packet[8] if len(packet) > 8 else None
        packet = packet[header_len:]
    for level, kind, value in ancillary:
        if (level, kind) in ((socket.IPPROTO_IP, socket.IP_TTL), (socket.IPPROTO_IPV6, socket.IPV6_HOPLIMIT)):
            ttl = int.from_bytes(value[:4], sys.byteorder) if len(value) >= 4 else value[0]
    if len(packet) < 8:
        return None
    kind, _code, _checksum, reply_id, sequence = struct.unpack("!BBHHH", packet[:8])
    if kind != _ICMP_ECHO_REPLY[version] or reply_id != ident:
        return None
    return sequence, ttl


def _receiver(sock: socket.socket, series: _Series, *, version: int, raw: bool, ident: list[int],
              addr: IPAddress, count: int, progress: Progress = no_progress):
    def on_readable() -> None:
        while True:
            try:
                packet, ancillary, _flags, source = sock.recvmsg(4096, 256)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # An ICMP error queued on the socket (e.g. unreachable): the packet counts as lost.
                continue
            received = time.perf_counter()
            if raw and source[0].split("%", 1)[0] != str(addr):
                continue
            parsed = _parse(packet, ancillary, version=version, raw=raw, ident=ident[0])
            if parsed is None:
                continue
            sequence, ttl = parsed
            if sequence not in series.sent:
                continue
            if sequence in series.rtts:
                series.duplicates += 1
                continue
            series.rtts[sequence] = received - series.sent[sequence]
            series.ttls[sequence] = ttl
            progress(f"reply {len(series.rtts)} of {count} from {addr}: seq={sequence} "
                     f"time={series.rtts[sequence] * 1000.0:.3f} ms", done=len(series.rtts), total=count)
            if len(series.rtts) == count:
                series.all_received.set()

    return on_readable


async def probe(request: ProbeRequest) -> ProbeResult:
    count, interval, size = _options(request)
    protocol = (request.options.protocol or "icmp").lower()
    if protocol == "tcp":
        _tcp_ping.check_options(request)
        port = request.options.port or request.target.port or DEFAULT_TCP_PORT
        return await _tcp_ping.probe(request, count=count, interval=interval, port=port)
    if protocol != "icmp":
        raise ProbeError("bad_options", f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    from icmplib import ICMPRequest
    from icmplib.exceptions import ICMPLibError
    from icmplib.utils import unique_identifier

    started = time.perf_counter()
    deadline = started + budget(request)
    addr = (await resolve(request))[0]
    icmp = open_socket(addr)
    sock = icmp.sock
    raw = icmp.is_privileged
    ident = [unique_identifier()]
    series = _Series()
    loop = asyncio.get_running_loop()
    try:
        sock.setblocking(False)
        if addr.version == 4:
            sock.setsockopt(socket.IPPROTO_IP, _IP_RECVTTL, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
        loop.add_reader(sock.fileno(), _receiver(sock, series, version=addr.version, raw=raw, ident=ident,
                                                 addr=addr, count=count, progress=request.progress))
        try:
            last_sent = started
            for sequence in range(count):
                if sequence:
                    pause = started + sequence * interval - time.perf_counter()
                    if time.perf_counter() + max(pause, 0) >= deadline:
                        break
                    if pause > 0:
                        await asyncio.sleep(pause)
                echo = ICMPRequest(destination=str(addr), id=ident[0], sequence=sequence, payload_size=size)
                last_sent = time.perf_counter()
                series.sent[sequence] = last_sent
                try:
                    icmp.send(echo)
                except ICMPLibError as exc:
                    if not series.rtts and sequence == 0:
                        raise ProbeError("send_error", f"ping {addr}: {exc}", address=str(addr)) from exc
                # A datagram socket's identifier is its port, chosen by the kernel on the first send.
                ident[0] = echo.id
            # Like iputils ping: once replies come back, a late one is waited for twice the slowest RTT.
            linger = min(REPLY_TIMEOUT, max(2 * max(series.rtts.values()), MIN_LINGER)) if series.rtts else REPLY_TIMEOUT
            wait = min(deadline, last_sent + linger) - time.perf_counter()
            if wait > 0 and len(series.rtts) < len(series.sent):
                try:
                    async with asyncio.timeout(wait):
                        await series.all_received.wait()
                except TimeoutError:
                    pass
        finally:
            loop.remove_reader(sock.fileno())
    finally:
        icmp.close()
    return _result(addr, series, raw=raw, size=size)


def _result(addr: IPAddress, series: _Series, *, raw: bool, size: int) -> ProbeResult:
    import statistics  # with fractions and decimal ~0.5 MB of RSS: loaded by the first summary, after the probes

    rtts = [series.rtts[s] * 1000.0 for s in sorted(series.rtts)]
    sent, received = len(series.sent), len(rtts)
    ttls = [t for t in series.ttls.values() if t is not None]
    data = ping_pb2.PingResult(
        address=str(addr), ip_version=addr.version, size=size, socket="raw" if raw else "datagram", protocol="icmp",
        packets_sent=sent, packets_received=received, packet_loss=round(1 - received / sent, 4) if sent else 1.0,
        duplicates=series.duplicates, rtts_ms=[round(r, 3) for r in rtts])
    if rtts:
        data.rtt_min_ms = round(min(rtts), 3)
        data.rtt_avg_ms = round(statistics.fmean(rtts), 3)
        data.rtt_max_ms = round(max(rtts), 3)
        data.rtt_stddev_ms = round(statistics.pstdev(rtts), 3)
    if ttls:
        data.ttl = ttls[0]
    for seq in sorted(series.sent):
        packet = data.packets.add(seq=seq)
        if seq in series.rtts:
            packet.rtt_ms = round(series.rtts[seq] * 1000.0, 3)
        if series.ttls.get(seq) is not None:
            packet.ttl = series.ttls[seq]
    if not received:
        return ProbeResult(False, data, f"no reply from {addr} to {sent} echo request(s)", "no_reply")
    return ProbeResult(True, data)
