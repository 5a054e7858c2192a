"""Properties of the dns prober's own udp wire reader (agent/probers/dns.py `_response`, `_read_name`,
`_record`, `_wire_name`): for responses dnspython builds at random (odd owner names, every type the wire
code reads with random data, names compressed or not, TTLs up to 2^32-1, empty answers, authority
sections), the records read equal what dnspython's half of the prober (_dnspython.py, the tcp/tls path)
reads from the same bytes, field for field; and whatever bytes arrive, the reader returns or raises
_BadAnswer, nothing else.

Where dnspython's half and dig print differently, the expectation is dig's (checked against dig 9.18):
- a TTL of 2^31 or more is the wire's number (dnspython's parser makes it 0);
- a CAA record whose tag is empty or not alphanumeric makes the message malformed ("FORMERR").
Both halves print TXT strings and CAA values as dig does (bytes outside printable ASCII as `\\DDD`)
and a DNAME's target without the final dot, as the other names."""

from __future__ import annotations

import io
import struct

import dns.message
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CAA
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.DNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.SRV
import pytest
from hypothesis import HealthCheck, Phase, assume, event, example, given, settings
from hypothesis import strategies as st

from hostcheck.agent.probers import _dnspython
from hostcheck.agent.probers import dns as wire
from hostcheck.v1 import dns_pb2

IN = dns.rdataclass.IN
T = dns.rdatatype
PROPS = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
                 phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink])

# ---------------------------------------------------------------------------------------------- strategies

# Labels: plain, odd bytes (dots, backslashes, quotes, zone-file specials, NUL, high bytes), IDN-ish.
_plain = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12).map(str.encode)
_odd = st.binary(min_size=1, max_size=12)
_special = st.lists(st.sampled_from(list(b'.\\"();@$ \t\x00\xff\x7fAz-')), min_size=1, max_size=6).map(bytes)
_idn = st.text("abcéüñ漢字ß", min_size=1, max_size=6).map(lambda s: b"xn--" + s.encode("punycode")[:50])
_label = st.one_of(_plain, _plain, _odd, _special, _idn)
_suffixes = st.lists(_label, min_size=0, max_size=3)


@st.composite
def names(draw, pool: list[dns.name.Name] | None = None) -> dns.name.Name:
    """A name; often a label or two before a name already drawn (so compression has suffixes to share)."""
    labels = draw(_suffixes)
    if pool and draw(st.booleans()):
        base = draw(st.sampled_from(pool))
        if draw(st.booleans()):  # the same name in other case
            base = dns.name.Name([bytes(lb).swapcase() for lb in base.labels])
        labels = labels[:1]
    else:
        base = dns.name.root
    try:
        name = dns.name.Name(labels).concatenate(base) if labels else base
    except dns.name.NameTooLong:
        name = base
    if pool is not None:
        pool.append(name)
    return name


u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
# TTLs: mostly small, often at the signed/unsigned edges.
ttls = st.one_of(st.integers(0, 86400), st.sampled_from([0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]), u32)
_alnum = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=20)


def rdatas(pool: list[dns.name.Name]) -> st.SearchStrategy[dns.rdata.Rdata]:
    name = names(pool)
    return st.one_of(
        st.ip_addresses(v=4).map(lambda a: dns.rdtypes.IN.A.A(IN, T.A, str(a))),
        st.ip_addresses(v=6).map(lambda a: dns.rdtypes.IN.AAAA.AAAA(IN, T.AAAA, str(a))),
        name.map(lambda n: dns.rdtypes.ANY.CNAME.CNAME(IN, T.CNAME, n)),
        name.map(lambda n: dns.rdtypes.ANY.NS.NS(IN, T.NS, n)),
        name.map(lambda n: dns.rdtypes.ANY.PTR.PTR(IN, T.PTR, n)),
        name.map(lambda n: dns.rdtypes.ANY.DNAME.DNAME(IN, T.DNAME, n)),
        st.builds(lambda p, n: dns.rdtypes.ANY.MX.MX(IN, T.MX, p, n), u16, name),
        st.builds(lambda p, w, o, n: dns.rdtypes.IN.SRV.SRV(IN, T.SRV, p, w, o, n), u16, u16, u16, name),
        st.builds(lambda m, r, *n: dns.rdtypes.ANY.SOA.SOA(IN, T.SOA, m, r, *n), name, name, u32, u32, u32, u32, u32),
        st.lists(st.binary(max_size=255), min_size=1, max_size=4).map(
            lambda s: dns.rdtypes.ANY.TXT.TXT(IN, T.TXT, s)),
        st.builds(lambda f, t, v: dns.rdtypes.ANY.CAA.CAA(IN, T.CAA, f, t.encode(), v),
                  st.integers(0, 255), _alnum, st.binary(max_size=60)),
    )


@st.composite
def sections(draw, pool: list[dns.name.Name], max_rrsets: int) -> list[tuple[dns.name.Name, int, list]]:
    """Rrsets as (owner, ttl, rdatas of one type): at most one per owner and type (dnspython merges others)."""
    out, seen = [], set()
    for _ in range(draw(st.integers(0, max_rrsets))):
        owner = draw(names(pool))
        first = draw(rdatas(pool))
        more = draw(st.lists(rdatas(pool).filter(lambda r, t=first.rdtype: r.rdtype == t), max_size=2))
        key = (owner.canonicalize(), first.rdtype)
        if key in seen:
            continue
        seen.add(key)
        unique: list = []
        for rdata in [first, *more]:
            if rdata not in unique:
                unique.append(rdata)
        out.append((owner, draw(ttls), unique))
    return out


QTYPES = sorted(wire.WIRE_RECORD_TYPES)


def _qname(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True) if name != dns.name.root else "."


def build(query: tuple[bytes, int, bytes], answer, authority, *, compress: bool, rcode: int = 0,
          question_case: bool = False, echo_cookie: bytes | None = None) -> bytes:
    """A response to `query` from the rrsets, each record's owner and data compressed or not."""
    wire_query, question_end, cookie = query
    f = io.BytesIO()
    table: dict | None = {} if compress else None
    question = wire_query[12:question_end]
    if question_case:
        question = question[:-4].swapcase() + question[-4:]
    count = [sum(len(r) for _, _, r in answer), sum(len(r) for _, _, r in authority)]
    opt = echo_cookie is not None
    f.write(wire_query[:2] + struct.pack("!HHHHH", 0x8180 | (rcode & 0xF), 1, *count, int(opt)))
    f.write(question)
    if table is not None:  # the question's name is where later names point
        table[dns.message.from_wire(wire_query).question[0].name] = 12
    for owner, ttl, rdatas_ in (*answer, *authority):
        for rdata in rdatas_:
            owner.to_wire(f, table)
            f.write(struct.pack("!HHIH", rdata.rdtype, IN, ttl, 0))
            at = f.tell()
            rdata.to_wire(f, table)
            end = f.tell()
            f.seek(at - 2)
            f.write(struct.pack("!H", end - at))
            f.seek(end)
    if opt:
        options = struct.pack("!HH", 10, len(echo_cookie)) + echo_cookie if echo_cookie else b""
        f.write(b"\x00\x00\x29" + struct.pack("!HIH", 1232, (rcode >> 4) << 24, len(options)) + options)
    return f.getvalue()


def dig_form(record: dns_pb2.DnsRecord, ttl: int) -> dns_pb2.DnsRecord:
    """dnspython's half's record as dig prints it (see the module's docstring)."""
    out = dns_pb2.DnsRecord()
    out.CopyFrom(record)
    out.ttl = ttl
    return out


def expected(msg: bytes, rrsets) -> list[dns_pb2.DnsRecord]:
    parsed = dns.message.from_wire(msg)
    got = _dnspython._message_records(parsed.answer) + _dnspython._message_records(parsed.authority)
    flat = [(ttl, rdata) for _, ttl, rdatas_ in rrsets for rdata in rdatas_]
    assert len(got) == len(flat)
    # dnspython keeps an rrset's records in the wire's order; our rrsets are written as drawn.
    return [dig_form(record, ttl) for record, (ttl, _) in zip(got, flat, strict=True)]


# ------------------------------------------------------------------------------------------- properties


@PROPS
@given(st.data(), st.sampled_from(QTYPES), st.booleans(), st.booleans(), st.integers(0, 4095))
def test_records_read_as_dnspythons_half_and_dig_read_them(data, qtype, compress, case, rcode):
    pool: list[dns.name.Name] = []
    qname = data.draw(names(pool))
    query = wire._make_query(_qname(qname), qtype)
    answer = data.draw(sections(pool, 4))
    authority = data.draw(sections(pool, 2))
    msg = build(query, answer, authority, compress=compress, rcode=rcode, question_case=case, echo_cookie=query[2])
    response = wire._response(msg, *query)
    assert response is not None
    assert (response.rcode, response.truncated, response.edns) == (rcode, False, True)
    assert list(response.answers) + list(response.authority) == expected(msg, answer + authority)
    assert [r.name.lower() for r in response.answers] == [_qname(o).lower() for o, _, rs in answer for _ in rs]


@PROPS
@given(st.data())
def test_names_go_on_the_wire_as_dnspython_puts_them(data):
    name = data.draw(names([]))
    assume(name != dns.name.root)
    assert wire._wire_name(_qname(name)) == name.to_wire()
    # and read back in the same text
    assert wire._read_name(name.to_wire(), 0) == (_qname(name), len(name.to_wire()))


@PROPS
@given(st.data(), st.sampled_from(QTYPES))
def test_packets_for_another_query_are_dropped(data, qtype):
    pool: list[dns.name.Name] = []
    query = wire._make_query(_qname(data.draw(names(pool))), qtype)
    answer = data.draw(sections(pool, 2))
    good = build(query, answer, [], compress=True, echo_cookie=query[2])
    assert wire._response(good, *query) is not None
    other_id = bytes([good[0] ^ data.draw(st.integers(1, 255))]) + good[1:]
    assert wire._response(other_id, *query) is None
    other_cookie = build(query, answer, [], compress=True, echo_cookie=bytes(b ^ 1 for b in query[2]))
    assert wire._response(other_cookie, *query) is None
    other_type = good[:query[1] - 4] + struct.pack("!H", 1 + wire._TYPE_NUMBERS[qtype] % 250) + good[query[1] - 2:]
    assert wire._response(other_type, *query) is None
    not_a_response = good[:2] + bytes([good[2] & 0x7F]) + good[3:]
    assert wire._response(not_a_response, *query) is None


@PROPS
@given(st.data())
def test_a_caa_tag_other_than_letters_and_digits_is_a_bad_answer(data):
    """dig (FORMERR) and dnspython refuse such a message; so does the wire reader."""
    query = wire._make_query("t.test", "CAA")
    tag = data.draw(st.binary(max_size=12).filter(lambda t: not t.isalnum()))
    value = data.draw(st.binary(max_size=8))
    rdata = b"\x00" + bytes([len(tag)]) + tag + value
    msg = (query[0][:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + query[0][12:query[1]]
           + b"\xc0\x0c" + struct.pack("!HHIH", 257, 1, 300, len(rdata)) + rdata)
    with pytest.raises(dns.exception.DNSException):
        dns.message.from_wire(msg)
    with pytest.raises(wire._BadAnswer):
        wire._response(msg, *query)


def _outcome(msg: bytes, query) -> None:
    """_response returns (a response or None) or raises _BadAnswer; any other exception fails."""
    try:
        response = wire._response(msg, *query)
    except wire._BadAnswer:
        return
    assert response is None or isinstance(response, wire._Response)


@PROPS
@given(st.binary(max_size=600))
@example(b"")
def test_random_bytes_are_an_answer_or_a_bad_answer(blob):
    query = wire._make_query("www.t.test", "A")
    _outcome(blob, query)
    # with the query's ID and question in front, so the reader goes past them
    _outcome(query[0][:2] + b"\x81\x80" + blob[:8].ljust(8, b"\x00") + query[0][12:query[1]] + blob[8:], query)


@PROPS
@given(st.data(), st.sampled_from(QTYPES), st.booleans())
def test_cut_or_mangled_answers_are_an_answer_or_a_bad_answer(data, qtype, compress):
    pool: list[dns.name.Name] = []
    query = wire._make_query(_qname(data.draw(names(pool))), qtype)
    msg = bytearray(build(query, data.draw(sections(pool, 3)), data.draw(sections(pool, 2)), compress=compress,
                          echo_cookie=query[2]))
    for _ in range(data.draw(st.integers(0, 4))):
        at = data.draw(st.integers(query[1], len(msg) - 1))
        msg[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(query[1], len(msg)))
    tc = data.draw(st.booleans())
    if tc:
        msg[2] |= 0x02
    _outcome(bytes(msg[:cut]), query)
    if tc and cut < len(msg):  # cut short by the truncation: what counts is the TC bit
        response = wire._response(bytes(msg[:cut]), *query)
        assert response is None or response.truncated


@PROPS
@given(st.data(), st.sampled_from(QTYPES), st.booleans())
def test_what_dnspython_refuses_as_malformed_is_a_bad_answer(data, qtype, compress):
    """A record's data shorter or longer than its length says, a name running into the next record, a cut
    CAA: dnspython (and dig: FORMERR) refuse the message; the wire reader too (it is not read as records)."""
    pool: list[dns.name.Name] = []
    query = wire._make_query(_qname(data.draw(names(pool))), qtype)
    msg = bytearray(build(query, data.draw(sections(pool, 3)), [], compress=compress))
    assume(len(msg) > query[1])
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(query[1], len(msg) - 1))
        msg[at] = data.draw(st.integers(0, 255))
    blob = bytes(msg)
    try:
        parsed = dns.message.from_wire(blob, ignore_trailing=True)
    except dns.exception.DNSException:
        parsed = None
    try:
        response = wire._response(blob, *query)
    except wire._BadAnswer:
        response = None
    event("dnspython refuses it" if parsed is None else "dnspython reads it")
    if parsed is None and response is not None:  # of the types the reader reads (others: the generic form)
        read = {"A", "AAAA", "NS", "CNAME", "PTR", "DNAME", "MX", "SRV", "SOA", "TXT", "CAA"}
        assert not {r.type for r in (*response.answers, *response.authority)} <= read, response
