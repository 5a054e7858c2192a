"""dns prober against dnsmasq on loopback serving every record type, NXDOMAIN and NODATA."""

from __future__ import annotations

import socket
import time

import pytest

from hostcheck.agent.probers import dns
from hostcheck.v1 import dns_pb2
from tests.helpers import assert_eventually, free_port
from tests.probers.conftest import probe_request, run


def opts(resolver: str, record_type: str = "") -> dns_pb2.DnsOptions:
    return dns_pb2.DnsOptions(resolver=resolver, record_type=record_type)


@pytest.mark.parametrize(("name", "record_type", "expected"), [
    ("www.t.test", "A", [{"name": "www.t.test", "type": "A", "ttl": 300, "value": "127.0.0.10"}]),
    ("www.t.test", "AAAA", [{"name": "www.t.test", "type": "AAAA", "ttl": 300, "value": "::10"}]),
    ("alias.t.test", "CNAME", [{"name": "alias.t.test", "type": "CNAME", "ttl": 300, "value": "www.t.test"}]),
    ("t.test", "MX", [{"name": "t.test", "type": "MX", "ttl": 300, "priority": 10, "exchange": "mail.t.test",
                       "value": "10 mail.t.test"}]),
    ("t.test", "NS", [{"name": "t.test", "type": "NS", "ttl": 300, "value": "ns1.t.test"}]),
    ("t.test", "TXT", [{"name": "t.test", "type": "TXT", "ttl": 300, "value": "v=spf1 -all"}]),
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
async def test_every_record_type(dnsmasq, name, record_type, expected):
    result = await run(dns.probe, probe_request(name, opts(dnsmasq.resolver, record_type)))
    assert result.success, result
    data = result.data
    assert (data.record_type, data.resolver, data.rcode) == (record_type, dnsmasq.resolver, "NOERROR")
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
    assert time.perf_counter() - started < 0.7


async def test_closed_resolver_port():
    started = time.perf_counter()
    result = await run(dns.probe, probe_request("www.t.test", opts(f"127.0.0.1:{free_port()}"), timeout=1))
    assert not result.success
    # c-ares sees ICMP port unreachable as refused, or gives up on the server as timed out.
    assert result.error_code in ("refused", "timeout"), result
    assert time.perf_counter() - started < 1.1


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
