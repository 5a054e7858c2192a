"""traceroute over UDP and TCP, mtr over ICMP, UDP and TCP, and ping over TCP across a real two-hop path
(network namespaces; see netlab.py), each compared with the reference tool run in the same namespace:
`traceroute -I/-U/-T`, `mtr --report --json` and iputils `ping`."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from tests.helpers import assert_eventually
from tests.probers.netlab import LOSSY, NO_ROUTE, ROUTER_V4, ROUTER_V6, SILENT, TARGET_V4, TARGET_V6, NetLab

TOOL_FLAGS = {"icmp": ["-I"], "udp": ["-U", "-p", "33434"], "tcp": ["-T", "-p", "80"]}
MTR_FLAGS = {"icmp": [], "udp": ["-u", "-P", "33434"], "tcp": ["-T", "-P", "80"]}


@pytest.fixture(scope="module")
async def lab(tmp_path_factory):
    lab = NetLab(f"hp{os.getpid() % 100000}")
    missing = lab.cannot_create()
    if missing:
        pytest.skip(f"cannot create network namespaces here (needs root / CAP_SYS_ADMIN): {missing}")
    try:
        lab.create(tmp_path_factory.mktemp("netlab") / "dnsmasq.log")
        await assert_eventually(lab.dns_ready, timeout=10, message="dnsmasq answers in the client namespace")
        # Resolve the path's neighbours (IPv6 neighbour discovery on both links) before anything is compared:
        # a fresh link can lose the first packets that wait for it, in whichever tool runs first.
        for target in (TARGET_V4, TARGET_V6):
            await assert_eventually(lambda t=target: lab.ns(lab.client, "ping", "-n", "-c", "1", "-W", "1", t,
                                                            check=False).returncode == 0,
                                    timeout=10, message=f"{target} answers a ping")
        yield lab
    finally:
        lab.delete()


def tool(lab: NetLab, *args: str) -> str:
    if shutil.which(args[0]) is None:
        pytest.skip(f"{args[0]} is not installed (scripts/setup-system.sh installs it)")
    return lab.ns(lab.client, *args).stdout


def traceroute_hops(output: str) -> list[str]:
    """Per hop, the first address `traceroute -n` printed ("*" for none)."""
    hops = []
    for line in output.splitlines()[1:]:
        fields = line.split()
        addresses = [f for f in fields[1:] if re.fullmatch(r"[0-9a-f.:]+", f) and ("." in f or ":" in f)]
        hops.append(addresses[0] if addresses else "*")
    return hops


@pytest.mark.parametrize("protocol", ["icmp", "udp", "tcp"])
@pytest.mark.parametrize(("ip_version", "router", "target"), [(4, ROUTER_V4, TARGET_V4), (6, ROUTER_V6, TARGET_V6)])
async def test_traceroute_agrees_with_traceroute(lab, protocol, ip_version, router, target):
    result = await lab.probe("traceroute", "target.lab.test", {"max_hops": 5, "protocol": protocol},
                             ip_version=ip_version)
    assert result["success"], result
    data = result["data"]["traceroute"]
    assert (data["address"], data["protocol"], data["destination_reached"]) == (target, protocol, True)
    assert data["port"] == {"icmp": 0, "udp": 33434, "tcp": 80}[protocol]
    ours = [h["address"] for h in data["hops"]]
    reference = traceroute_hops(tool(lab, "traceroute", f"-{ip_version}", "-n", "-q", "2", "-m", "5",
                                     *TOOL_FLAGS[protocol], target))
    assert ours == reference == [router, target]
    assert all(len(h["rtts_ms"]) == 2 and h["loss"] == 0 for h in data["hops"])


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_traceroute_to_a_given_port(lab, protocol):
    result = await lab.probe("traceroute", TARGET_V4, {"max_hops": 4, "protocol": protocol, "port": 8443})
    assert result["success"] and result["data"]["traceroute"]["port"] == 8443, result


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_traceroute_silent_hops_and_unreachable(lab, protocol):
    silent = await lab.probe("traceroute", SILENT, {"max_hops": 3, "protocol": protocol}, timeout=2)
    assert (silent["success"], silent["error_code"]) == (False, "max_hops"), silent
    assert [(h["address"], h["loss"]) for h in silent["data"]["traceroute"]["hops"]] == [
        (ROUTER_V4, 0), ("", 1), ("", 1)]
    unreachable = await lab.probe("traceroute", NO_ROUTE, {"max_hops": 5, "protocol": protocol})
    assert (unreachable["success"], unreachable["error_code"]) == (False, "unreachable"), unreachable
    assert [(h["address"], h["unreachable"]) for h in unreachable["data"]["traceroute"]["hops"]] == [
        (ROUTER_V4, ""), (ROUTER_V4, "network unreachable")]


def mtr_report(lab: NetLab, protocol: str, target: str, count: int) -> list[dict]:
    # -G 1: wait 1 s (not 5) for late answers after the last round; answers here take under a millisecond.
    out = tool(lab, "mtr", "--report", "--json", "-n", "-c", str(count), "-i", "0.1", "-G", "1", *MTR_FLAGS[protocol],
               target)
    return json.loads(out)["report"]["hubs"]


@pytest.mark.parametrize("protocol", ["icmp", "udp", "tcp"])
async def test_mtr_agrees_with_mtr(lab, protocol):
    result = await lab.probe("mtr", "target.lab.test", {"count": 5, "interval_ms": 100, "protocol": protocol},
                             ip_version=4, timeout=10)
    assert result["success"], result
    data = result["data"]["mtr"]
    assert (data["address"], data["protocol"], data["count"], data["destination_reached"]) == (
        TARGET_V4, protocol, 5, True)
    reference = mtr_report(lab, protocol, TARGET_V4, 5)
    assert [h["address"] for h in data["hops"]] == [h["host"] for h in reference] == [ROUTER_V4, TARGET_V4]
    for ours, theirs in zip(data["hops"], reference, strict=True):
        assert (ours["sent"], ours["received"], ours["loss_percent"]) == (theirs["Snt"], 5, theirs["Loss%"]) == (
            5, 5, 0)
        assert 0 < ours["best_ms"] <= ours["avg_ms"] <= ours["worst_ms"] < 50
        assert ours["last_ms"] > 0 and ours["stddev_ms"] >= 0 and ours["jitter_avg_ms"] <= ours["jitter_max_ms"]
        # Sub-millisecond paths: both tools' best round trips are within a few milliseconds of each other (the
        # best, not the average: on a busy machine one late wake-up of either process moves an average of 5).
        assert abs(ours["best_ms"] - theirs["Best"]) < 5


async def test_mtr_reports_loss_where_the_router_drops(lab):
    # The router drops each echo request to LOSSY with probability 0.5: the last hop loses some, hop 1 none.
    result = await lab.probe("mtr", LOSSY, {"count": 20, "interval_ms": 100}, timeout=10)
    data = result["data"]["mtr"]
    hops = data["hops"]
    assert [h["address"] for h in hops] == [ROUTER_V4, LOSSY], result
    assert hops[0]["loss_percent"] == 0
    # All 20 lost or none: odds of 2 in a million.
    assert 0 < hops[1]["loss_percent"] < 100 and hops[1]["received"] == 20 - round(hops[1]["loss_percent"] / 5)
    reference = mtr_report(lab, "icmp", LOSSY, 20)
    assert [h["host"] for h in reference] == [ROUTER_V4, LOSSY]
    assert reference[0]["Loss%"] == 0 and 0 < reference[1]["Loss%"] < 100


async def test_mtr_silent_path(lab):
    result = await lab.probe("mtr", SILENT, {"count": 3, "interval_ms": 100, "max_hops": 6}, timeout=5)
    assert (result["success"], result["error_code"]) == (False, "not_reached"), result
    hops = result["data"]["mtr"]["hops"]
    # The router, then one silent hop (as mtr shows "???"), not all six.
    assert [(h["hop"], h["address"], h["loss_percent"]) for h in hops] == [(1, ROUTER_V4, 0), (2, "", 100)]
    assert result["duration_ms"] < 5000


async def test_mtr_with_names(lab):
    result = await lab.probe("mtr", "target.lab.test", {"count": 2, "interval_ms": 100, "resolve_names": True},
                             ip_version=6, timeout=10)
    assert result["success"], result
    assert [(h["address"], h["name"]) for h in result["data"]["mtr"]["hops"]] == [
        (ROUTER_V6, "router.lab.test"), (TARGET_V6, "target.lab.test")]


async def test_tcp_ping_across_the_router_agrees_with_ping(lab):
    # Nothing listens on the target: every SYN is answered by a reset, one round trip like an echo's.
    result = await lab.probe("ping", TARGET_V4, {"count": 4, "interval_ms": 100, "protocol": "tcp", "port": 81})
    data = result["data"]["ping"]
    assert (result["error_code"], data["packets_received"], data["refused"]) == ("refused", 4, 4), result
    out = tool(lab, "ping", "-n", "-c", "4", "-i", "0.1", TARGET_V4)
    icmp_min = float(re.search(r"= ([\d.]+)/[\d.]+/", out).group(1))
    assert "4 received" in out and abs(data["rtt_min_ms"] - icmp_min) < 5


async def test_mtr_needs_a_raw_socket(lab):
    try:
        import pwd

        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user to run an unprivileged probe as")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    result = await lab.probe("mtr", "127.0.0.1", {"count": 1}, allow=("127.0.0.0/8",), ns=lab.target, user="nobody")
    assert (result["success"], result["error_code"]) == (False, "icmp_not_permitted"), result
    assert "CAP_NET_RAW" in result["error"]

