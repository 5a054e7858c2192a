"""Single probes with a chosen TTL over ICMP, UDP or TCP, and who answered them: what the path probes
(hop by hop, round by round) are made of.

One raw ICMP socket (CAP_NET_RAW) per check reads the answers: echo replies, and the
time-exceeded and unreachable errors routers and the target send, each of which quotes
the start of the packet it is about, enough to tell which probe it answers:
- icmp: echo requests on that raw socket, matched by identifier and sequence;
- udp: a datagram from a socket of its own per probe, matched by its source port; the
  target answers with "port unreachable" (or, if the port is open, a datagram);
- tcp: a SYN from a socket of its own per probe (a non-blocking connect), matched by its
  source port; the target answers with SYN-ACK or a reset, which the socket itself sees.
Everything runs on the event loop (no thread), so many probes can be in flight at once,
and a probe's round trip is from its send to the moment its answer was read.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
import time
from dataclasses import dataclass, field

from hostcheck.agent.probers.base import ProbeError
from hostcheck.core.targets import IPAddress

PROTOCOLS = ("icmp", "udp", "tcp")
# Bytes after the UDP header of a udp probe (the classic 60-byte probe: 20 + 8 + 32).
UDP_PAYLOAD = bytes(32)

_ECHO_REQUEST = {4: 8, 6: 128}
_ECHO_REPLY = {4: 0, 6: 129}
_TIME_EXCEEDED = {4: 11, 6: 3}
_UNREACHABLE = {4: 3, 6: 1}
_PORT_UNREACHABLE = {4: 3, 6: 4}
_PROTO = {"icmp": {4: socket.IPPROTO_ICMP, 6: socket.IPPROTO_ICMPV6}, "udp": {4: socket.IPPROTO_UDP, 6: socket.IPPROTO_UDP},
          "tcp": {4: socket.IPPROTO_TCP, 6: socket.IPPROTO_TCP}}
UNREACHABLE_CODES = {
    4: {0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
        9: "network prohibited", 10: "host prohibited", 13: "communication prohibited"},
    6: {0: "no route", 1: "communication prohibited", 3: "address unreachable", 4: "port unreachable"},
}


@dataclass(frozen=True)
class Reply:
    """Who answered one probe, how, and after how long."""

    address: str
    # Seconds from the probe's send to its answer.
    rtt: float
    # The target answered (echo reply, SYN-ACK or reset, port unreachable from a udp probe's target).
    reached: bool = False
    # Why the answer was "unreachable", when it was (not a udp probe's port unreachable from the target).
    unreachable: str = ""


@dataclass
class _Probe:
    sent: float
    future: asyncio.Future[Reply]
    # What an answer quotes of it: echo sequence or source port.
    quote: int
    sock: socket.socket | None = None


@dataclass
class HopProber:
    """Sends probes to `addr` with a TTL each and resolves each probe's future with its Reply."""

    addr: IPAddress
    protocol: str
    port: int = 0
    _raw: socket.socket | None = None
    # Probes by id, and the id of each unanswered probe by what an answer quotes: the echo sequence (icmp)
    # or the source port (udp, tcp). A port can come back to a later probe once an earlier one is answered
    # (a refused connection's port is free again), so ids, not ports, name probes.
    _pending: dict[int, _Probe] = field(default_factory=dict)
    _by_quote: dict[int, int] = field(default_factory=dict)
    _ident: int = field(default_factory=lambda: int.from_bytes(os.urandom(2), "big"))
    _sequence: int = 0
    _next_id: int = 0

    @property
    def version(self) -> int:
        return self.addr.version

    def open(self) -> HopProber:
        family = socket.AF_INET6 if self.version == 6 else socket.AF_INET
        try:
            self._raw = socket.socket(family, socket.SOCK_RAW, _PROTO["icmp"][self.version])
        except PermissionError as exc:
            raise ProbeError("icmp_not_permitted",
                             f"{self.protocol} probes need a raw ICMP socket to read the answers: "
                             "give the agent CAP_NET_RAW") from exc
        self._raw.setblocking(False)
        asyncio.get_running_loop().add_reader(self._raw.fileno(), self._on_icmp)
        return self

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._raw is not None:
            loop.remove_reader(self._raw.fileno())
            self._raw.close()
            self._raw = None
        for key in list(self._pending):
            self.forget(key)

    def __enter__(self) -> HopProber:
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def send(self, ttl: int) -> tuple[int, asyncio.Future[Reply]]:
        """Sends one probe with `ttl`; (its key for `forget`, the future of its reply)."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        if self.protocol == "icmp":
            return self._send_echo(ttl, future)
        return self._send_from_socket(ttl, future)

    def forget(self, key: int) -> None:
        """Stops waiting for a probe (answered or given up on) and frees its socket."""
        probe = self._pending.pop(key, None)
        if probe is None:
            return
        if self._by_quote.get(probe.quote) == key:
            del self._by_quote[probe.quote]
        if probe.sock is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(probe.sock.fileno())
            loop.remove_writer(probe.sock.fileno())
            probe.sock.close()
        if not probe.future.done():
            probe.future.cancel()

    # Sending ----------------------------------------------------------------------------------

    def _set_ttl(self, sock: socket.socket, ttl: int) -> None:
        if self.version == 6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        else:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)

    def _send_echo(self, ttl: int, future: asyncio.Future[Reply]) -> tuple[int, asyncio.Future[Reply]]:
        assert self._raw is not None
        self._sequence = (self._sequence + 1) & 0xFFFF
        sequence = self._sequence
        payload = struct.pack("!d", time.time()) + bytes(48)
        header = struct.pack("!BBHHH", _ECHO_REQUEST[self.version], 0, 0, self._ident, sequence)
        if self.version == 4:
            header = header[:2] + struct.pack("!H", _checksum(header + payload)) + header[4:]
        # IPv6: the kernel fills in an ICMPv6 checksum (it covers the addresses, which it chooses).
        self._set_ttl(self._raw, ttl)
        key = self._add(_Probe(time.perf_counter(), future, sequence))
        try:
            self._raw.sendto(header + payload, (str(self.addr), 0))
        except OSError as exc:
            self.forget(key)
            raise ProbeError("send_error", f"echo request to {self.addr}: {exc.strerror or exc}") from exc
        return key, future

    def _add(self, probe: _Probe) -> int:
        self._next_id += 1
        self._pending[self._next_id] = probe
        self._by_quote[probe.quote] = self._next_id
        return self._next_id

    def _send_from_socket(self, ttl: int, future: asyncio.Future[Reply]) -> tuple[int, asyncio.Future[Reply]]:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if self.version == 6 else socket.AF_INET
        kind = socket.SOCK_DGRAM if self.protocol == "udp" else socket.SOCK_STREAM
        sock = socket.socket(family, kind)
        try:
            sock.setblocking(False)
            if self.protocol == "tcp":
                # A reset on close: a probe's connection leaves nothing in TIME_WAIT.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._set_ttl(sock, ttl)
            sent = time.perf_counter()
            if self.protocol == "udp":
                sock.sendto(UDP_PAYLOAD, (str(self.addr), self.port))
            else:
                err = sock.connect_ex((str(self.addr), self.port))
                if err not in (0, errno.EINPROGRESS, errno.ECONNREFUSED):
                    raise OSError(err, os.strerror(err))
            # The port the kernel chose when sending (unique among live sockets to this destination).
            key = self._add(_Probe(sent, future, sock.getsockname()[1], sock))
            if self.protocol == "udp":
                loop.add_reader(sock.fileno(), self._on_datagram, key)
            else:
                loop.add_writer(sock.fileno(), self._on_connected, key)
        except OSError as exc:
            sock.close()
            raise ProbeError("send_error", f"{self.protocol} probe to {self.addr} port {self.port}: "
                                           f"{exc.strerror or exc}") from exc
        return key, future

    # Receiving --------------------------------------------------------------------------------

    def _resolve(self, key: int, reply_address: str, received: float, **kind) -> None:
        probe = self._pending.get(key)
        if probe is None or probe.future.done():
            return
        probe.future.set_result(Reply(reply_address, received - probe.sent, **kind))
        if self._by_quote.get(probe.quote) == key:
            del self._by_quote[probe.quote]

    def _on_datagram(self, key: int) -> None:
        """A udp probe's target answered with a datagram: its port is open."""
        received = time.perf_counter()
        probe = self._pending.get(key)
        if probe is None or probe.sock is None:
            return
        try:
            _data, source = probe.sock.recvfrom(2048)
        except OSError:
            return  # an ICMP error queued on the socket: the raw socket has it too
        self._resolve(key, source[0].split("%", 1)[0], received, reached=True)

    def _on_connected(self, key: int) -> None:
        """A tcp probe's connect finished: SYN-ACK (connected) or reset (refused) from the target."""
        received = time.perf_counter()
        probe = self._pending.get(key)
        if probe is None or probe.sock is None:
            return
        asyncio.get_running_loop().remove_writer(probe.sock.fileno())
        err = probe.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err in (0, errno.ECONNREFUSED):
            self._resolve(key, str(self.addr), received, reached=True)

    def _on_icmp(self) -> None:
        assert self._raw is not None
        while True:
            try:
                packet, source = self._raw.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                continue
            received = time.perf_counter()
            sender = source[0].split("%", 1)[0]
            if self.version == 4:
                packet = packet[(packet[0] & 0x0F) * 4:] if packet else b""
            if len(packet) < 8:
                continue
            kind, code = packet[0], packet[1]
            if kind == _ECHO_REPLY[self.version]:
                if self.protocol == "icmp" and sender == str(self.addr):
                    ident, sequence = struct.unpack("!HH", packet[4:8])
                    key = self._by_quote.get(sequence)
                    if ident == self._ident and key is not None:
                        self._resolve(key, sender, received, reached=True)
                continue
            if kind not in (_TIME_EXCEEDED[self.version], _UNREACHABLE[self.version]):
                continue
            quote = self._quoted_key(packet[8:])
            key = self._by_quote.get(quote) if quote is not None else None
            if key is None:
                continue
            if kind == _TIME_EXCEEDED[self.version]:
                self._resolve(key, sender, received)
            elif (self.protocol == "udp" and code == _PORT_UNREACHABLE[self.version]
                  and sender == str(self.addr)):
                self._resolve(key, sender, received, reached=True)
            else:
                text = UNREACHABLE_CODES[self.version].get(code, f"unreachable (code {code})")
                self._resolve(key, sender, received, unreachable=text)

    def _quoted_key(self, quoted: bytes) -> int | None:
        """The key of our probe that an ICMP error quotes (its IP header and 8 bytes after), or None."""
        if self.version == 4:
            if len(quoted) < 20:
                return None
            header_len = (quoted[0] & 0x0F) * 4
            proto, destination = quoted[9], socket.inet_ntop(socket.AF_INET, quoted[16:20])
        else:
            if len(quoted) < 40:
                return None
            header_len = 40
            proto, destination = quoted[6], socket.inet_ntop(socket.AF_INET6, quoted[24:40])
        inner = quoted[header_len:header_len + 8]
        if destination != str(self.addr) or proto != _PROTO[self.protocol][self.version] or len(inner) < 8:
            return None
        if self.protocol == "icmp":
            ident, sequence = struct.unpack("!HH", inner[4:8])
            return sequence if ident == self._ident else None
        source_port, destination_port = struct.unpack("!HH", inner[:4])
        return source_port if destination_port == self.port else None


async def reverse_names(addresses: set[str], deadline: float, *, timeout: float = 1.0) -> dict[str, str | None]:
    """The reverse name of each address (None: none), all looked up at once, by `deadline` (time.monotonic)."""
    async def one(address: str) -> str | None:
        try:
            wait = max(min(timeout, deadline - time.monotonic()), 0.001)
            return (await asyncio.wait_for(asyncio.to_thread(socket.gethostbyaddr, address), wait))[0]
        except (OSError, TimeoutError):
            return None

    ordered = sorted(addresses)
    return dict(zip(ordered, await asyncio.gather(*(one(a) for a in ordered)), strict=True))


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


async def first_reply(future: asyncio.Future[Reply], deadline: float) -> Reply | None:
    """The probe's reply, or None when none came by `deadline` (time.perf_counter)."""
    if not future.done():
        await asyncio.wait({future}, timeout=max(deadline - time.perf_counter(), 0))
    if future.done() and not future.cancelled():
        return future.result()
    return None
