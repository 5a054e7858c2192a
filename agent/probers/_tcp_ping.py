"""A series of TCP connections to one port, timed (`protocol = tcp` of the echo type): each probe a fresh
connection; its round trip is SYN to SYN-ACK.

connect() returns when the kernel has the SYN-ACK (and sent the final ACK), so the time
from the call to its return is one round trip plus a few microseconds of system calls;
no raw socket is needed. A reset (port closed) is an answer too: it is timed and counted
as received with `refused`, but a series whose every probe was refused fails (`refused`),
since the port is not open. Probes go out every `interval` whatever the earlier ones
are doing, as iputils' echo requests do. Each connection is closed with a reset
(SO_LINGER 0): a series leaves nothing in TIME_WAIT on the agent.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import time

from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, budget, resolve
from hostcheck.core.targets import IPAddress
from hostcheck.v1 import ping_pb2

# A probe unanswered this long counts as lost (iputils' -W).
REPLY_TIMEOUT = 2.0
_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH}


async def _connect(addr: IPAddress, port: int, timeout: float) -> tuple[float | None, bool, str]:
    """(round trip in seconds or None, refused, error) of one fresh connection."""
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        started = time.perf_counter()
        try:
            async with asyncio.timeout(max(timeout, 0.001)):
                await loop.sock_connect(sock, (str(addr), port))
        except TimeoutError:
            return None, False, "timeout"
        except ConnectionRefusedError:
            return time.perf_counter() - started, True, ""
        except OSError as exc:
            if exc.errno in _UNREACHABLE:
                return None, False, exc.strerror or "unreachable"
            raise
        return time.perf_counter() - started, False, ""
    finally:
        sock.close()


async def probe(request: ProbeRequest, *, count: int, interval: float, port: int) -> ProbeResult:
    started = time.perf_counter()
    deadline = started + budget(request)
    addr = (await resolve(request, port=port))[0]
    outcomes: dict[int, tuple[float | None, bool, str]] = {}

    async def one(seq: int) -> None:
        outcome = await _connect(addr, port, min(REPLY_TIMEOUT, deadline - time.perf_counter()))
        outcomes[seq] = outcome
        rtt, refused, _ = outcome
        if rtt is not None:
            request.progress(f"{'reset' if refused else 'connected'} {len(outcomes)} of {count}: {addr} port {port} "
                             f"seq={seq} time={rtt * 1000.0:.3f} ms", done=len(outcomes), total=count)

    tasks: list[asyncio.Task] = []
    try:
        for seq in range(count):
            due = started + seq * interval
            if due >= deadline:
                break
            if due > time.perf_counter():
                await asyncio.sleep(due - time.perf_counter())
            tasks.append(asyncio.create_task(one(seq)))
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
    return _result(addr, port, outcomes, sent=len(tasks))


def _result(addr: IPAddress, port: int, outcomes: dict[int, tuple[float | None, bool, str]],
            sent: int) -> ProbeResult:
    import statistics  # with fractions and decimal ~0.5 MB of RSS: loaded by the first summary, after the probes

    answered = {seq: rtt * 1000.0 for seq, (rtt, _, _) in sorted(outcomes.items()) if rtt is not None}
    refused = sum(1 for rtt, was_refused, _ in outcomes.values() if rtt is not None and was_refused)
    rtts = list(answered.values())
    data = ping_pb2.PingResult(
        address=str(addr), ip_version=addr.version, socket="stream", protocol="tcp", port=port,
        packets_sent=sent, packets_received=len(rtts), packet_loss=round(1 - len(rtts) / sent, 4) if sent else 1.0,
        refused=refused, rtts_ms=[round(r, 3) for r in rtts])
    if rtts:
        data.rtt_min_ms = round(min(rtts), 3)
        data.rtt_avg_ms = round(statistics.fmean(rtts), 3)
        data.rtt_max_ms = round(max(rtts), 3)
        data.rtt_stddev_ms = round(statistics.pstdev(rtts), 3)
    for seq in range(sent):
        packet = data.packets.add(seq=seq)
        rtt, was_refused, _ = outcomes.get(seq, (None, False, ""))
        if rtt is not None:
            packet.rtt_ms = round(rtt * 1000.0, 3)
            packet.refused = was_refused
    if not rtts:
        errors = {error for _, _, error in outcomes.values() if error and error != "timeout"}
        if errors:
            return ProbeResult(False, data, f"{addr} port {port}: {', '.join(sorted(errors))}", "unreachable")
        return ProbeResult(False, data, f"no answer from {addr} port {port} to {sent} connection attempt(s)",
                           "no_reply")
    if refused == len(rtts):
        return ProbeResult(False, data, f"{addr} refused every connection to port {port} (port closed)", "refused")
    return ProbeResult(True, data)


def check_options(request: ProbeRequest) -> None:
    if request.options.size:
        raise ProbeError("bad_options", "size is for the icmp protocol only")
