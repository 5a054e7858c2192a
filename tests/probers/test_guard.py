"""The guard on the agent: every special-purpose range is refused by every prober unless allowed."""

from __future__ import annotations

import pytest

from hostcheck.agent.probers import PROBERS
from hostcheck.core.targets import BLOCKED_NETWORKS
from hostcheck.v1 import dns_pb2, http_pb2, mtr_pb2, ping_pb2, tcp_pb2, tls_pb2, traceroute_pb2, udp_pb2
from tests.probers.conftest import probe_request, run

OPTIONS = {"http": http_pb2.HttpOptions(), "tcp": tcp_pb2.TcpOptions(port=80),
           "ping": ping_pb2.PingOptions(count=1), "udp": udp_pb2.UdpOptions(port=53),
           "traceroute": traceroute_pb2.TracerouteOptions(max_hops=1), "tls": tls_pb2.TlsOptions(port=443),
           "mtr": mtr_pb2.MtrOptions(count=1, max_hops=1)}


def _sample(net) -> str:
    """An address inside `net` (not its network address, where it has more than one)."""
    return str(net[1] if net.num_addresses > 1 else net[0])


def test_every_target_type_is_tested():
    # dns sends its packets to the resolver, not the target: guarded below.
    assert set(OPTIONS) == set(PROBERS) - {"dns"}


@pytest.mark.parametrize("net", BLOCKED_NETWORKS, ids=str)
@pytest.mark.parametrize("check_type", sorted(OPTIONS))
async def test_each_range_is_refused_before_any_packet(check_type, net):
    address = _sample(net)
    target = f"http://[{address}]/" if check_type == "http" and net.version == 6 else (
        f"http://{address}/" if check_type == "http" else address)
    result = await run(PROBERS[check_type], probe_request(target, OPTIONS[check_type], allow=()))
    assert (result.success, result.error_code) == (False, "target_refused"), result
    # Ranges overlap (255.255.255.255 is in 240.0.0.0/4): the message names the first that matches.
    assert "special-purpose range" in result.error or "not globally routable" in result.error


@pytest.mark.parametrize("net", BLOCKED_NETWORKS, ids=str)
async def test_each_range_is_refused_as_a_dns_resolver(net):
    resolver = f"[{_sample(net)}]:53" if net.version == 6 else _sample(net)
    result = await run(PROBERS["dns"], probe_request("www.t.test", dns_pb2.DnsOptions(resolver=resolver),
                                                     allow=()))
    assert (result.success, result.error_code) == (False, "target_refused"), result


async def test_ipv4_mapped_ipv6_loopback_is_refused():
    result = await run(PROBERS["tcp"], probe_request("[::ffff:127.0.0.1]:80", tcp_pb2.TcpOptions(), allow=()))
    assert (result.success, result.error_code) == (False, "target_refused")
