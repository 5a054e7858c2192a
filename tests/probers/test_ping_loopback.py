"""ping and traceroute of loopback, v4 and v6, in the test's own process."""

from __future__ import annotations

import time

import pytest
from icmplib import ICMPv4Socket, SocketPermissionError

from hostcheck.agent.probers import ping, traceroute
from hostcheck.v1 import ping_pb2, traceroute_pb2
from tests.probers.conftest import probe_request, run


@pytest.fixture(scope="module")
def icmp_allowed():
    for privileged in (False, True):
        try:
            ICMPv4Socket(privileged=privileged).close()
            return "raw" if privileged else "datagram"
        except SocketPermissionError:
            continue
    pytest.skip("this process may open no ICMP socket: set net.ipv4.ping_group_range "
                "(scripts/setup-system.sh) or run with CAP_NET_RAW")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_ping_loopback(icmp_allowed, host):
    started = time.perf_counter()
    result = await run(ping.probe, probe_request(host, ping_pb2.PingOptions(count=3, interval_ms=100)))
    assert result.success, result
    data = result.data
    assert data.address == host and data.socket == icmp_allowed
    assert (data.packets_sent, data.packets_received, data.packet_loss, data.duplicates) == (3, 3, 0, 0)
    assert data.ttl == 64 and data.size == 56
    assert [p.seq for p in data.packets] == [0, 1, 2]
    assert 0 < data.rtt_min_ms <= data.rtt_avg_ms <= data.rtt_max_ms
    assert data.rtt_stddev_ms >= 0 and len(data.rtts_ms) == 3
    # Requests go out every interval_ms without waiting for replies: ~0.2 s, not 3 round trips of waiting.
    assert 0.19 < time.perf_counter() - started < 1


async def test_ping_payload_size(icmp_allowed):
    result = await run(ping.probe, probe_request("127.0.0.1", ping_pb2.PingOptions(count=1, size=1400)))
    assert result.success and result.data.size == 1400


@pytest.mark.parametrize(("options", "message"), [
    (ping_pb2.PingOptions(count=17), "count 17 is out of range 1-16"),
    (ping_pb2.PingOptions(size=1473), "size 1473 is out of range 0-1472"),
])
async def test_ping_bad_options(options, message):
    result = await run(ping.probe, probe_request("127.0.0.1", options))
    assert (result.success, result.error_code, result.error) == (False, "bad_options", message)


async def test_ping_guarded():
    result = await run(ping.probe, probe_request("::1", ping_pb2.PingOptions(count=1), allow=()))
    assert (result.success, result.error_code) == (False, "target_refused")


@pytest.fixture(scope="module")
def raw_icmp_allowed():
    try:
        ICMPv4Socket(privileged=True).close()
    except SocketPermissionError:
        pytest.skip("traceroute needs a raw ICMP socket (CAP_NET_RAW), which this process lacks")


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_traceroute_loopback_is_one_hop(raw_icmp_allowed, host):
    result = await run(traceroute.probe, probe_request(host, traceroute_pb2.TracerouteOptions(probes_per_hop=3)))
    assert result.success, result
    data = result.data
    assert (data.address, data.destination_reached, data.complete, data.hop_count) == (host, True, True, 1)
    (hop,) = data.hops
    assert (hop.hop, hop.address, hop.loss, len(hop.rtts_ms)) == (1, host, 0, 3)
    assert not hop.name  # not asked for


@pytest.mark.parametrize(("options", "message"), [
    (traceroute_pb2.TracerouteOptions(max_hops=65), "max_hops 65 is out of range 1-64"),
    (traceroute_pb2.TracerouteOptions(probes_per_hop=6), "probes_per_hop 6 is out of range 1-5"),
])
async def test_traceroute_bad_options(options, message):
    result = await run(traceroute.probe, probe_request("127.0.0.1", options))
    assert (result.success, result.error_code, result.error) == (False, "bad_options", message)
