"""The target guard against an independent list: IANA's special-purpose address registries, written
out here (not read from hostcheck.core.targets), and every IPv6 form that carries an IPv4 address.

Sources: https://www.iana.org/assignments/iana-ipv4-special-registry and
https://www.iana.org/assignments/iana-ipv6-special-registry (read 2026-11), plus the multicast
blocks and the deprecated site-local block, which the design also refuses. "Globally reachable:
True" entries may be probed or refused (the guard refuses some, e.g. all of 192.0.0.0/24); every
other entry must be refused, at its first, middle and last address.
"""

from __future__ import annotations

import ipaddress

import grpc
import pytest

from hostcheck.core.targets import TargetGuard
from hostcheck.v1 import checks_pb2, dns_pb2, scheduler_pb2
from tests.test_bad_input import count_rows, violations

# (range, globally reachable per IANA: True / False / None for "N/A")
IANA_IPV4 = [
    ("0.0.0.0/8", False),  # "this network"
    ("0.0.0.0/32", False),  # "this host on this network"
    ("10.0.0.0/8", False),  # private-use
    ("100.64.0.0/10", False),  # shared address space (CGNAT)
    ("127.0.0.0/8", False),  # loopback
    ("169.254.0.0/16", False),  # link local (cloud metadata 169.254.169.254)
    ("172.16.0.0/12", False),  # private-use
    ("192.0.0.0/24", False),  # IETF protocol assignments
    ("192.0.0.0/29", False),  # IPv4 service continuity prefix
    ("192.0.0.8/32", False),  # IPv4 dummy address
    ("192.0.0.9/32", True),  # PCP anycast
    ("192.0.0.10/32", True),  # TURN anycast
    ("192.0.0.170/32", False),  # NAT64/DNS64 discovery
    ("192.0.0.171/32", False),  # NAT64/DNS64 discovery
    ("192.0.2.0/24", False),  # TEST-NET-1
    ("192.31.196.0/24", True),  # AS112-v4
    ("192.52.193.0/24", True),  # AMT
    ("192.88.99.0/24", False),  # deprecated 6to4 relay anycast
    ("192.168.0.0/16", False),  # private-use
    ("192.175.48.0/24", True),  # direct delegation AS112
    ("198.18.0.0/15", False),  # benchmarking
    ("198.51.100.0/24", False),  # TEST-NET-2
    ("203.0.113.0/24", False),  # TEST-NET-3
    ("240.0.0.0/4", False),  # reserved
    ("255.255.255.255/32", False),  # limited broadcast
    ("224.0.0.0/4", False),  # multicast (IANA multicast registry)
]
IANA_IPV6 = [
    ("::1/128", False),  # loopback
    ("::/128", False),  # unspecified
    ("::ffff:0:0/96", False),  # IPv4-mapped
    ("64:ff9b::/96", True),  # IPv4-IPv6 translation (well-known NAT64 prefix)
    ("64:ff9b:1::/48", False),  # IPv4-IPv6 translation (local use)
    ("100::/64", False),  # discard-only
    ("100:0:0:1::/64", False),  # dummy IPv6 prefix
    ("2001::/23", False),  # IETF protocol assignments
    ("2001::/32", None),  # Teredo
    ("2001:1::1/128", True),  # PCP anycast
    ("2001:1::2/128", True),  # TURN anycast
    ("2001:1::3/128", True),  # DNS-SD service registration protocol anycast
    ("2001:2::/48", False),  # benchmarking
    ("2001:3::/32", True),  # AMT
    ("2001:4:112::/48", True),  # AS112-v6
    ("2001:10::/28", False),  # deprecated ORCHID
    ("2001:20::/28", True),  # ORCHIDv2
    ("2001:30::/28", True),  # drone remote ID
    ("2001:db8::/32", False),  # documentation
    ("2002::/16", None),  # 6to4
    ("2620:4f:8000::/48", True),  # direct delegation AS112
    ("3fff::/20", False),  # documentation
    ("5f00::/16", False),  # segment routing SIDs
    ("fc00::/7", False),  # unique-local
    ("fe80::/10", False),  # link-local unicast
    ("fec0::/10", False),  # deprecated site-local
    ("ff00::/8", False),  # multicast
]
# Ranges whose addresses carry an IPv4 address (their samples carry 0.0.0.0 or 255.255.255.255).
CARRY_IPV4 = {"::ffff:0:0/96", "64:ff9b:1::/48", "2001::/23", "2001::/32", "2002::/16"}
# An IPv4-mapped address is its IPv4 address to a socket: judged by it (tested with the other forms).
JUDGED_BY_INSIDE = {"::ffff:0:0/96"}
REFUSED = [net for net, reachable in IANA_IPV4 + IANA_IPV6 if reachable is not True and net not in JUDGED_BY_INSIDE]


def samples(cidr: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    net = ipaddress.ip_network(cidr)
    return sorted({net[0], net[net.num_addresses // 2], net[-1]})


@pytest.mark.parametrize("cidr", REFUSED)
def test_every_special_purpose_range_is_refused(cidr):
    guard = TargetGuard()
    for ip in samples(cidr):
        reason = guard.refusal(ip)
        assert reason, f"{ip} ({cidr}) passes the guard"
        assert "HOSTCHECK_ALLOW_TARGETS" in reason, reason


@pytest.mark.parametrize("cidr", REFUSED)
def test_allowing_a_range_allows_it(cidr):
    if cidr in CARRY_IPV4:
        pytest.skip("judged by the IPv4 inside too (tested below)")
    guard = TargetGuard.from_cidrs([cidr])
    for ip in samples(cidr):
        assert guard.refusal(ip) is None, (ip, guard.refusal(ip))


def test_public_addresses_pass():
    guard = TargetGuard()
    for text in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001::1"):
        assert guard.refusal(ipaddress.ip_address(text)) is None, text


def _v4_refused_samples() -> list[ipaddress.IPv4Address]:
    return [ip for net, reachable in IANA_IPV4 if reachable is False for ip in samples(net)]


def _embeddings(v4: ipaddress.IPv4Address) -> dict[str, ipaddress.IPv6Address]:
    """`v4` in each IPv6 form that carries an IPv4 address (built here from the RFCs' layouts)."""
    n = int(v4)
    teredo_server = int(ipaddress.IPv4Address("65.54.227.120"))
    return {
        "mapped ::ffff:0:0/96 (RFC 4291)": ipaddress.IPv6Address((0xFFFF << 32) | n),
        "translated ::ffff:0:0:0/96 (RFC 2765)": ipaddress.IPv6Address((0xFFFF << 48) | n),
        "compatible ::/96 (RFC 4291)": ipaddress.IPv6Address(n),
        "NAT64 64:ff9b::/96 (RFC 6052)": ipaddress.IPv6Address((0x64FF9B << 96) | n),
        "NAT64 local 64:ff9b:1::/48 (RFC 8215)": ipaddress.IPv6Address((0x64FF9B0001 << 80) | n),
        "6to4 2002::/16 (RFC 3056)": ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | 1),
        # Teredo: prefix, server IPv4, flags, port, client IPv4 XOR ffffffff (RFC 4380).
        "Teredo client 2001::/32 (RFC 4380)": ipaddress.IPv6Address(
            (0x20010000 << 96) | (teredo_server << 64) | (0x8000 << 48) | (0x1234 << 32) | (n ^ 0xFFFFFFFF)),
        "Teredo server 2001::/32 (RFC 4380)": ipaddress.IPv6Address(
            (0x20010000 << 96) | (n << 64) | (0x8000 << 48) | (0x1234 << 32) | (int(ipaddress.IPv4Address("8.8.8.8"))
                                                                                ^ 0xFFFFFFFF)),
    }


@pytest.mark.parametrize("form", list(_embeddings(ipaddress.IPv4Address("10.0.0.1"))))
def test_ipv6_forms_carrying_a_refused_ipv4_are_refused_even_where_their_range_is_allowed(form):
    # The operator allowed every IPv6 range: only the IPv4 inside can refuse.
    guard = TargetGuard.from_cidrs(["::/0"])
    for v4 in _v4_refused_samples():
        if form.startswith("compatible") and int(v4) <= 1:
            continue  # :: and ::1 are the unspecified and loopback addresses, not IPv4-compatible ones
        ip = _embeddings(v4)[form]
        assert guard.refusal(ip), f"{ip} ({form} of {v4}) passes the guard"


def test_embedded_ipv4_that_is_allowed_is_judged_by_it():
    guard = TargetGuard.from_cidrs(["127.0.0.0/8"])
    embedded = _embeddings(ipaddress.IPv4Address("127.0.0.1"))
    assert guard.refusal(embedded["mapped ::ffff:0:0/96 (RFC 4291)"]) is None
    assert guard.refusal(embedded["NAT64 64:ff9b::/96 (RFC 6052)"]) is None
    # 6to4 and Teredo are refused for their own range too, whatever they carry.
    assert guard.refusal(embedded["6to4 2002::/16 (RFC 3056)"])
    public = _embeddings(ipaddress.IPv4Address("8.8.8.8"))
    assert TargetGuard().refusal(public["NAT64 64:ff9b::/96 (RFC 6052)"]) is None


# Through the API (services on real sockets): the forms of issue 12 and dns resolvers.
API_REFUSED_TARGETS = ["64:ff9b::a00:1", "::a9fe:a9fe", "::ffff:0:a9fe:a9fe", "::ffff:169.254.169.254",
                       "2002:a9fe:a9fe::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "[64:ff9b::a00:1]:80"]


@pytest.mark.parametrize("target", API_REFUSED_TARGETS)
async def test_api_refuses_ipv4_carried_in_ipv6(system, tmp_path, target):
    await system.start_agent(tmp_path, "a1")
    before = count_rows(system)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(target=target, checks=["tcp"],
                                                                          tcp={"port": 80}))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(err.value)
    assert "refused by default" in found["target"] and "HOSTCHECK_ALLOW_TARGETS" in found["target"], found
    assert count_rows(system) == before


@pytest.mark.parametrize("resolver", ["169.254.169.254", "[::ffff:169.254.169.254]:53", "10.0.0.1:5353",
                                      "[64:ff9b::a9fe:a9fe]"])
async def test_api_refuses_dns_resolver_in_special_ranges(system, tmp_path, resolver):
    await system.start_agent(tmp_path, "a1")
    before = count_rows(system)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
            target="www.example.com", checks=["dns"], dns=dns_pb2.DnsOptions(resolver=resolver)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "refused by default" in violations(err.value)["dns.resolver"]
    assert count_rows(system) == before


@pytest.mark.system_config(scheduler_overrides={"allow_targets": ()})
async def test_api_refuses_loopback_resolver_unless_allowed(system, tmp_path):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
            target="www.example.com", checks=["dns"], dns=dns_pb2.DnsOptions(resolver="127.0.0.1:5353"),
            agents=checks_pb2.AgentSelector(limit=1)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "HOSTCHECK_ALLOW_TARGETS=127.0.0.0/8" in violations(err.value)["dns.resolver"]


async def test_api_accepts_allowed_loopback_resolver(system, tmp_path):
    # The system fixture allows 127.0.0.0/8 (as an operator would for in-cluster diagnostics).
    await system.start_agent(tmp_path, "a1")
    created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target="www.example.com", checks=["dns"], dns=dns_pb2.DnsOptions(resolver="127.0.0.1:5353"),
        agents=checks_pb2.AgentSelector(limit=1)))
    assert created.check_id
