"""dns prober against dnsmasq on loopback serving every record type, NXDOMAIN and NODATA, over udp and tcp;
compared with dig; the agent's default resolver and the refusal of private zones."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time

import pytest
from dns import name as dns_name
from dns import rdata as dns_rdata
from dns import rdataclass, rdatatype

from hostcheck.agent.probers import check_settings, dns
from hostcheck.agent.probers.base import ProbeSettings
from hostcheck.core.config import AgentConfig, ConfigError, load
from hostcheck.core.targets import TargetGuard
from hostcheck.v1 import dns_pb2
from tests.helpers import assert_eventually, free_port, within
from tests.probers.conftest import probe_request, run
from tests.probers.servers import RAW_RECORDS


def opts(resolver: str, record_type: str = "", protocol: str = "") -> dns_pb2.DnsOptions:
    return dns_pb2.DnsOptions(resolver=resolver, record_type=record_type, protocol=protocol)


@pytest.mark.parametrize(("name", "record_type", "expected"), [
    ("www.t.test", "A", [{"name": "www.t.test", "type": "A", "ttl": 300, "value": "127.0.0.10"}]),
    ("www.t.test", "AAAA", [{"name": "www.t.test", "type": "AAAA", "ttl": 300, "value": "::10"}]),
    ("alias.t.test", "CNAME", [{"name": "alias.t.test", "type": "CNAME", "ttl": 300, "value": "www.t.test"}]),
    ("t.test", "MX", [{"name": "t.test", "type": "MX", "ttl": 300, "priority": 10, "exchange": "mail.t.test",
                       "value": "10 mail.t.test"}]),
    ("t.test", "NS", [{"name": "t.test", "type": "NS", "ttl": 300, "value": "ns1.t.test"}]),
    ("t.test", "TXT", [{"name": "t.test", "type": "TXT", "ttl": 300, "value": '"v=spf1 -all"'}]),
    ("multi.t.test", "TXT", [{"name": "multi.t.test", "type": "TXT", "ttl": 300,
                              "value": '"part one" "part two"'}]),
    ("t.test", "SOA", [{"name": "t.test", "type": "SOA", "ttl": 300, "mname": "ns1.t.test",
                        "rname": "hostmaster.t.test", "serial": 2026112801, "refresh": 3600, "retry": 600,
                        "expire": 86400, "minimum": 300,
                        "value": "ns1.t.test hostmaster.t.test 2026112801 3600 600 86400 300"}]),
    ("_http._tcp.t.test", "SRV", [{"name": "_http._tcp.t.test", "type": "SRV", "ttl": 300, "priority": 1,
                                   "weight": 5, "port": 80, "target": "www.t.test",
                                   "value": "1 5 80 www.t.test"}]),
    ("t.test", "CAA", [{"name": "t.test", "type": "CAA", "ttl": 300, "flags": 0, "tag": "issue",
                        "value": '0 issue "ca.t.test"', "caa_value": "ca.t.test"}]),
    ("127.0.0.20", "PTR", [{"name": "20.0.0.127.in-addr.arpa", "type": "PTR", "ttl": 300,
                            "value": "ptr.t.test"}]),
])
@pytest.mark.parametrize("protocol", ["udp", "tcp"])
async def test_every_record_type(dnsmasq, name, record_type, expected, protocol):
    result = await run(dns.probe, probe_request(name, opts(dnsmasq.resolver, record_type, protocol)))
    assert result.success, result
    data = result.data
    assert (data.record_type, data.resolver, data.rcode) == (record_type, dnsmasq.resolver, "NOERROR")
    assert data.protocol == protocol
    assert list(data.answers) == [dns_pb2.DnsRecord(**record) for record in expected]
    assert data.query_ms > 0


async def test_a_query_follows_a_cname(dnsmasq):
    result = await run(dns.probe, probe_request("alias.t.test", opts(dnsmasq.resolver, "A")))
    assert [(a.type, a.value) for a in result.data.answers] == [("CNAME", "www.t.test"),
                                                                         ("A", "127.0.0.10")]


async def test_ip_target_defaults_to_its_reverse_name(dnsmasq):
    result = await run(dns.probe, probe_request("127.0.0.10", opts(dnsmasq.resolver)))
    assert result.success, result
    assert result.data.query == "10.0.0.127.in-addr.arpa" and result.data.record_type == "PTR"
    assert result.data.answers[0].value == "www.t.test"


async def test_nxdomain_is_a_result(dnsmasq):
    result = await run(dns.probe, probe_request("nope.t.test", opts(dnsmasq.resolver, "A")))
    assert (result.success, result.error_code) == (False, "nxdomain")
    assert result.data.rcode == "NXDOMAIN" and not result.data.answers
    assert "nope.t.test" in result.error and result.data.query_ms > 0


async def test_no_records_of_the_type_is_noerror_without_answers(dnsmasq):
    result = await run(dns.probe, probe_request("www.t.test", opts(dnsmasq.resolver, "MX")))
    assert (result.success, result.error_code, result.data.rcode) == (False, "no_answer", "NOERROR")


async def test_every_check_is_a_fresh_lookup(dnsmasq):
    def queries() -> int:
        return dnsmasq.log.read_text().count("query[TXT] fresh.t.test")

    before = queries()
    for _ in range(3):
        await run(dns.probe, probe_request("fresh.t.test", opts(dnsmasq.resolver, "TXT")))
    await assert_eventually(lambda: queries() == before + 3, timeout=5, message="three queries reached dnsmasq")


async def test_resolver_is_guarded(dnsmasq):
    result = await run(dns.probe, probe_request("www.t.test", opts(dnsmasq.resolver), allow=()))
    assert (result.success, result.error_code) == (False, "target_refused")
    assert "127.0.0.0/8" in result.error


async def test_silent_resolver_times_out_within_the_check_timeout():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        started = time.perf_counter()
        result = await run(dns.probe, probe_request(
            "www.t.test", opts(f"127.0.0.1:{silent.getsockname()[1]}"), timeout=0.6))
    assert (result.success, result.error_code) == (False, "timeout"), result
    assert time.perf_counter() - started < within(0.6)


async def test_closed_resolver_port():
    started = time.perf_counter()
    result = await run(dns.probe, probe_request("www.t.test", opts(f"127.0.0.1:{free_port()}"), timeout=1))
    assert not result.success
    # ICMP port unreachable is refused; a lost ICMP message leaves the check to time out.
    assert result.error_code in ("refused", "timeout"), result
    assert time.perf_counter() - started < within(1)


@pytest.mark.parametrize(("target", "options", "code", "message"), [
    ("www.t.test", dns_pb2.DnsOptions(record_type="ANY"), "bad_options", "record type 'ANY' is not one of"),
    ("127.0.0.1", dns_pb2.DnsOptions(record_type="A"), "bad_target", "only a PTR lookup"),
    ("www.t.test", dns_pb2.DnsOptions(resolver="dns.example"), "bad_options", "is not ip or ip:port"),
    ("www.t.test", dns_pb2.DnsOptions(resolver="127.0.0.1:99999"), "bad_options", "out of range"),
])
async def test_bad_input(target, options, code, message):
    result = await run(dns.probe, probe_request(target, options))
    assert (result.success, result.error_code) == (False, code)
    assert message in result.error


def test_resolver_forms():
    assert [str(x) for x in dns.parse_resolver("127.0.0.1")] == ["127.0.0.1", "53"]
    assert [str(x) for x in dns.parse_resolver("127.0.0.1:5353")] == ["127.0.0.1", "5353"]
    assert [str(x) for x in dns.parse_resolver("[::1]:5353")] == ["::1", "5353"]
    assert [str(x) for x in dns.parse_resolver("::1")] == ["::1", "53"]


# ------------------------------------------------------------------------------------ compared with dig

DIG_CASES = [("www.t.test", "A"), ("www.t.test", "AAAA"), ("t.test", "MX"), ("t.test", "TXT"), ("multi.t.test", "TXT"),
             ("t.test", "SOA"), ("_http._tcp.t.test", "SRV"), ("t.test", "CAA"), ("t.test", "NS"),
             *((name, kind) for name, kind, _ in RAW_RECORDS)]


def dig(resolver: str, name: str, record_type: str, *flags: str) -> list[tuple[str, str, int, str]]:
    """dig's answer section as (name, type, ttl, rdata in zone-file form)."""
    host, port = resolver.rsplit(":", 1)
    done = subprocess.run(["dig", f"@{host}", "-p", port, "+noall", "+answer", "+tries=1", "+time=2", *flags,
                           name, record_type], capture_output=True, text=True, timeout=10, check=True)
    out = []
    for line in done.stdout.splitlines():
        owner, ttl, _cls, kind, rdata = line.split(None, 4)
        out.append((owner.rstrip("."), kind, int(ttl), rdata))
    return out


def same_rdata(kind: str, left: str, right: str) -> bool:
    """Equal as records (dig and dnspython split long base64/hex fields differently)."""
    rdtype = rdatatype.from_text(kind)
    return (dns_rdata.from_text(rdataclass.IN, rdtype, left, dns_name.root)
            == dns_rdata.from_text(rdataclass.IN, rdtype, right, dns_name.root))


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (scripts/setup-system.sh: dnsutils)")
@pytest.mark.parametrize("protocol", ["udp", "tcp"])
@pytest.mark.parametrize(("name", "record_type"), DIG_CASES)
async def test_answers_agree_with_dig(dnsmasq, name, record_type, protocol):
    result = await run(dns.probe, probe_request(name, opts(dnsmasq.resolver, record_type, protocol)))
    assert result.success, result
    reference = dig(dnsmasq.resolver, name, record_type, *(["+tcp"] if protocol == "tcp" else []))
    ours = [(a.name, a.type, a.ttl, a.value) for a in result.data.answers]
    assert len(ours) == len(reference) > 0, (ours, reference)
    for (name_a, kind_a, ttl_a, value_a), (name_b, kind_b, ttl_b, value_b) in zip(ours, reference, strict=True):
        assert (name_a, kind_a, ttl_a) == (name_b, kind_b, ttl_b)
        assert same_rdata(kind_a, value_a, value_b), (value_a, value_b)
    if record_type == "TXT":
        assert ours[0][3] == reference[0][3]  # zone-file form, character for character


async def test_queries_over_tcp_arrive_over_tcp(dnsmasq):
    # dnsmasq logs a TCP query's source as a stream; count the queries before and after.
    def queries() -> int:
        return dnsmasq.log.read_text().count("query[AAAA] tcp-only.t.test")

    before = queries()
    result = await run(dns.probe, probe_request("tcp-only.t.test", opts(dnsmasq.resolver, "AAAA", "tcp")))
    assert (result.error_code, result.data.protocol) == ("nxdomain", "tcp")
    await assert_eventually(lambda: queries() == before + 1, timeout=5, message="the query reached dnsmasq")


# ---------------------------------------------------------------- the default resolver and private zones


async def test_without_a_resolver_the_agents_default_is_asked_unguarded(dnsmasq):
    settings = ProbeSettings(dns_resolver=dnsmasq.resolver)
    for protocol in ("udp", "tcp"):
        request = probe_request("www.t.test", dns_pb2.DnsOptions(protocol=protocol), allow=(), settings=settings)
        result = await run(dns.probe, request)
        assert result.success, result
        assert (result.data.resolver, result.data.answers[0].value) == (dnsmasq.resolver, "127.0.0.10")


def test_the_default_resolver_is_public():
    assert ProbeSettings().dns_resolver == "1.1.1.1" == AgentConfig().dns_resolver
    assert not AgentConfig().dns_private_zones


@pytest.mark.parametrize(("target", "record_type", "zone"), [
    ("kubernetes.default.svc.cluster.local", "A", "cluster.local"),
    ("redis.prod.svc.cluster.local.", "SRV", "cluster.local"),
    ("metadata.google.internal", "A", "internal"),
    ("printer.local", "AAAA", "local"),
    ("nas.home.arpa", "A", "home.arpa"),
    ("10.0.0.1", "PTR", "10.0.0.1/32"),
    ("1.168.192.in-addr.arpa", "PTR", "192.168.1.0/24"),
    ("16.172.in-addr.arpa", "SOA", "172.16.0.0/16"),
    ("fd00::1", "PTR", "fd00::1/128"),
    ("127.0.0.20", "PTR", "127.0.0.20/32"),
])
async def test_private_zones_are_refused_before_any_query(dnsmasq, target, record_type, zone):
    def queries() -> list[str]:
        return [line for line in dnsmasq.log.read_text().splitlines() if "query[" in line]

    before = queries()
    for options in (dns_pb2.DnsOptions(record_type=record_type), opts(dnsmasq.resolver, record_type, "tcp")):
        result = await run(dns.probe, probe_request(target, options, allow=(),
                                                    settings=ProbeSettings(dns_resolver=dnsmasq.resolver)))
        assert (result.success, result.error_code) == (False, "target_refused"), result
        assert zone in result.error
    assert queries() == before


async def test_private_zones_when_the_operator_allows_them(dnsmasq):
    settings = ProbeSettings(dns_resolver=dnsmasq.resolver, dns_private_zones=True)

    def queries() -> int:
        return dnsmasq.log.read_text().count("query[A] kubernetes.default.svc.cluster.local")

    before = queries()
    result = await run(dns.probe, probe_request("kubernetes.default.svc.cluster.local", dns_pb2.DnsOptions(),
                                                settings=settings))
    assert result.error_code != "target_refused", result
    # dnsmasq forwards nowhere (--no-resolv): its answer is an error rcode, or none (the check asks twice).
    await assert_eventually(lambda: queries() > before, timeout=5, message="the query reached dnsmasq")


async def test_answers_pointing_to_private_addresses_are_reported(dnsmasq):
    result = await run(dns.probe, probe_request("office.t.test", opts(dnsmasq.resolver, "A"), allow=("127.0.0.0/8",)))
    assert result.success, result
    assert [a.value for a in result.data.answers] == ["10.1.2.3"]


def test_reverse_zones():
    assert str(dns.reverse_network("10.in-addr.arpa")) == "10.0.0.0/8"
    assert str(dns.reverse_network("1.2.168.192.in-addr.arpa.")) == "192.168.2.1/32"
    assert str(dns.reverse_network("d.f.ip6.arpa")) == "fd00::/8"
    assert dns.reverse_network("in-addr.arpa") is None and dns.reverse_network("www.t.test") is None
    assert dns.reverse_network("300.in-addr.arpa") is None
    guard = TargetGuard.from_cidrs(())
    # A reverse zone wider than a private range (192/8 holds public addresses) may be asked.
    assert dns.private_zone_refusal("192.in-addr.arpa", guard) is None
    assert dns.private_zone_refusal("8.8.8.8.in-addr.arpa", guard) is None
    assert dns.private_zone_refusal("www.localhost.example", guard) is None
    assert "10.0.0.0/8" in dns.private_zone_refusal("10.in-addr.arpa", guard)
    assert dns.private_zone_refusal("10.in-addr.arpa", TargetGuard.from_cidrs(["10.0.0.0/8"])) is None


@pytest.mark.parametrize(("env", "message"), [
    ({"HOSTCHECK_DNS_RESOLVER": "dns.google"}, "HOSTCHECK_DNS_RESOLVER='dns.google': 'dns.google' is not ip"),
    ({"HOSTCHECK_DNS_ROOT_SERVERS": "127.0.0.1,a.root"}, "HOSTCHECK_DNS_ROOT_SERVERS: 'a.root' is not ip"),
])
def test_malformed_dns_settings_fail_at_start(env, message):
    # What the agent does at start: its settings from the environment, then each prober's check of them.
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_settings(ProbeSettings.from_config(load(AgentConfig, env)))


def test_dns_settings_from_the_environment():
    settings = ProbeSettings.from_config(load(AgentConfig, {"HOSTCHECK_DNS_RESOLVER": "system",
                                                            "HOSTCHECK_DNS_PRIVATE_ZONES": "true",
                                                            "HOSTCHECK_DNS_ROOT_SERVERS": "127.0.0.1:5300,::1"}))
    check_settings(settings)
    assert settings == ProbeSettings(dns_resolver="system", dns_private_zones=True,
                                     dns_root_servers=("127.0.0.1:5300", "::1"))


@pytest.mark.parametrize(("options", "message"), [
    (dns_pb2.DnsOptions(protocol="quic"), "protocol 'quic' is not one of udp, tcp, tls"),
    (dns_pb2.DnsOptions(trace=True, resolver="127.0.0.1"), "give no resolver"),
    (dns_pb2.DnsOptions(trace=True, protocol="tls"), "udp or tcp, not tls"),
])
async def test_bad_protocol_options(options, message):
    result = await run(dns.probe, probe_request("www.t.test", options))
    assert (result.success, result.error_code) == (False, "bad_options")
    assert message in result.error
