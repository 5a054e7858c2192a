"""Probes across a real two-hop path (network namespaces; see netlab.py): traceroute, ping with loss,
the guard against a rebinding name, the agent's own resolver, and ICMP without privileges."""

from __future__ import annotations

import os
import pwd
import shutil
import time

import pytest

from tests.helpers import assert_eventually
from tests.probers.netlab import (
    LOSSY,
    NO_ROUTE,
    ROUTER_V4,
    ROUTER_V6,
    SILENT,
    TARGET_V4,
    TARGET_V6,
    NetLab,
)


@pytest.fixture(scope="module")
async def lab(tmp_path_factory):
    lab = NetLab(f"hc{os.getpid() % 100000}")
    missing = lab.cannot_create()
    if missing:
        pytest.skip(f"cannot create network namespaces here (needs root / CAP_SYS_ADMIN): {missing}")
    try:
        lab.create(tmp_path_factory.mktemp("netlab") / "dnsmasq.log")
        await assert_eventually(lab.dns_ready, timeout=10, message="dnsmasq answers in the client namespace")
        yield lab
    finally:
        lab.delete()


@pytest.mark.parametrize(("ip_version", "address"), [(4, TARGET_V4), (6, TARGET_V6)])
async def test_ping_across_the_router(lab, ip_version, address):
    result = await lab.probe("ping", "target.lab.test", {"count": 3, "interval_ms": 100}, ip_version=ip_version)
    assert result["success"], result
    data = result["data"]["ping"]
    assert (data["address"], data["ip_version"], data["socket"]) == (address, ip_version, "datagram")
    assert (data["packets_sent"], data["packets_received"], data["packet_loss"]) == (3, 3, 0)
    # One router on the way: the reply's TTL is one less than the target sent.
    assert data["ttl"] == 63 and [p["ttl"] for p in data["packets"]] == [63, 63, 63]
    assert data["rtt_min_ms"] <= data["rtt_avg_ms"] <= data["rtt_max_ms"] and len(data["rtts_ms"]) == 3


async def test_ping_reports_packet_loss(lab):
    result = await lab.probe("ping", LOSSY, {"count": 16, "interval_ms": 100}, timeout=3)
    data = result["data"]["ping"]
    # The router drops each request with probability 0.5: all 16 lost or none has odds of 2 in 65,536.
    assert 0 < data["packets_received"] < 16, data
    assert result["success"]
    assert data["packet_loss"] == round(1 - data["packets_received"] / 16, 4)
    lost = [p for p in data["packets"] if "rtt_ms" not in p]
    assert len(lost) == 16 - data["packets_received"] and all("ttl" not in p for p in lost)


async def test_ping_without_any_reply(lab):
    result = await lab.probe("ping", SILENT, {"count": 2, "interval_ms": 100}, timeout=1)
    assert (result["success"], result["error_code"]) == (False, "no_reply"), result
    assert (result["data"]["ping"]["packets_sent"], result["data"]["ping"]["packet_loss"]) == (2, 1)
    assert "rtt_avg_ms" not in result["data"]["ping"]  # no reply: no round trip
    assert result["duration_ms"] < 1000


@pytest.mark.parametrize(("ip_version", "router", "target"), [(4, ROUTER_V4, TARGET_V4), (6, ROUTER_V6, TARGET_V6)])
async def test_traceroute_two_hops_with_names(lab, ip_version, router, target):
    result = await lab.probe("traceroute", "target.lab.test", {"max_hops": 5, "resolve_names": True},
                             ip_version=ip_version)
    assert result["success"], result
    data = result["data"]["traceroute"]
    assert (data["address"], data["destination_reached"], data["complete"]) == (target, True, True)
    assert [(h["hop"], h["address"], h["name"], h["loss"]) for h in data["hops"]] == [
        (1, router, "router.lab.test", 0), (2, target, "target.lab.test", 0)]
    assert all(len(h["rtts_ms"]) == 2 and h["avg_rtt_ms"] > 0 for h in data["hops"])


async def test_traceroute_silent_hops_until_max_hops(lab):
    result = await lab.probe("traceroute", SILENT, {"max_hops": 3, "probes_per_hop": 3}, timeout=2)
    assert (result["success"], result["error_code"]) == (False, "max_hops"), result
    hops = result["data"]["traceroute"]["hops"]
    assert [(h["hop"], h["address"], h["loss"]) for h in hops] == [(1, ROUTER_V4, 0), (2, "", 1), (3, "", 1)]
    assert result["data"]["traceroute"]["complete"] is True and result["duration_ms"] < 2000


async def test_traceroute_stops_at_its_deadline_with_partial_hops(lab):
    started = time.perf_counter()
    result = await lab.probe("traceroute", SILENT, {"max_hops": 30}, timeout=1)
    assert (result["success"], result["error_code"]) == (False, "timeout"), result
    data = result["data"]["traceroute"]
    assert data["complete"] is False and 1 < data["hop_count"] < 30
    assert data["hops"][0]["address"] == ROUTER_V4
    assert result["duration_ms"] < 1000
    assert time.perf_counter() - started < 5


async def test_traceroute_network_unreachable(lab):
    result = await lab.probe("traceroute", NO_ROUTE, {"max_hops": 5})
    assert (result["success"], result["error_code"]) == (False, "unreachable"), result
    # The router's TTL check comes before its filter: hop 1 is its time-exceeded, hop 2 its refusal.
    hops = result["data"]["traceroute"]["hops"]
    assert [(h["hop"], h["address"], h["unreachable"]) for h in hops] == [
        (1, "10.99.1.1", ""), (2, "10.99.1.1", "network unreachable")], result
    assert "hop 2 (10.99.1.1): network unreachable" in result["error"]


@pytest.mark.parametrize(("check_type", "target", "options"), [
    ("tcp", "rebind.lab.test:80", {}),
    ("http", "http://rebind.lab.test/", {}),
    ("ping", "rebind.lab.test", {"count": 1}),
    ("udp", "rebind.lab.test:53", {}),
    ("traceroute", "rebind.lab.test", {}),
])
async def test_guard_refuses_a_name_that_resolves_to_loopback(lab, check_type, target, options):
    result = await lab.probe(check_type, target, options)
    assert (result["success"], result["error_code"]) == (False, "target_refused"), result
    assert "rebind.lab.test: address 127.0.0.1 is in the special-purpose range 127.0.0.0/8" in result["error"]


async def test_rebinding_name_is_probed_when_its_range_is_allowed(lab):
    result = await lab.probe("tcp", "rebind.lab.test:80", allow=("127.0.0.0/8",))
    # Nothing listens on port 80 in the client namespace: the guard let the connection go.
    assert (result["error_code"], result["data"]["tcp"]["address"]) == ("refused", "127.0.0.1"), result


async def test_tcp_refused_and_timed_out_across_the_router(lab):
    refused = await lab.probe("tcp", f"{TARGET_V4}:81")
    assert refused["error_code"] == "refused", refused
    timed_out = await lab.probe("tcp", f"{SILENT}:80", timeout=0.5)
    assert timed_out["error_code"] == "timeout", timed_out


@pytest.mark.parametrize(("record_type", "value"), [("A", TARGET_V4), ("AAAA", TARGET_V6)])
async def test_dns_with_the_agents_own_resolver(lab, record_type, value):
    result = await lab.probe("dns", "target.lab.test", {"record_type": record_type}, dns_resolver="system")
    assert result["success"], result
    assert result["data"]["dns"]["resolver"] == "127.0.0.1"
    assert [a["value"] for a in result["data"]["dns"]["answers"]] == [value]


async def test_nxdomain_with_the_agents_own_resolver(lab):
    result = await lab.probe("dns", "missing.lab.test", dns_resolver="system")
    assert (result["success"], result["error_code"], result["data"]["dns"]["rcode"]) == (False, "nxdomain", "NXDOMAIN")


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_a_cluster_internal_name_cannot_be_resolved(lab, protocol):
    # The namespace's resolver answers kubernetes.default.svc.cluster.local, as CoreDNS does in a pod. Even with
    # the agent told to use it ("system"), a check of that name is refused before any query...
    options = {"record_type": "A", "protocol": protocol}
    refused = await lab.probe("dns", "kubernetes.default.svc.cluster.local", options, dns_resolver="system")
    assert (refused["success"], refused["error_code"]) == (False, "target_refused"), refused
    assert "private zone cluster.local" in refused["error"]
    # ... and so is its reverse zone (10.0.0.0/8 is refused by the guard).
    reverse = await lab.probe("dns", "10.96.0.1", {"protocol": protocol}, dns_resolver="system")
    assert (reverse["success"], reverse["error_code"]) == (False, "target_refused"), reverse
    # Only an operator's HOSTCHECK_DNS_PRIVATE_ZONES=true lets it through: the refusal is what stopped it.
    allowed = await lab.probe("dns", "kubernetes.default.svc.cluster.local", options, dns_resolver="system",
                              dns_private_zones=True)
    assert allowed["success"], allowed
    assert [a["value"] for a in allowed["data"]["dns"]["answers"]] == ["10.96.0.1"]


async def test_ping_falls_back_to_a_raw_socket(lab):
    # The target namespace keeps the default ping_group_range ("1 0"): no datagram ICMP sockets; root has raw.
    result = await lab.probe("ping", "127.0.0.1", {"count": 2, "interval_ms": 100}, allow=("127.0.0.0/8",),
                             ns=lab.target)
    assert result["success"], result
    assert result["data"]["ping"]["socket"] == "raw" and result["data"]["ping"]["ttl"] == 64


@pytest.mark.parametrize("check_type", ["ping", "traceroute"])
async def test_icmp_not_permitted_without_privileges(lab, check_type):
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user to run an unprivileged probe as")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot drop privileges for the probe")
    result = await lab.probe(check_type, "127.0.0.1", allow=("127.0.0.0/8",), ns=lab.target, user="nobody")
    assert (result["success"], result["error_code"]) == (False, "icmp_not_permitted"), result
    assert "CAP_NET_RAW" in result["error"]
