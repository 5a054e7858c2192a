"""ping over TCP on loopback: a fresh connection per probe, SYN to SYN-ACK timed; refused, closed and silent ports."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from hostcheck.agent.probers import ping
from hostcheck.v1 import ping_pb2
from tests.helpers import assert_eventually, free_port, within
from tests.probers.conftest import probe_request, run


class Listener:
    """A TCP server that records the peer of every connection it accepts."""

    def __init__(self) -> None:
        self.peers: list[tuple] = []
        self.server: asyncio.AbstractServer | None = None

    async def start(self, host: str) -> int:
        async def handle(reader, writer) -> None:
            self.peers.append(writer.get_extra_info("peername"))
            writer.close()

        self.server = await asyncio.start_server(handle, host, 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def tcp(count: int = 3, port: int = 0, interval_ms: int = 100) -> ping_pb2.PingOptions:
    return ping_pb2.PingOptions(protocol="tcp", count=count, port=port, interval_ms=interval_ms)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_each_probe_is_a_fresh_connection(host):
    listener = Listener()
    port = await listener.start(host)
    try:
        started = time.perf_counter()
        result = await run(ping.probe, probe_request(host, tcp(count=4, port=port)))
        elapsed = time.perf_counter() - started
        assert result.success, result
        data = result.data
        assert (data.protocol, data.socket, data.address, data.port) == ("tcp", "stream", host, port)
        assert (data.packets_sent, data.packets_received, data.packet_loss, data.refused) == (4, 4, 0, 0)
        assert [p.seq for p in data.packets] == [0, 1, 2, 3] and not any(p.refused for p in data.packets)
        assert 0 < data.rtt_min_ms <= data.rtt_avg_ms <= data.rtt_max_ms < 100
        assert not data.HasField("ttl")
        # Probes go out every interval: ~0.3 s for 4.
        assert 0.29 < elapsed < 1.5
        await assert_eventually(lambda: len(listener.peers) == 4, timeout=5, message="four connections accepted")
        assert len({peer[1] for peer in listener.peers}) == 4  # four source ports: four connections
    finally:
        await listener.stop()


async def test_the_targets_port_is_used_without_a_port_option():
    listener = Listener()
    port = await listener.start("127.0.0.1")
    try:
        result = await run(ping.probe, probe_request(f"127.0.0.1:{port}", tcp(count=1)))
        assert result.success and result.data.port == port, result
    finally:
        await listener.stop()


async def test_a_closed_port_answers_with_resets():
    port = free_port()
    result = await run(ping.probe, probe_request("127.0.0.1", tcp(count=3, port=port)))
    assert (result.success, result.error_code) == (False, "refused"), result
    data = result.data
    # The host answered every probe: received, timed, and each marked refused.
    assert (data.packets_received, data.refused, data.packet_loss) == (3, 3, 0)
    assert all(p.refused and p.rtt_ms > 0 for p in data.packets)
    assert f"port {port}" in result.error


async def test_a_full_backlog_goes_unanswered_within_the_timeout():
    # A listening socket whose backlog is full and never accepted: the kernel drops further SYNs silently.
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        port = full.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
                fillers.append(filler)
            started = time.perf_counter()
            result = await run(ping.probe, probe_request("127.0.0.1", tcp(count=2, port=port), timeout=1))
            elapsed = time.perf_counter() - started
        finally:
            for filler in fillers:
                filler.close()
    assert (result.success, result.error_code) == (False, "no_reply"), result
    assert (result.data.packets_sent, result.data.packets_received, result.data.packet_loss) == (2, 0, 1)
    assert elapsed < within(1)


async def test_size_is_for_icmp_only():
    result = await run(ping.probe, probe_request("127.0.0.1", ping_pb2.PingOptions(protocol="tcp", size=100)))
    assert (result.success, result.error_code) == (False, "bad_options")
    result = await run(ping.probe, probe_request("127.0.0.1", ping_pb2.PingOptions(protocol="sctp")))
    assert (result.success, result.error_code) == (False, "bad_options")
    assert "'sctp' is not one of icmp, tcp" in result.error
