"""mtr and udp/tcp traceroute of loopback in the test's own process (a raw ICMP socket: run as root or with
CAP_NET_RAW), and the probe/answer matching they share (agent/probers/_hops.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

import pytest

from hostcheck.agent.probers import _hops, mtr, traceroute
from hostcheck.v1 import mtr_pb2, traceroute_pb2
from tests.helpers import free_port
from tests.probers.conftest import probe_request, run


@pytest.fixture(scope="module", autouse=True)
def raw_sockets():
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    except PermissionError:
        pytest.skip("no raw ICMP socket here (needs CAP_NET_RAW)")


@pytest.mark.parametrize("protocol", ["icmp", "udp", "tcp"])
@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
async def test_mtr_of_loopback(host, protocol):
    started = time.perf_counter()
    result = await run(mtr.probe, probe_request(host, mtr_pb2.MtrOptions(protocol=protocol, count=4, interval_ms=100),
                                                timeout=5))
    elapsed = time.perf_counter() - started
    assert result.success, result
    data = result.data
    assert (data.address, data.protocol, data.count, data.destination_reached) == (host, protocol, 4, True)
    assert data.port == {"icmp": 0, "udp": 33434, "tcp": 80}[protocol]
    [hop] = data.hops  # the probes past the destination (round 1 sends every TTL) are not reported
    assert (hop.hop, hop.address, hop.sent, hop.received, hop.loss_percent) == (1, host, 4, 4, 0)
    assert 0 < hop.best_ms <= hop.avg_ms <= hop.worst_ms and hop.last_ms > 0
    assert hop.stddev_ms >= 0 and 0 <= hop.jitter_avg_ms <= hop.jitter_max_ms
    # Rounds every 100 ms, every answer in: ~0.3 s, not the 2 s last wait.
    assert elapsed < 1.5


async def test_a_port_with_icmp_is_ignored():
    result = await run(mtr.probe, probe_request("127.0.0.1", mtr_pb2.MtrOptions(count=1, port=443)))
    assert result.success and result.data.port == 0, result
    result = await run(traceroute.probe, probe_request("127.0.0.1", traceroute_pb2.TracerouteOptions(port=443)))
    assert result.success and result.data.port == 0 and result.data.protocol == "icmp", result


async def test_mtr_stops_at_its_deadline():
    started = time.perf_counter()
    result = await run(mtr.probe, probe_request("127.0.0.1", mtr_pb2.MtrOptions(count=30, interval_ms=100),
                                                timeout=1))
    assert result.success, result
    assert 5 <= result.data.count < 30 and result.data.hops[0].sent == result.data.count
    assert time.perf_counter() - started < 1


@pytest.mark.parametrize(("options", "message"), [
    (mtr_pb2.MtrOptions(protocol="gre"), "protocol 'gre' is not one of icmp, udp, tcp"),
    (mtr_pb2.MtrOptions(count=31), "count 31 is out of range 1-30"),
    (mtr_pb2.MtrOptions(max_hops=65), "max_hops 65 is out of range 1-64"),
])
async def test_mtr_bad_options(options, message):
    result = await run(mtr.probe, probe_request("127.0.0.1", options))
    assert (result.success, result.error_code, result.error) == (False, "bad_options", message)


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_traceroute_of_loopback(protocol):
    port = free_port()
    result = await run(traceroute.probe, probe_request(
        "127.0.0.1", traceroute_pb2.TracerouteOptions(protocol=protocol, port=port, max_hops=3)))
    assert result.success, result
    data = result.data
    assert (data.protocol, data.port, [h.address for h in data.hops]) == (protocol, port, ["127.0.0.1"])
    assert len(data.hops[0].rtts_ms) == 2


async def test_every_probe_gets_its_own_answer_when_ports_come_back():
    # 30 SYNs at once to a closed port: each refused connection frees its port, which the kernel may hand to
    # the next probe while the first is still listed. Every probe must still get its own answer.
    for _ in range(5):
        with _hops.HopProber(ipaddress.ip_address("127.0.0.1"), "tcp", free_port()) as prober:
            sent = [prober.send(ttl) for ttl in range(1, 31)]
            replies = await asyncio.gather(*(_hops.first_reply(future, time.perf_counter() + 2) for _, future in sent))
            assert all(r is not None and r.reached for r in replies), replies
