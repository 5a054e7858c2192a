"""The dns prober's own udp wire code (agent/probers/dns.py, `_UdpExchange` and the reader): what goes on
the wire, which packets it drops, how it reads names and records dig prints specially, and what a
malformed answer becomes. A resolver in the test answers each query through a function, so a test
can send what a real resolver would rarely send; dnspython (what dig agrees with, tests/probers/
test_dns.py) builds the answers and is the reference for the records' text."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Callable

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest

from hostcheck.agent.probers import dns as dns_prober
from hostcheck.agent.probers.base import ProbeSettings
from hostcheck.v1 import dns_pb2
from tests.probers.conftest import probe_request, run

Handler = Callable[[bytes], list[bytes]]


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler, log: list[bytes]) -> None:
        self.handler, self.log = handler, log

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.log.append(data)
        for reply in self.handler(data):
            self.transport.sendto(reply, addr)


@contextlib.asynccontextmanager
async def resolver(handler: Handler):
    """A udp resolver on 127.0.0.1 answering each query with handler(query) (any number of packets)."""
    log: list[bytes] = []
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Udp(handler, log), local_addr=("127.0.0.1", 0))
    try:
        yield f"127.0.0.1:{transport.get_extra_info('sockname')[1]}", log
    finally:
        transport.close()


def reply(wire: bytes, *records: tuple[str, str, str], rcode: int = dns.rcode.NOERROR, authority=(),
          edns: bool | None = None) -> dns.message.Message:
    """The response to `wire` with answers (owner, type, rdata in zone-file form); EDNS as the query's unless told."""
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    if edns is False:
        response.use_edns(False)
    response.set_rcode(rcode)
    for owner, kind, text in records:
        response.answer.append(dns.rrset.from_text(owner, 300, "IN", kind, text))
    for owner, kind, text in authority:
        response.authority.append(dns.rrset.from_text(owner, 300, "IN", kind, text))
    return response


def opts(address: str, record_type: str = "A") -> dns_pb2.DnsOptions:
    return dns_pb2.DnsOptions(resolver=address, record_type=record_type)


async def test_the_query_on_the_wire():
    async with resolver(lambda q: [reply(q, ("www.t.test.", "A", "192.0.2.1")).to_wire()]) as (address, log):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address)))
    assert result.success, result
    query = dns.message.from_wire(log[0])
    assert query.flags & dns.flags.RD and not query.flags & dns.flags.QR
    assert [(q.name.to_text(), q.rdtype, q.rdclass) for q in query.question] == [
        ("www.t.test.", dns.rdatatype.A, dns.rdataclass.IN)]
    assert (query.edns, query.payload) == (0, 1232)
    [cookie] = query.options
    assert cookie.otype == dns.edns.OptionType.COOKIE and len(cookie.to_wire()) == 8
    assert (result.data.resolver, result.data.protocol, result.data.rcode) == (address, "udp", "NOERROR")


async def test_every_check_has_its_own_id_cookie_and_socket():
    async with resolver(lambda q: [reply(q, ("www.t.test.", "A", "192.0.2.1")).to_wire()]) as (address, log):
        for _ in range(5):
            assert (await run(dns_prober.probe, probe_request("www.t.test", opts(address)))).success
    queries = [dns.message.from_wire(q) for q in log]
    assert len({q.id for q in queries}) == len({q.options[0].to_wire() for q in queries}) == 5


async def test_packets_that_are_not_the_answer_are_dropped():
    def handler(wire: bytes) -> list[bytes]:
        good = reply(wire, ("www.t.test.", "A", "192.0.2.1"))
        other_id = reply(wire, ("www.t.test.", "A", "192.0.2.66"))
        other_id.id ^= 1
        other_question = dns.message.from_wire(good.to_wire())
        other_question.question[0] = dns.rrset.RRset(dns.name.from_text("evil.t.test."), dns.rdataclass.IN,
                                                     dns.rdatatype.A)
        other_cookie = reply(wire, ("www.t.test.", "A", "192.0.2.67"))
        other_cookie.use_edns(0, payload=1232, options=[dns.edns.CookieOption(b"12345678", b"")])
        return [other_id.to_wire(), other_question.to_wire(), other_cookie.to_wire(), b"\x00" * 5, good.to_wire()]

    async with resolver(handler) as (address, _):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address)))
    assert result.success, result
    assert [a.value for a in result.data.answers] == ["192.0.2.1"]


async def test_the_question_is_matched_without_regard_to_case():
    def handler(wire: bytes) -> list[bytes]:
        response = reply(wire, ("WWW.T.test.", "A", "192.0.2.1"))
        response.question[0] = dns.rrset.RRset(dns.name.from_text("WWW.T.test."), dns.rdataclass.IN, dns.rdatatype.A)
        return [response.to_wire()]

    async with resolver(handler) as (address, _):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address)))
    assert result.success, result
    assert [(a.name, a.value) for a in result.data.answers] == [("WWW.T.test", "192.0.2.1")]


async def test_a_formerr_without_edns_is_asked_again_without_it():
    def handler(wire: bytes) -> list[bytes]:
        query = dns.message.from_wire(wire)
        if query.edns >= 0:
            return [reply(wire, rcode=dns.rcode.FORMERR, edns=False).to_wire()]
        return [reply(wire, ("www.t.test.", "A", "192.0.2.1")).to_wire()]

    async with resolver(handler) as (address, log):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address)))
    assert result.success, result
    assert [dns.message.from_wire(q).edns for q in log] == [0, -1]


async def test_a_formerr_from_a_server_with_edns_is_the_result():
    async with resolver(lambda q: [reply(q, rcode=dns.rcode.FORMERR).to_wire()]) as (address, log):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address)))
    assert (result.success, result.error_code, result.data.rcode) == (False, "formerr", "FORMERR")
    assert len(log) == 1


@pytest.mark.parametrize(("rcode", "code"), [(dns.rcode.SERVFAIL, "servfail"), (dns.rcode.REFUSED, "dns_refused"),
                                             (dns.rcode.NOTIMP, "notimp"), (dns.rcode.NOTAUTH, "dns_error")])
async def test_error_rcodes(rcode, code):
    async with resolver(lambda q: [reply(q, rcode=rcode).to_wire()]) as (address, log):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address)))
    assert (result.success, result.error_code, result.data.rcode) == (False, code, dns.rcode.to_text(rcode))
    assert len(log) == 1  # an answer, not asked again (as dig)


async def test_nxdomain_carries_the_authority_as_over_tcp():
    soa = ("t.test.", "SOA", "ns1.t.test. hostmaster.t.test. 1 3600 600 86400 300")
    async with resolver(lambda q: [reply(q, rcode=dns.rcode.NXDOMAIN, authority=[soa]).to_wire()]) as (address, _):
        result = await run(dns_prober.probe, probe_request("nope.t.test", opts(address)))
    assert (result.success, result.error_code, result.data.rcode) == (False, "nxdomain", "NXDOMAIN")
    assert [(a.name, a.type, a.mname, a.minimum) for a in result.data.authority] == [
        ("t.test", "SOA", "ns1.t.test", 300)]


# Names and data dig prints specially. The reference is dnspython's half of the prober (_dnspython.py:
# what a tcp check reports, compared with dig in test_dns.py), so udp and tcp give the same text; but
# TXT strings and CAA values are as dig prints them (test_dns_wire_props.py).
ODD = [
    ("CNAME", r"we\.ird\\name\"x.t.test."),
    ("CNAME", r"sp\032ace\009tab\255.t.test."),
    ("CNAME", r"at\@semi\;paren\(\)dollar\$.t.test."),
    ("NS", "."),
    ("MX", "0 ."),
    ("SRV", "1 2 3 ."),
    ("SOA", r"ns\.1.t.test. host\@master.t.test. 4294967295 1 2 3 4"),
    ("TXT", r'"quote\" and back\\slash" "" "\195\188n\195\175code"'),
    ("CAA", '128 tbs "Unknown"'),
    ("CAA", r'0 issue "ca\"x\\y\195\169\000;"'),
    ("TXT", r'"\000\255\127~ "'),
    ("PTR", "ptr.t.test."),
    ("AAAA", "::ffff:192.0.2.1"),
    ("AAAA", "2001:db8::1:0:0:1"),
]


@pytest.mark.parametrize(("kind", "text"), ODD)
async def test_odd_records_read_as_the_tcp_path_reads_them(kind, text):
    from hostcheck.agent.probers import _dnspython

    async with resolver(lambda q: [reply(q, ("www.t.test.", kind, text)).to_wire()]) as (address, _):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address)))
    [record] = result.data.answers
    rrset = dns.rrset.from_text("www.t.test.", 300, "IN", kind, text)
    [expected] = _dnspython._records(rrset)
    if kind in ("TXT", "CAA"):  # bytes outside printable ASCII as dig prints them (\DDD), not decoded as UTF-8
        expected.value = rrset[0].to_text()
    assert record == expected


@pytest.mark.parametrize(("kind", "text"), [("DNAME", "elsewhere.test."), ("TYPE65280", r"\# 3 ABCDEF"),
                                             ("RRSIG", "A 13 3 300 20261231000000 20261201000000 12345 t. AAAA")])
async def test_types_the_wire_code_does_not_read_are_in_the_generic_form(kind, text):
    """Only in answers to another type (a DNAME before a CNAME, a signature): RFC 3597's form, as
    `dig +unknownformat` prints it; DNAME's target is read as a name."""
    async with resolver(lambda q: [reply(q, ("www.t.test.", kind, text)).to_wire()]) as (address, _):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address)))
    [record] = result.data.answers
    rdata = dns.rrset.from_text("www.t.test.", 300, "IN", kind, text)[0]
    expected = "elsewhere.test" if kind == "DNAME" else f"\\# {len(rdata.to_wire())} {rdata.to_wire().hex().upper()}"
    assert (record.name, record.type, record.ttl, record.value) == ("www.t.test", kind, 300, expected)


async def test_an_owner_name_with_escapes():
    async with resolver(lambda q: [reply(q, ("www.t.test.", "CNAME", r"a\.b.t.test."),
                                         (r"a\.b.t.test.", "A", "192.0.2.1")).to_wire()]) as (address, _):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address)))
    assert [(a.name, a.type, a.value) for a in result.data.answers] == [
        ("www.t.test", "CNAME", r"a\.b.t.test"), (r"a\.b.t.test", "A", "192.0.2.1")]


def _header(wire: bytes, ancount: int) -> bytes:
    """The query's header as a response's with `ancount` answers and no EDNS."""
    qid = wire[:2]
    return qid + struct.pack("!HHHHH", 0x8180, 1, ancount, 0, 0)


def _question(wire: bytes) -> bytes:
    end = 12
    while wire[end]:
        end += wire[end] + 1
    return wire[12:end + 5]


@pytest.mark.parametrize("answer", [
    b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\x7f",  # the A record's data cut short
    b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x03\x7f\x00\x00",  # an A record of 3 bytes
    b"\xc0\x30\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\x7f\x00\x00\x01",  # a pointer forwards
    b"\x03www\xc0\x0c\x00",  # a name then nothing
])
async def test_a_malformed_answer_is_a_dns_error(answer):
    def handler(wire: bytes) -> list[bytes]:
        return [_header(wire, 1) + _question(wire) + answer]

    async with resolver(handler) as (address, _):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address), timeout=1))
    assert (result.success, result.error_code) == (False, "dns_error"), result
    assert "bad answer" in result.error and result.data.query_ms > 0


async def test_a_compression_loop_ends():
    def handler(wire: bytes) -> list[bytes]:
        question = _question(wire)
        loop_at = 12 + len(question)  # the answer's owner points at itself
        return [_header(wire, 1) + question + struct.pack("!H", 0xC000 | loop_at) + b"\x00\x01\x00\x01" + bytes(6)]

    async with resolver(handler) as (address, _):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address), timeout=1))
    assert (result.success, result.error_code) == (False, "dns_error"), result


def test_names_in_wire_form():
    assert dns_prober._wire_name("www.t.test") == b"\x03www\x01t\x04test\x00"
    assert dns_prober._wire_name(r"a\.b.t\032x") == b"\x03a.b\x03t x\x00"
    assert dns_prober._wire_name("") == dns_prober._wire_name(".") == b"\x00"
    for bad in ("a" * 64 + ".t.test", ".".join(["abcdefghi"] * 26), "a..b", ".a"):
        # The target parser refuses such names before; the wire code refuses them too.
        with pytest.raises(ValueError):
            dns_prober._wire_name(bad)


async def test_the_system_resolver_is_the_first_nameserver_of_resolv_conf(tmp_path, monkeypatch):
    async with resolver(lambda q: [reply(q, ("www.t.test.", "A", "192.0.2.1")).to_wire()]) as (address, log):
        host, port = address.rsplit(":", 1)
        conf = tmp_path / "resolv.conf"
        conf.write_text(f"# a comment\nsearch t.test\nnameserver {host}\nnameserver 192.0.2.53\n")
        monkeypatch.setattr(dns_prober, "_RESOLV_CONF", str(conf))
        monkeypatch.setattr(dns_prober, "DEFAULT_PORT", int(port))  # the test resolver's port stands for 53
        request = probe_request("www.t.test", dns_pb2.DnsOptions(), allow=(),
                                settings=ProbeSettings(dns_resolver="system"))
        result = await run(dns_prober.probe, request)
    assert result.success, result
    assert result.data.resolver == host  # without its port, as c-ares's list gave it
    assert len(log) == 1


async def test_a_ttl_of_2_to_the_31_or_more_is_as_it_came_as_dig_prints_it():
    """dnspython's parser makes such a TTL 0 (RFC 2181 §8); dig 9.18 prints the wire's number, and so do we."""
    def handler(wire: bytes) -> list[bytes]:
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 0x80000000, 4) + bytes([192, 0, 2, 1])
        return [_header(wire, 1) + _question(wire) + answer]

    async with resolver(handler) as (address, _):
        result = await run(dns_prober.probe, probe_request("www.t.test", opts(address)))
    assert [(a.ttl, a.value) for a in result.data.answers] == [(0x80000000, "192.0.2.1")]
