"""mtr: rounds of probes to every hop, as `mtr --report`; per hop loss, sent, last/avg/best/worst, stddev, jitter.

Each round sends one probe to every TTL from 1 up to the destination (up to max_hops
until it is found), all at once; rounds start every `interval`. A probe's answer may
come during later rounds: it counts whenever it arrives before the check's last wait
ends (at most 2 s after the last round, as mtr's). Probes whose TTL was past the
destination (only in the rounds before it was known) are not reported, as mtr does.
Probes and answers are _hops.py's (a raw ICMP socket: CAP_NET_RAW). Statistics follow
mtr's columns: Loss% = unanswered / sent, StDev the sample standard deviation of the
round trips; jitter the mean and largest difference of consecutive round trips.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

from hostcheck.agent.probers import _hops
from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, budget, resolve
from hostcheck.core.checktypes._paths import PROTOCOLS, default_port
from hostcheck.core.checktypes.mtr import (
    DEFAULT_COUNT,
    DEFAULT_INTERVAL_MS,
    DEFAULT_MAX_HOPS,
    MAX_COUNT,
    MAX_HOPS,
)
from hostcheck.core.targets import IPAddress
from hostcheck.v1 import mtr_pb2

# After the last round, unanswered probes are waited for this long at most (mtr's default timeout... of its
# report mode's last round is ~1 s per hop; 2 s covers any path a check can measure).
LAST_WAIT = 2.0
NAME_TIMEOUT = 1.0


@dataclass
class _Hop:
    ttl: int
    sent: int = 0
    # (round, rtt ms) of answered probes.
    rtts: list[tuple[int, float]] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    unreachable: str = ""


@dataclass
class _Run:
    hops: dict[int, _Hop] = field(default_factory=dict)
    # TTL at which the destination (or an unreachable answer) was seen; None: not yet.
    last_ttl: int | None = None
    reached: bool = False
    rounds: int = 0


def _options(request: ProbeRequest) -> tuple[int, float, int, str, int]:
    opts = request.options
    count = opts.count or DEFAULT_COUNT
    interval = (opts.interval_ms or DEFAULT_INTERVAL_MS) / 1000.0
    max_hops = opts.max_hops or DEFAULT_MAX_HOPS
    protocol = (opts.protocol or "icmp").lower()
    if not 1 <= count <= MAX_COUNT:
        raise ProbeError("bad_options", f"count {count} is out of range 1-{MAX_COUNT}")
    if not 1 <= max_hops <= MAX_HOPS:
        raise ProbeError("bad_options", f"max_hops {max_hops} is out of range 1-{MAX_HOPS}")
    if protocol not in PROTOCOLS:
        raise ProbeError("bad_options", f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    # A port means nothing to echo requests (the CLI's --port sets it for every type that has one).
    port = (opts.port or default_port(protocol, request.target.port)) if protocol != "icmp" else 0
    return count, interval, max_hops, protocol, port


async def probe(request: ProbeRequest) -> ProbeResult:
    count, interval, max_hops, protocol, port = _options(request)
    started = time.perf_counter()
    end = started + budget(request)
    addr = (await resolve(request, port=port or None))[0]
    # Names get a share of the time; the rounds the rest.
    probe_end = end - (NAME_TIMEOUT if request.options.resolve_names else 0)
    state = _Run()
    waiting: set[asyncio.Task] = set()
    with _hops.HopProber(addr, protocol, port) as prober:
        try:
            for round_ in range(count):
                due = started + round_ * interval
                if due >= probe_end:
                    break
                if due > time.perf_counter():
                    await asyncio.sleep(due - time.perf_counter())
                state.rounds += 1
                for ttl in range(1, (state.last_ttl or max_hops) + 1):
                    hop = state.hops.setdefault(ttl, _Hop(ttl))
                    hop.sent += 1
                    key, future = prober.send(ttl)
                    task = asyncio.create_task(_collect(prober, key, future, hop, round_, state, probe_end))
                    waiting.add(task)
                    task.add_done_callback(waiting.discard)
                request.progress(f"round {state.rounds} of {count}", done=state.rounds, total=count,
                                 data=_data(addr, protocol, port, state, None))
            if waiting:
                await asyncio.wait(set(waiting), timeout=max(min(probe_end, time.perf_counter() + LAST_WAIT)
                                                             - time.perf_counter(), 0))
        finally:
            for task in waiting:
                task.cancel()
    names = None
    if request.options.resolve_names:
        names = await _hops.reverse_names({a for h in state.hops.values() for a in h.addresses},
                                          time.monotonic() + max(end - time.perf_counter(), 0), timeout=NAME_TIMEOUT)
    data = _data(addr, protocol, port, state, names)
    if state.reached:
        return ProbeResult(True, data)
    last = data.hops[-1] if data.hops else None
    if last is not None and last.unreachable:
        return ProbeResult(False, data, f"hop {last.hop} ({last.address}): {last.unreachable}", "unreachable")
    return ProbeResult(False, data, f"{addr} not reached within {max_hops} hops in {state.rounds} rounds",
                       "not_reached")


async def _collect(prober: _hops.HopProber, key: int, future: asyncio.Future[_hops.Reply], hop: _Hop, round_: int,
                   state: _Run, deadline: float) -> None:
    try:
        reply = await _hops.first_reply(future, min(deadline, time.perf_counter() + LAST_WAIT))
    finally:
        prober.forget(key)
    if reply is None:
        return
    hop.rtts.append((round_, reply.rtt * 1000.0))
    hop.addresses.append(reply.address)
    if reply.reached or reply.unreachable:
        if reply.unreachable:
            hop.unreachable = reply.unreachable
        if state.last_ttl is None or hop.ttl < state.last_ttl:
            state.last_ttl = hop.ttl
            state.reached = reply.reached


def _data(addr: IPAddress, protocol: str, port: int, state: _Run,
          names: dict[str, str | None] | None) -> mtr_pb2.MtrResult:
    shown = sorted(t for t in state.hops if state.last_ttl is None or t <= state.last_ttl)
    if state.last_ttl is None:
        # Not reached: up to the last hop that answered, then one silent hop (mtr shows "???" rows so).
        answered = [t for t in shown if state.hops[t].rtts]
        shown = [t for t in shown if t <= (answered[-1] + 1 if answered else 1)]
    return mtr_pb2.MtrResult(address=str(addr), ip_version=addr.version, protocol=protocol, port=port,
                             count=state.rounds, destination_reached=state.reached,
                             hops=[_hop(state.hops[t], names) for t in shown])


def _hop(hop: _Hop, names: dict[str, str | None] | None) -> mtr_pb2.MtrHop:
    import statistics  # with fractions and decimal ~0.5 MB of RSS: loaded by the first summary, after the probes

    received = len(hop.rtts)
    out = mtr_pb2.MtrHop(hop=hop.ttl, sent=hop.sent, received=received,
                         loss_percent=round(100.0 * (1 - received / hop.sent), 1) if hop.sent else 100.0,
                         unreachable=hop.unreachable)
    if hop.addresses:
        out.address = Counter(hop.addresses).most_common(1)[0][0]
        if len(set(hop.addresses)) > 1:
            out.addresses.extend(sorted(set(hop.addresses)))
        if names is not None:
            out.name = names.get(out.address) or ""
    if hop.rtts:
        in_order = [rtt for _, rtt in sorted(hop.rtts)]
        out.last_ms = round(in_order[-1], 3)
        out.avg_ms = round(statistics.fmean(in_order), 3)
        out.best_ms = round(min(in_order), 3)
        out.worst_ms = round(max(in_order), 3)
        out.stddev_ms = round(statistics.stdev(in_order), 3) if len(in_order) > 1 else 0.0
        jitter = [abs(b - a) for a, b in zip(in_order, in_order[1:], strict=False)]
        if jitter:
            out.jitter_avg_ms = round(statistics.fmean(jitter), 3)
            out.jitter_max_ms = round(max(jitter), 3)
    return out
