"""dns trace: iterative resolution from a local root (tests/probers/dnslab.py), compared with `dig +trace`."""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest

from hostcheck.agent.probers import dns
from hostcheck.agent.probers.base import ProbeSettings
from hostcheck.v1 import dns_pb2
from tests.probers.conftest import probe_request, run
from tests.probers.dnslab import DEAD, LEAF, ROOT, STUB, TLD, DnsLab

SETTINGS = ProbeSettings(dns_root_servers=(ROOT,))


@pytest.fixture(scope="module")
async def lab():
    try:
        lab = await DnsLab().start()
    except OSError as exc:
        pytest.skip(f"cannot serve DNS on port 53 of 127.53.x.x here: {exc}")
    try:
        yield lab
    finally:
        await lab.stop()


def trace(record_type: str = "A", protocol: str = "") -> dns_pb2.DnsOptions:
    return dns_pb2.DnsOptions(trace=True, record_type=record_type, protocol=protocol)


def steps(result) -> list[tuple[str, str, str, str]]:
    return [(s.zone, s.server, s.server_name, s.rcode) for s in result.data.trace]


@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_trace_from_the_root(lab, protocol):
    lab.log.clear()
    result = await run(dns.probe, probe_request("www.trace.test", trace(protocol=protocol), settings=SETTINGS))
    assert result.success, result
    assert steps(result) == [(".", f"{ROOT}:53", "", "NOERROR"), ("test", f"{TLD}:53", "ns.nic.test", "NOERROR"),
                             ("trace.test", f"{LEAF}:53", "ns1.trace.test", "NOERROR")]
    root, tld, leaf = result.data.trace
    assert [(r.name, r.value) for r in root.referral] == [("test", "ns.nic.test")] and not root.answers
    assert [(r.name, r.value) for r in tld.referral] == [("trace.test", "ns1.trace.test")]
    assert [(r.name, r.type, r.value) for r in leaf.answers] == [("www.trace.test", "A", "192.0.2.80")]
    assert [a.value for a in result.data.answers] == ["192.0.2.80"]
    assert (result.data.resolver, result.data.rcode, result.data.protocol) == (f"{LEAF}:53", "NOERROR", protocol)
    assert all(s.query_ms > 0 for s in result.data.trace)
    assert result.data.query_ms >= sum(s.query_ms for s in result.data.trace)
    # Every query went over the protocol asked for, to the three servers in order.
    assert lab.log == [(protocol, ROOT), (protocol, TLD), (protocol, LEAF)]


async def test_trace_to_nxdomain(lab):
    result = await run(dns.probe, probe_request("nope.trace.test", trace(), settings=SETTINGS))
    assert (result.success, result.error_code, result.data.rcode) == (False, "nxdomain", "NXDOMAIN")
    assert [s.rcode for s in result.data.trace] == ["NOERROR", "NOERROR", "NXDOMAIN"]
    assert [r.type for r in result.data.authority] == ["SOA"]


async def test_trace_of_a_multi_string_txt_record(lab):
    result = await run(dns.probe, probe_request("txt.trace.test", trace("TXT"), settings=SETTINGS))
    assert result.success, result
    assert result.data.answers[0].value == '"part one" "part two"'


async def test_trace_tries_the_next_server_of_a_zone(lab):
    result = await run(dns.probe, probe_request("www.fallback.test", trace(), settings=SETTINGS, timeout=5))
    assert result.success, result
    assert [(s.zone, s.server, s.rcode) for s in result.data.trace] == [
        (".", f"{ROOT}:53", "NOERROR"), ("test", f"{TLD}:53", "NOERROR"),
        ("fallback.test", f"{DEAD}:53", ""), ("fallback.test", f"{LEAF}:53", "NOERROR")]
    assert result.data.trace[2].error  # why the first server gave nothing
    assert result.data.answers[0].value == "192.0.2.81"


async def test_trace_resolves_a_name_server_without_glue(lab):
    result = await run(dns.probe, probe_request("www.glueless.test", trace(), settings=SETTINGS))
    assert result.success, result
    # The side lookup of ns.trace.test is not a step of this trace.
    assert [(s.zone, s.server) for s in result.data.trace] == [
        (".", f"{ROOT}:53"), ("test", f"{TLD}:53"), ("glueless.test", f"{LEAF}:53")]
    assert result.data.answers[0].value == "192.0.2.82"


async def test_trace_servers_are_guarded(lab):
    before = len(lab.log)
    result = await run(dns.probe, probe_request("www.trace.test", trace(), settings=SETTINGS, allow=()))
    assert (result.success, result.error_code) == (False, "target_refused"), result
    assert ROOT in result.error and not result.data.trace
    assert len(lab.log) == before  # refused before any packet


async def test_trace_stops_at_its_deadline(lab):
    # The only root is silent (nothing listens): the trace reports the failed step within its time.
    settings = ProbeSettings(dns_root_servers=(DEAD,))
    result = await run(dns.probe, probe_request("www.trace.test", trace(), settings=settings, timeout=0.5))
    assert not result.success and result.error_code in ("refused", "timeout"), result
    assert result.data.trace and result.data.trace[0].server == f"{DEAD}:53" and result.data.trace[0].error


@pytest.mark.skipif(shutil.which("dig") is None or shutil.which("unshare") is None,
                    reason="dig (dnsutils) or unshare (util-linux) is not installed")
@pytest.mark.parametrize(("name", "record_type"), [("www.trace.test", "A"), ("txt.trace.test", "TXT"),
                                                   ("nope.trace.test", "A")])
async def test_trace_agrees_with_dig(lab, tmp_path, name, record_type):
    # dig +trace looks up every name server's address through /etc/resolv.conf: give it the lab's stub
    # (in a private mount namespace), so nothing it does leaves this machine.
    resolv = tmp_path / "resolv.conf"
    resolv.write_text(f"nameserver {STUB}\n")
    proc = await asyncio.create_subprocess_exec(
        "unshare", "--mount", "sh", "-c", f'mount --bind "{resolv}" /etc/resolv.conf && exec dig -4 +trace '
                                          f'+nodnssec +tries=1 +time=2 @{ROOT} {name} {record_type}',
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    # ";; Received 95 bytes from 127.53.1.1#53(a.root.test) in 0 ms": the first is dig's own "NS ." query.
    servers = re.findall(r"^;; Received \d+ bytes from ([\d.]+)#(\d+)", text, re.M)[1:]
    result = await run(dns.probe, probe_request(name, trace(record_type), settings=SETTINGS))
    assert [s.server for s in result.data.trace] == [f"{ip}:{port}" for ip, port in servers], text
    final = [line.split(None, 4) for line in text.splitlines()
             if line and not line.startswith(";") and line.split()[3] == record_type]
    assert [(o.rstrip("."), int(ttl), value) for o, ttl, _c, _t, value in final] == [
        (a.name, a.ttl, a.value) for a in result.data.answers]
    if "NXDOMAIN" in result.data.rcode:
        assert result.error_code == "nxdomain" and not final
