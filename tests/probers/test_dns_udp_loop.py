"""The dns prober's udp queries driven by the agent's event loop (agent/probers/dns.py, `_UdpExchange`;
c-ares's `_AresLookup` before it, issue 17): ask a silent server again within the check, ask again
over tcp when an answer comes truncated, and leave no socket watched or open and no thread behind,
whatever the outcome."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
import time

import dns.flags
import dns.message

from hostcheck.agent.probers import dns as dns_prober
from hostcheck.v1 import dns_pb2
from tests.helpers import assert_eventually, free_port, within
from tests.probers.conftest import probe_request, run
from tests.probers.dnslab import Zone, answer

ZONE = [Zone("t.test.", {("www.t.test.", "A"): ["192.0.2.10", "192.0.2.11"]})]
EXPECTED = [dns_pb2.DnsRecord(name="www.t.test", type="A", ttl=300, value=v) for v in ("192.0.2.10", "192.0.2.11")]


def answers(result) -> list[dns_pb2.DnsRecord]:
    """The answers in address order (an rrset's order on the wire is dnspython's set order)."""
    return sorted(result.data.answers, key=lambda r: r.value)


class _Udp(asyncio.DatagramProtocol):
    """Answers from ZONE; drops the first `drop` queries; with `truncate`, answers every query truncated."""

    def __init__(self, log: list[str], *, drop: int = 0, truncate: bool = False) -> None:
        self.log, self.drop, self.truncate = log, drop, truncate

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.log.append("udp")
        if self.drop > 0:
            self.drop -= 1
            return
        if self.truncate:
            response = dns.message.make_response(dns.message.from_wire(data))
            response.flags |= dns.flags.TC
            self.transport.sendto(response.to_wire(), addr)
            return
        self.transport.sendto(answer(ZONE, data), addr)


@contextlib.asynccontextmanager
async def resolver(*, drop: int = 0, truncate: bool = False, tcp: bool = False):
    """A resolver on 127.0.0.1 (udp, and tcp on the same port when asked); yields (address, log of queries)."""
    loop = asyncio.get_running_loop()
    log: list[str] = []

    async def serve_tcp(reader, writer) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                data = await reader.readexactly(length)
                log.append("tcp")
                reply = answer(ZONE, data)
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        writer.close()

    for _ in range(20):  # the tcp port's number may be taken for udp: try another
        server = await asyncio.start_server(serve_tcp, "127.0.0.1", 0) if tcp else None
        port = server.sockets[0].getsockname()[1] if server is not None else free_port()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(log, drop=drop, truncate=truncate), local_addr=("127.0.0.1", port))
            break
        except OSError:
            if server is not None:
                server.close()
    else:
        raise RuntimeError("no port free for both udp and tcp")
    try:
        yield f"127.0.0.1:{port}", log
    finally:
        transport.close()
        if server is not None:
            server.close()
            await server.wait_closed()


def opts(resolver: str) -> dns_pb2.DnsOptions:
    return dns_pb2.DnsOptions(resolver=resolver, record_type="A")


async def test_a_lost_query_is_asked_again_within_the_check():
    async with resolver(drop=1) as (address, log):
        started = time.perf_counter()
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address), timeout=1.0))
        elapsed = time.perf_counter() - started
    assert result.success, result
    assert answers(result) == EXPECTED
    assert log == ["udp", "udp"]
    # The second try goes when the first's share of the budget (0.9 s / 2 tries) is up, not later.
    assert 0.4 <= result.data.query_ms / 1000 < within(0.9), result.data.query_ms
    assert elapsed < within(1.0)


async def test_a_truncated_answer_is_asked_again_over_tcp():
    async with resolver(truncate=True, tcp=True) as (address, log):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address)))
    assert result.success, result
    assert answers(result) == EXPECTED
    assert (result.data.protocol, result.data.rcode) == ("udp", "NOERROR")
    assert log == ["udp", "tcp"]


def _open_fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


async def test_nothing_is_left_watched_open_or_running():
    loop = asyncio.get_running_loop()
    selector = loop._selector  # type: ignore[attr-defined]  # what the loop watches: the only way to see it
    async with resolver() as (answering, _), resolver(drop=1_000) as (silent, _):
        await run(dns_prober.probe, probe_request("www.t.test", opts(answering)))  # anything made once, made
        watched, fds, threads = len(selector.get_map()), _open_fds(), threading.active_count()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as closed:
            closed.bind(("127.0.0.1", 0))
            refused = f"127.0.0.1:{closed.getsockname()[1]}"
        outcomes = await asyncio.gather(
            *(run(dns_prober.probe, probe_request("www.t.test", opts(answering))) for _ in range(50)),
            *(run(dns_prober.probe, probe_request("www.t.test", opts(silent), timeout=0.3)) for _ in range(10)),
            *(run(dns_prober.probe, probe_request("www.t.test", opts(refused), timeout=0.3)) for _ in range(10)))
        assert [o.success for o in outcomes[:50]] == [True] * 50
        assert {o.error_code for o in outcomes[50:60]} == {"timeout"}
        assert {o.error_code for o in outcomes[60:]} <= {"refused", "timeout"}
        assert len(selector.get_map()) == watched
        assert threading.active_count() == threads  # no thread per check
        # Each check's socket is closed when it ends (c-ares's channels were closed on pycares's thread).
        await assert_eventually(lambda: _open_fds() <= fds, timeout=5, message="the checks' sockets are closed")
