"""traceroute: ICMP echo, UDP or TCP SYN probes with growing TTL; per hop the address, RTTs, loss and the name.

udp and tcp probes (`protocol`, with `port`) go through _hops.py on the event loop; what
follows is about icmp, the default.

icmplib's sockets do the sending and parsing; the hop loop is ours because
`icmplib.traceroute` leaves out silent hops, waits for each probe in turn (a
silent hop costs probes x timeout) and cannot be stopped at a deadline. Here a
hop's probes go out together, a silent hop costs one wait, and the trace stops
in time to report what it has (`complete: false`). Tracing needs a raw socket
(CAP_NET_RAW) and is synchronous, so it runs in a thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hostcheck.agent.probers import _hops
from hostcheck.agent.probers.base import (
    ProbeError,
    ProbeRequest,
    ProbeResult,
    Progress,
    budget,
    no_progress,
    resolve,
)
from hostcheck.core.checktypes._paths import default_port
from hostcheck.core.checktypes.traceroute import DEFAULT_MAX_HOPS, DEFAULT_PROBES, MAX_HOPS, MAX_PROBES
from hostcheck.core.targets import IPAddress
from hostcheck.v1 import traceroute_pb2

if TYPE_CHECKING:  # icmplib is imported by the first traceroute (the idle agent does not carry it)
    from icmplib import ICMPv4Socket, ICMPv6Socket

# How long one hop's probes are waited for, at most and at least.
MAX_HOP_WAIT = 2.0
MIN_HOP_WAIT = 0.2
NAME_TIMEOUT = 1.0

# ICMP types by IP version.
_ECHO_REPLY = {4: 0, 6: 129}
_UNREACHABLE = {4: 3, 6: 1}
_UNREACHABLE_CODES = {
    4: {0: "network unreachable", 1: "host unreachable", 2: "protocol unreachable", 3: "port unreachable",
        9: "network prohibited", 10: "host prohibited", 13: "communication prohibited"},
    6: {0: "no route", 1: "communication prohibited", 3: "address unreachable", 4: "port unreachable"},
}


@dataclass
class _Hop:
    ttl: int
    rtts: list[float] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    unreachable: str | None = None
    reached: bool = False


@dataclass
class _Trace:
    hops: list[_Hop] = field(default_factory=list)
    reached: bool = False
    complete: bool = True


def _options(request: ProbeRequest) -> tuple[int, int]:
    opts = request.options
    max_hops = opts.max_hops or DEFAULT_MAX_HOPS
    probes = opts.probes_per_hop or DEFAULT_PROBES
    if not 1 <= max_hops <= MAX_HOPS:
        raise ProbeError("bad_options", f"max_hops {max_hops} is out of range 1-{MAX_HOPS}")
    if not 1 <= probes <= MAX_PROBES:
        raise ProbeError("bad_options", f"probes_per_hop {probes} is out of range 1-{MAX_PROBES}")
    return max_hops, probes


def _open(addr: IPAddress) -> ICMPv4Socket | ICMPv6Socket:
    from icmplib import ICMPv4Socket, ICMPv6Socket, SocketPermissionError

    kind = ICMPv4Socket if addr.version == 4 else ICMPv6Socket
    try:
        return kind(privileged=True)
    except SocketPermissionError as exc:
        raise ProbeError("icmp_not_permitted",
                         "traceroute needs a raw ICMP socket: give the agent CAP_NET_RAW") from exc


def _trace(addr: IPAddress, *, max_hops: int, probes: int, hop_wait: float, deadline: float,
           stop: threading.Event, progress: Progress = no_progress) -> _Trace:
    """The blocking hop loop; returns by `deadline` (time.monotonic) or when `stop` is set."""
    from icmplib import ICMPRequest
    from icmplib.exceptions import ICMPLibError, TimeoutExceeded
    from icmplib.utils import unique_identifier

    version = addr.version
    ident = unique_identifier()
    trace = _Trace()
    with _open(addr) as sock:
        for ttl in range(1, max_hops + 1):
            if stop.is_set() or time.monotonic() + min(hop_wait, MIN_HOP_WAIT) > deadline:
                trace.complete = False
                break
            hop = _Hop(ttl)
            trace.hops.append(hop)
            pending: dict[int, ICMPRequest] = {}
            for i in range(probes):
                echo = ICMPRequest(destination=str(addr), id=ident, sequence=(ttl * MAX_PROBES + i) & 0xFFFF,
                                   ttl=ttl)
                try:
                    sock.send(echo)
                except ICMPLibError as exc:
                    raise ProbeError("send_error", f"traceroute to {addr}: {exc}") from exc
                pending[echo.sequence] = echo
            hop_deadline = min(time.monotonic() + hop_wait, deadline)
            while pending and not stop.is_set():
                wait = hop_deadline - time.monotonic()
                if wait <= 0:
                    break
                try:
                    reply = sock.receive(None, min(wait, 0.25))
                except TimeoutExceeded:
                    continue
                echo = pending.pop(reply.sequence, None) if reply.id == ident else None
                if echo is None:
                    continue
                hop.rtts.append((reply.time - echo.time) * 1000.0)
                hop.addresses.append(reply.source)
                if reply.type == _ECHO_REPLY[version]:
                    hop.reached = True
                elif reply.type == _UNREACHABLE[version]:
                    hop.unreachable = _UNREACHABLE_CODES[version].get(reply.code, f"unreachable (code {reply.code})")
            progress(f"hop {ttl}: {hop.addresses[0] if hop.addresses else '*'}", done=ttl, total=max_hops,
                     data=traceroute_pb2.TracerouteResult(address=str(addr), ip_version=version, max_hops=max_hops,
                                                          probes_per_hop=probes, hop_count=len(trace.hops),
                                                          hops=[_hop_data(h, probes, None) for h in trace.hops]))
            if hop.reached or hop.unreachable:
                trace.reached = hop.reached
                break
    return trace


def _hop_data(hop: _Hop, probes: int, names: dict[str, str | None] | None) -> traceroute_pb2.TracerouteHop:
    import statistics  # with fractions and decimal ~0.5 MB of RSS: loaded by the first summary, after the probes

    address = Counter(hop.addresses).most_common(1)[0][0] if hop.addresses else ""
    out = traceroute_pb2.TracerouteHop(hop=hop.ttl, address=address, rtts_ms=[round(r, 3) for r in hop.rtts],
                                       loss=round(1 - len(hop.rtts) / probes, 4))
    if hop.rtts:
        out.avg_rtt_ms = round(statistics.fmean(hop.rtts), 3)
    if names is not None and address:
        out.name = names.get(address) or ""
    if len(set(hop.addresses)) > 1:
        out.addresses.extend(sorted(set(hop.addresses)))
    if hop.unreachable:
        out.unreachable = hop.unreachable
    return out


async def probe(request: ProbeRequest) -> ProbeResult:
    max_hops, probes = _options(request)
    protocol = (request.options.protocol or "icmp").lower()
    if protocol not in _hops.PROTOCOLS:
        raise ProbeError("bad_options", f"protocol {protocol!r} is not one of {', '.join(_hops.PROTOCOLS)}")
    # A port means nothing to echo requests (the CLI's --port sets it for every type that has one).
    port = (request.options.port or default_port(protocol, request.target.port)) if protocol != "icmp" else 0
    started = time.monotonic()
    end = started + budget(request)
    addr = (await resolve(request, port=port or None))[0]
    # Names get a share of the time; the hop loop the rest.
    trace_end = end - (NAME_TIMEOUT if request.options.resolve_names else 0)
    hop_wait = min(MAX_HOP_WAIT, max(MIN_HOP_WAIT, (trace_end - time.monotonic()) / max_hops))
    if protocol != "icmp":
        trace = await _trace_sockets(addr, protocol, port, max_hops=max_hops, probes=probes, hop_wait=hop_wait,
                                     deadline=trace_end, progress=request.progress)
    else:
        stop = threading.Event()
        try:
            trace = await asyncio.to_thread(_trace, addr, max_hops=max_hops, probes=probes, hop_wait=hop_wait,
                                            deadline=trace_end, stop=stop, progress=request.progress)
        finally:
            # Cancelled: the thread cannot be, but it checks this between waits.
            stop.set()
    names = None
    if request.options.resolve_names:
        names = await _hops.reverse_names({a for h in trace.hops for a in h.addresses}, end, timeout=NAME_TIMEOUT)
    data = traceroute_pb2.TracerouteResult(
        address=str(addr), ip_version=addr.version, max_hops=max_hops, probes_per_hop=probes,
        destination_reached=trace.reached, complete=trace.complete, hop_count=len(trace.hops),
        hops=[_hop_data(h, probes, names) for h in trace.hops], protocol=protocol, port=port)
    if trace.reached:
        return ProbeResult(True, data)
    last = trace.hops[-1] if trace.hops else None
    if last is not None and last.unreachable:
        return ProbeResult(False, data, f"hop {last.ttl} ({last.addresses[0]}): {last.unreachable}", "unreachable")
    if not trace.complete:
        return ProbeResult(False, data, f"{addr} not reached within {request.timeout:g} s "
                                         f"({len(trace.hops)} hops traced)", "timeout")
    return ProbeResult(False, data, f"{addr} not reached within {max_hops} hops", "max_hops")


async def _trace_sockets(addr: IPAddress, protocol: str, port: int, *, max_hops: int, probes: int, hop_wait: float,
                         deadline: float, progress: Progress = no_progress) -> _Trace:
    """The hop loop of udp and tcp probes (see _hops.py), on the event loop; returns by `deadline` (monotonic)."""
    trace = _Trace()
    with _hops.HopProber(addr, protocol, port) as prober:
        for ttl in range(1, max_hops + 1):
            if time.monotonic() + min(hop_wait, MIN_HOP_WAIT) > deadline:
                trace.complete = False
                break
            hop = _Hop(ttl)
            trace.hops.append(hop)
            sent = [prober.send(ttl) for _ in range(probes)]
            hop_deadline = time.perf_counter() + min(hop_wait, deadline - time.monotonic())
            for key, future in sent:
                reply = await _hops.first_reply(future, hop_deadline)
                prober.forget(key)
                if reply is None:
                    continue
                hop.rtts.append(reply.rtt * 1000.0)
                hop.addresses.append(reply.address)
                if reply.reached:
                    hop.reached = True
                elif reply.unreachable:
                    hop.unreachable = reply.unreachable
            progress(f"hop {ttl}: {hop.addresses[0] if hop.addresses else '*'}", done=ttl, total=max_hops,
                     data=traceroute_pb2.TracerouteResult(
                         address=str(addr), ip_version=addr.version, max_hops=max_hops, probes_per_hop=probes,
                         hop_count=len(trace.hops), hops=[_hop_data(h, probes, None) for h in trace.hops],
                         protocol=protocol, port=port))
            if hop.reached or hop.unreachable:
                trace.reached = hop.reached
                break
    return trace
