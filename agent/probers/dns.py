"""dns: one query of one record type to a resolver over udp, tcp or tls, or a trace from the root servers.

Two ways to ask, each for what it does well:
- Our own wire code for plain queries: over udp, of the common types (A, AAAA, CNAME, MX, NS,
  SOA, PTR, SRV, CAA, TXT). Each check builds its query (a random ID, recursion desired, EDNS(0)
  with a 1232-byte payload and a fresh client cookie, as c-ares sent it) and sends it from a fresh
  connected udp socket that the agent's event loop watches (`_UdpExchange`): asked again on the
  same socket when half the check's time is up (TRIES), again over a fresh tcp connection when the
  answer comes truncated, again without EDNS after a FORMERR from a server without it. A packet
  with another ID, question or client cookie is dropped and the check waits on. Answers are read
  into records in dig's zone-file form (names without the final dot; `\\.` and `\\DDD` escapes as
  dig prints them; TXT strings each quoted). This replaced c-ares (pycares), whose channel made and
  destroyed per check (a channel caches answers; a fresh lookup per check) was over half a dns
  check's CPU and ~0.7 MB of the agent's RSS (issue 17, docs/benchmarks.md).
- dnspython for the rest: TCP as the transport and DNS over TLS (with the resolver's certificate
  verified), the trace (queries without recursion to each authoritative server, reading the
  referrals), and the record types we do not read ourselves (DNSKEY, DS, HTTPS, SVCB, NAPTR, TLSA,
  SSHFP). That half is _dnspython.py, imported by the first check that needs it: an agent whose
  dns checks are all plain udp ones never loads dnspython (~3-4 MB of RSS; issue 17).

Where the packets go: the resolver the check names (the guard applies to it, as to any
target: a 127.0.0.1 resolver needs 127.0.0.0/8 allowed), else the agent's default
resolver (HOSTCHECK_DNS_RESOLVER, a public one unless the operator says otherwise, not
guarded: the operator chose it). The agent's own resolver is used only when the operator
sets "system": in a Kubernetes pod it is the cluster's DNS. Names of private zones
(cluster.local, internal, local, ... and reverse zones of ranges the guard refuses) are
refused whatever the resolver unless the operator allows them (HOSTCHECK_DNS_PRIVATE_ZONES):
an agent must not become a window onto its own network. Answers that point to private
addresses are reported as they are.

An IP target is looked up by its reverse name (PTR). An answer with an error rcode
(NXDOMAIN, SERVFAIL, ...) is a result with that rcode, not a crash.
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, ProbeSettings, budget, ms
from hostcheck.core.checktypes import dns as spec
from hostcheck.core.checktypes.dns import DEFAULT_PORT, DEFAULT_TLS_PORT, RECORD_TYPES, WIRE_RECORD_TYPES
from hostcheck.core.config import ConfigError
from hostcheck.core.targets import IPAddress, TargetGuard
from hostcheck.v1 import dns_pb2

# c-ares retries a silent server once within the check's time.
TRIES = 2
# The agent's own resolver, as HOSTCHECK_DNS_RESOLVER's value.
SYSTEM = "system"
# A trace follows at most this many referrals, and resolves a glueless name server's address at
# most this deep (each such lookup is a trace of its own from the root).
MAX_STEPS = 16
MAX_GLUELESS_DEPTH = 2
# One server of a trace gets at most this long before the next of its zone is tried.
SERVER_TIMEOUT = 1.0

# dnspython's half of the prober: tcp, tls, the trace, the types c-ares does not parse (and TXT).
_PYTHON_HALF = "hostcheck.agent.probers._dnspython"
_python: ModuleType | None = None  # the module, once imported (complete)

# The IANA root servers (a-m.root-servers.net; https://www.iana.org/domains/root/servers).
ROOT_SERVERS_V4 = ("198.41.0.4", "170.247.170.2", "192.33.4.12", "199.7.91.13", "192.203.230.10", "192.5.5.241",
                   "192.112.36.4", "198.97.190.53", "192.36.148.17", "192.58.128.30", "193.0.14.129",
                   "199.7.83.42", "202.12.27.33")
ROOT_SERVERS_V6 = ("2001:503:ba3e::2:30", "2801:1b8:10::b", "2001:500:2::c", "2001:500:2d::d", "2001:500:a8::e",
                   "2001:500:2f::f", "2001:500:12::d0d", "2001:500:1::53", "2001:7fe::53", "2001:503:c27::2:30",
                   "2001:7fd::1", "2001:500:9f::42", "2001:dc3::35")

# Zones that exist only inside a network (RFC 6761/6762/8375, Kubernetes, cloud providers' internal DNS).
PRIVATE_ZONES = ("cluster.local", "internal", "local", "localhost", "localdomain", "home.arpa", "lan", "intranet",
                 "corp", "private")

# The types our own wire code reads (plain udp queries); the others are dnspython's (_dnspython.py).
_WIRE_TYPES = frozenset(WIRE_RECORD_TYPES)
# The agent's own resolver's configuration ("system"), read per check as c-ares did.
_RESOLV_CONF = "/etc/resolv.conf"

# An rcode other than NOERROR -> our error code.
_RCODE_ERRORS = {"NXDOMAIN": "nxdomain", "SERVFAIL": "servfail", "REFUSED": "dns_refused", "FORMERR": "formerr",
                 "NOTIMP": "notimp"}


def parse_resolver(value: str, default_port: int = DEFAULT_PORT) -> tuple[IPAddress, int]:
    """`ip`, `ip:port` or `[v6]:port` -> (ip, port)."""
    try:
        return spec.parse_resolver(value, default_port)
    except ValueError as exc:
        raise ProbeError("bad_options", f"resolver {exc}") from exc


def check_settings(settings: ProbeSettings) -> None:
    """The agent's dns settings, checked at its start (probers.check_settings): a malformed one is a ConfigError."""
    if settings.dns_resolver != SYSTEM:
        try:
            spec.parse_resolver(settings.dns_resolver)
        except ValueError as exc:
            raise ConfigError(f"HOSTCHECK_DNS_RESOLVER={settings.dns_resolver!r}: {exc}; "
                              f"or '{SYSTEM}' for the agent's own") from exc
    for server in settings.dns_root_servers:
        try:
            spec.parse_resolver(server)
        except ValueError as exc:
            raise ConfigError(f"HOSTCHECK_DNS_ROOT_SERVERS: {exc}") from exc


@lru_cache(maxsize=1024)
def _address(host: str) -> IPAddress | None:
    """The target's address, or None for a name (Target.ip parses it anew: ~10 us, two ValueErrors for a name)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _query(request: ProbeRequest) -> tuple[str, str]:
    """(name to look up, record type)."""
    target_ip = _address(request.target.host)
    record_type = (request.options.record_type or ("PTR" if target_ip is not None else "A")).upper()
    if record_type not in RECORD_TYPES:
        raise ProbeError("bad_options", f"record type {record_type!r} is not one of {', '.join(RECORD_TYPES)}")
    if target_ip is None:
        return request.target.host.rstrip("."), record_type
    if record_type != "PTR":
        raise ProbeError("bad_target", f"{target_ip} is an address: only a PTR lookup makes sense for it")
    return target_ip.reverse_pointer, record_type


def reverse_network(name: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The addresses a reverse name covers (`10.in-addr.arpa` -> 10.0.0.0/8), or None for another name."""
    labels = name.lower().rstrip(".").split(".")
    try:
        if labels[-2:] == ["in-addr", "arpa"] and 1 <= len(labels) - 2 <= 4:
            octets = [int(o) for o in reversed(labels[:-2])]
            if not all(0 <= o <= 255 for o in octets):
                return None
            return ipaddress.IPv4Network((bytes(octets + [0] * (4 - len(octets))), 8 * len(octets)))
        if labels[-2:] == ["ip6", "arpa"] and 1 <= len(labels) - 2 <= 32:
            nibbles = "".join(reversed(labels[:-2]))
            if not all(len(n) == 1 for n in labels[:-2]):
                return None
            value = int(nibbles.ljust(32, "0"), 16)
            return ipaddress.IPv6Network((value, 4 * len(nibbles)))
    except ValueError:
        return None
    return None


def private_zone_refusal(name: str, guard: TargetGuard) -> str | None:
    """Why looking `name` up would reveal the agent's own network, or None."""
    lowered = name.lower().rstrip(".")
    for zone in PRIVATE_ZONES:
        if lowered == zone or lowered.endswith("." + zone):
            return f"{name} is in the private zone {zone}, refused by default"
    network = reverse_network(lowered)
    if network is not None:
        # Refused when the guard refuses every address of it: a CIDR inside a refused range.
        first, last = network[0], network[-1]
        reason = guard.refusal(first)
        if reason and guard.refusal(last):
            return f"{name} is the reverse zone of {network}: {reason.replace(str(first), 'its addresses', 1)}"
    return None


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """The system's trust roots (SSL_CERT_FILE respected), built once: a context costs ~40 ms of CPU."""
    return ssl.create_default_context()


@dataclass(frozen=True)
class _Server:
    ip: IPAddress
    port: int

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if self.ip.version == 6 else f"{self.ip}:{self.port}"


# What a check parses or judges the same way each time, kept by its text (each ~4-7 us a check; issue 17).
_server_text = lru_cache(maxsize=1024)(str)
_zone_refusal = lru_cache(maxsize=1024)(private_zone_refusal)


@lru_cache(maxsize=1024)
def _resolver(value: str, default_port: int) -> _Server:
    return _Server(*parse_resolver(value, default_port))


@lru_cache(maxsize=1024)
def _resolver_refusal(guard: TargetGuard, ip: IPAddress) -> str | None:
    return guard.refusal(ip)


def _default_resolver(settings: ProbeSettings, default_port: int) -> _Server | None:
    """The agent's default resolver; None: the system's (/etc/resolv.conf, read per check)."""
    if settings.dns_resolver == SYSTEM:
        return None
    return _resolver(settings.dns_resolver, default_port)


async def prepare(request: ProbeRequest) -> bool:
    """What this check loads the first time (probers.prepare): dnspython's half, and the DoT context.
    True when it loaded something."""
    try:
        _name, record_type = _query(request)
    except ProbeError:
        return False  # the probe says what is wrong
    options = request.options
    protocol = (options.protocol or "udp").lower()
    if not options.trace and protocol == "udp" and record_type in _WIRE_TYPES:
        return False
    loaded = _python is None
    await _python_half()
    if protocol == "tls" and not options.trace:
        misses = _tls_context.cache_info().misses
        _tls_context()
        loaded = loaded or _tls_context.cache_info().misses != misses
    return loaded


async def probe(request: ProbeRequest) -> ProbeResult:
    started = time.perf_counter()
    name, record_type = _query(request)
    options = request.options
    protocol = (options.protocol or "udp").lower()
    if protocol not in spec.PROTOCOLS:
        raise ProbeError("bad_options", f"protocol {protocol!r} is not one of {', '.join(spec.PROTOCOLS)}")
    if not request.settings.dns_private_zones:
        reason = _zone_refusal(name, request.guard)
        if reason:
            raise ProbeError("target_refused", reason)
    if options.trace:
        if options.resolver:
            raise ProbeError("bad_options", "a trace starts at the root servers: give no resolver")
        if protocol == "tls":
            raise ProbeError("bad_options", "a trace asks authoritative servers: udp or tcp, not tls")
        return await (await _python_half()).trace_probe(request, name, record_type, protocol, started)
    default_port = DEFAULT_TLS_PORT if protocol == "tls" else DEFAULT_PORT
    server: _Server | None
    if options.resolver:
        server = _resolver(options.resolver, default_port)
        reason = _resolver_refusal(request.guard, server.ip)
        if reason:
            raise ProbeError("target_refused", f"resolver {options.resolver}: {reason}", resolver=options.resolver)
    else:
        server = _default_resolver(request.settings, default_port)
    if protocol == "udp" and record_type in _WIRE_TYPES:
        return await _udp_probe(request, name, record_type, server, started)
    python = await _python_half()
    if server is None:
        server = python.system_resolver(default_port)
    return await python.python_probe(request, name, record_type, protocol, server, started)


async def _python_half() -> ModuleType:
    """dnspython's half of the prober (_dnspython.py), imported by the first check that needs it, before
    that check's clock starts (the query's time is taken after it), on a thread so the event loop (other
    checks' timings) is not stalled for the import."""
    global _python
    if _python is None:  # two first checks at once: both threads import, the second waits for the first
        _python = await asyncio.to_thread(importlib.import_module, _PYTHON_HALF)
    return _python


# ---- plain udp queries: our own wire code on a fresh socket per check --------------------------------


def _wire_name(name: str) -> bytes:
    """A name in wire form (`\\.` and `\\DDD` escapes as c-ares and dig read them); ValueError when it
    cannot be one (an empty label, a label over 63 bytes, over 255 in all)."""
    if name in ("", "."):
        return b"\x00"
    labels: list[bytes]
    if "\\" not in name:
        labels = [label.encode("ascii", "strict") if label.isascii() else label.encode("idna")
                  for label in name.split(".")]
    else:
        labels = []
        label, i = bytearray(), 0
        while i < len(name):
            c = name[i]
            if c == "\\" and name[i + 1:i + 4].isdigit() and len(name[i + 1:i + 4]) == 3:
                label.append(int(name[i + 1:i + 4]) & 0xFF)
                i += 4
                continue
            if c == "\\" and i + 1 < len(name):
                label.extend(name[i + 1].encode())
                i += 2
                continue
            if c == ".":
                labels.append(bytes(label))
                label = bytearray()
            else:
                label.extend(c.encode())
            i += 1
        labels.append(bytes(label))
    out = bytearray()
    for part in labels:
        if not 0 < len(part) <= 63:
            raise ValueError(f"not a name that can be looked up (label {part!r})")
        out.append(len(part))
        out += part
    out.append(0)
    if len(out) > 255:
        raise ValueError("over 255 bytes as a DNS name")
    return bytes(out)


# Record types by number, as dig names them (others: TYPEnnn).
_TYPE_NAMES = {1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 28: "AAAA",
               33: "SRV", 35: "NAPTR", 39: "DNAME", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 50: "NSEC3",
               52: "TLSA", 44: "SSHFP", 64: "SVCB", 65: "HTTPS", 99: "SPF", 257: "CAA"}
_TYPE_NUMBERS = {name: number for number, name in _TYPE_NAMES.items()}
# Response codes by number (RCODE with EDNS's extended bits), as dig names them.
_RCODE_NAMES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED", 6: "YXDOMAIN",
                7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS", 23: "BADCOOKIE"}
# A label byte printed as itself in a name; the others escaped as dig and dnspython do (`\\.`, `\\DDD`).
_ESCAPED = b'"().;\\@$'
_LABEL_TEXT = tuple(
    ("\\" + chr(c)) if c in _ESCAPED else chr(c) if 0x20 < c < 0x7F else f"\\{c:03d}" for c in range(256))
_PLAIN = bytes(c for c in range(0x21, 0x7F) if c not in _ESCAPED)
# A byte of a TXT string or CAA value as dig prints it: `\"` and `\\`, bytes outside printable ASCII
# as `\DDD` (not decoded as UTF-8: dig prints the bytes).
_STRING_TEXT = tuple(("\\" + chr(c)) if c in b'"\\' else chr(c) if 0x20 <= c < 0x7F else f"\\{c:03d}"
                     for c in range(256))
_STRING_PLAIN = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')
# EDNS(0) as c-ares sends it: 1232 bytes of udp payload, and a client cookie (RFC 7873) fresh per check.
_EDNS_PAYLOAD = 1232
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_OPT_COOKIE = 10


class _BadAnswer(Exception):
    """The response is not a well-formed DNS message."""


def _read_name(msg: bytes, offset: int) -> tuple[str, int]:
    """(the name at `offset` in zone-file form without the final dot, "." for the root; the offset after it).
    Compression pointers must point backwards (no loops)."""
    labels: list[str] = []
    end = -1
    size = 0
    limit = offset
    while True:
        if offset >= len(msg):
            raise _BadAnswer("a name runs past the message's end")
        length = msg[offset]
        if length == 0:
            offset += 1
            break
        if length >= 0xC0:
            if offset + 1 >= len(msg):
                raise _BadAnswer("a name runs past the message's end")
            pointer = ((length & 0x3F) << 8) | msg[offset + 1]
            if pointer >= limit:
                raise _BadAnswer("a name's compression pointer does not point backwards")
            if end < 0:
                end = offset + 2
            offset = limit = pointer
            continue
        if length > 63:
            raise _BadAnswer(f"a label of unknown kind (0x{length:02x})")
        label = msg[offset + 1:offset + 1 + length]
        if len(label) != length:
            raise _BadAnswer("a name runs past the message's end")
        size += length + 1
        if size > 255:
            raise _BadAnswer("a name over 255 bytes")
        labels.append(label.decode("ascii") if not label.translate(None, _PLAIN)
                      else "".join(_LABEL_TEXT[c] for c in label))
        offset += 1 + length
    return (".".join(labels) if labels else "."), (end if end >= 0 else offset)


def _txt_strings(rdata: bytes) -> str:
    """TXT strings in zone-file form as dig prints them: each quoted, `"` and `\\` escaped, other bytes outside
    printable ASCII as `\\DDD` (as _dnspython's records, by dnspython's to_text)."""
    out, i = [], 0
    while i < len(rdata):
        n = rdata[i]
        raw = rdata[i + 1:i + 1 + n]
        if len(raw) != n:
            raise _BadAnswer("a TXT string runs past its record")
        out.append(f'"{_string_text(raw)}"')
        i += 1 + n
    return " ".join(out)


def _ends_at(at: int, end: int, kind: str) -> None:
    """A record's data must end where its length says (dig: FORMERR; dnspython refuses it too): a name
    running past it would be read from the next record."""
    if at != end:
        raise _BadAnswer(f"a {kind} record's data is not as long as its length says")


def _string_text(raw: bytes) -> str:
    """A character-string's bytes as dig prints them between quotes."""
    return raw.decode("ascii") if not raw.translate(None, _STRING_PLAIN) else "".join(_STRING_TEXT[c] for c in raw)


def _record(msg: bytes, offset: int) -> tuple[dns_pb2.DnsRecord | None, int]:
    """(the resource record at `offset` as a DnsRecord, None for EDNS's OPT; the offset after it)."""
    name, offset = _read_name(msg, offset)
    if offset + 10 > len(msg):
        raise _BadAnswer("a record runs past the message's end")
    rtype, _rclass, ttl, rdlength = _RR.unpack_from(msg, offset)
    start = offset + 10
    end = start + rdlength
    if end > len(msg):
        raise _BadAnswer("a record's data runs past the message's end")
    if rtype == 41:
        return None, end
    out = dns_pb2.DnsRecord(name=name, type=_TYPE_NAMES.get(rtype) or f"TYPE{rtype}",
                            ttl=ttl)  # 2^31 or more as it came, as dig prints it (dnspython: 0)
    try:
        if rtype == 1:
            if rdlength != 4:
                raise _BadAnswer("an A record of other than 4 bytes")
            out.value = socket.inet_ntop(socket.AF_INET, msg[start:end])
        elif rtype == 28:
            if rdlength != 16:
                raise _BadAnswer("an AAAA record of other than 16 bytes")
            out.value = socket.inet_ntop(socket.AF_INET6, msg[start:end])
        elif rtype in (2, 5, 12, 39):  # NS, CNAME, PTR, DNAME
            out.value, at = _read_name(msg, start)
            _ends_at(at, end, out.type)
        elif rtype == 15:
            if rdlength < 3:
                raise _BadAnswer("an MX record's data is cut short")
            priority = int.from_bytes(msg[start:start + 2])
            exchange, at = _read_name(msg, start + 2)
            _ends_at(at, end, "MX")
            out.priority, out.exchange, out.value = priority, exchange, f"{priority} {exchange}"
        elif rtype == 33:
            if rdlength < 7:
                raise _BadAnswer("an SRV record's data is cut short")
            priority, weight, port = struct.unpack_from("!HHH", msg, start)
            target, at = _read_name(msg, start + 6)
            _ends_at(at, end, "SRV")
            out.priority, out.weight, out.port, out.target = priority, weight, port, target
            out.value = f"{priority} {weight} {port} {target}"
        elif rtype == 6:
            mname, at = _read_name(msg, start)
            rname, at = _read_name(msg, at)
            if at + 20 != end:  # dig and dnspython: the data must end where its length says
                raise _BadAnswer("an SOA record's data is not as long as its length says")
            numbers = struct.unpack_from("!IIIII", msg, at)
            out.mname, out.rname = mname, rname
            out.serial, out.refresh, out.retry, out.expire, out.minimum = numbers
            out.value = " ".join(map(str, (mname, rname, *numbers)))
        elif rtype == 257:
            flags, tag_length = msg[start], msg[start + 1]
            raw_tag = msg[start + 2:start + 2 + tag_length]
            if start + 2 + tag_length > end or not raw_tag.isalnum():  # dig: FORMERR; dnspython refuses it too
                raise _BadAnswer("a CAA record whose tag is not letters and digits")
            raw_value = msg[start + 2 + tag_length:end]
            tag = raw_tag.decode("ascii")
            out.flags, out.tag, out.caa_value = flags, tag, raw_value.decode("utf-8", "replace")
            out.value = f'{flags} {tag} "{_string_text(raw_value)}"'  # the value as dig prints it
        elif rtype == 16:
            out.value = _txt_strings(msg[start:end])
        else:  # RFC 3597's form for data we do not read, as dig prints an unknown type
            out.value = f"\\# {rdlength} {msg[start:end].hex().upper()}" if rdlength else "\\# 0"
    except (IndexError, struct.error) as exc:
        raise _BadAnswer(f"a {out.type} record's data is cut short") from exc
    return out, end


@dataclass
class _Response:
    rcode: int
    truncated: bool
    answers: list[dns_pb2.DnsRecord]
    authority: list[dns_pb2.DnsRecord]
    edns: bool  # the response has an OPT record


def _response(msg: bytes, query: bytes, question_end: int, cookie: bytes) -> _Response | None:
    """The answer to `query`, or None for a packet that is not one (another ID, another question, another
    client cookie: dropped, as c-ares drops them, and the check waits on)."""
    if len(msg) < 12 or msg[:2] != query[:2] or not msg[2] & 0x80:
        return None
    _qid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(msg)
    if qdcount != 1 or msg[12:question_end].lower() != query[12:question_end].lower():
        return None  # c-ares compares the question case-insensitively too
    truncated = bool(flags & 0x0200)
    rcode = flags & 0x0F
    offset = question_end
    answers: list[dns_pb2.DnsRecord] = []
    authority: list[dns_pb2.DnsRecord] = []
    edns = False
    try:
        for i in range(ancount + nscount + arcount):
            if i >= ancount + nscount:  # the additional section: only EDNS's OPT matters
                _, offset = _read_name(msg, offset)
                if offset + 10 > len(msg):
                    raise _BadAnswer("a record runs past the message's end")
                rtype, _rclass, ttl, rdlength = _RR.unpack_from(msg, offset)
                offset += 10 + rdlength
                if offset > len(msg):
                    raise _BadAnswer("a record's data runs past the message's end")
                if rtype == 41:
                    edns = True
                    rcode |= (ttl >> 24) << 4
                    if not _cookie_matches(msg[offset - rdlength:offset], cookie):
                        return None
                continue
            record, offset = _record(msg, offset)
            if record is not None:  # an OPT outside the additional section is not kept
                (answers if i < ancount else authority).append(record)
    except _BadAnswer:
        if truncated:  # cut short by the truncation: what counts is the TC bit
            return _Response(rcode, True, [], [], edns)
        raise
    return _Response(rcode, truncated, answers, authority, edns)


def _cookie_matches(options: bytes, cookie: bytes) -> bool:
    """False when the OPT echoes a client cookie other than ours (RFC 7873: an off-path answer)."""
    i = 0
    while i + 4 <= len(options):
        code, length = struct.unpack_from("!HH", options, i)
        if code == _OPT_COOKIE and cookie and options[i + 4:i + 12] != cookie:
            return False
        i += 4 + length
    return True


def _make_query(name: str, record_type: str, *, edns: bool = True) -> tuple[bytes, int, bytes]:
    """(the query with a random ID and recursion desired, where its question ends, the client cookie)."""
    rand = os.urandom(10)
    question = _wire_name(name) + struct.pack("!HH", _TYPE_NUMBERS[record_type], 1)
    header = rand[:2] + (b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01" if edns else b"\x01\x00\x00\x01" + bytes(6))
    if not edns:
        return header + question, 12 + len(question), b""
    cookie = rand[2:]
    opt = b"\x00\x00\x29" + struct.pack("!HIHHH", _EDNS_PAYLOAD, 0, 12, _OPT_COOKIE, 8) + cookie
    return header + question + opt, 12 + len(question), cookie


class _UdpExchange:
    """One query on a fresh connected udp socket watched by the running loop; asked again on the
    same socket when the try's share of the time is up (TRIES), without EDNS after a FORMERR to it."""

    def __init__(self, server: _Server, name: str, record_type: str, query: tuple[bytes, int, bytes],
                 try_timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.name, self.record_type = name, record_type
        self.query, self.question_end, self.cookie = query
        self.future: asyncio.Future[_Response] = self.loop.create_future()
        self.try_timeout = try_timeout
        self.tries = 1
        self.timer: asyncio.TimerHandle | None = None
        self.sock = socket.socket(socket.AF_INET6 if server.ip.version == 6 else socket.AF_INET, socket.SOCK_DGRAM)
        self.fd = -1
        try:
            self.sock.setblocking(False)
            self.sock.connect((str(server.ip), server.port))
            self.fd = self.sock.fileno()
            self.loop.add_reader(self.fd, self._on_readable)
        except BaseException:
            self.close()
            raise

    def start(self) -> None:
        self._send()

    def _send(self) -> None:
        try:
            self.sock.send(self.query)
        except BlockingIOError:
            pass  # a full socket buffer is a lost datagram: the next try sends it again
        except OSError as exc:
            self._fail(exc)
            return
        if self.tries < TRIES:
            self.timer = self.loop.call_later(self.try_timeout, self._retry)

    def _retry(self) -> None:
        self.timer = None
        if not self.future.done():
            self.tries += 1
            self._send()

    def _fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)

    def _on_readable(self) -> None:
        while not self.future.done():
            try:
                msg = self.sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ICMP port unreachable: ConnectionRefusedError
                self._fail(exc)
                return
            try:
                response = _response(msg, self.query, self.question_end, self.cookie)
            except _BadAnswer as exc:
                self._fail(exc)
                return
            if response is None:
                continue
            if response.rcode == 1 and self.cookie and not response.edns:
                # FORMERR from a server without EDNS: asked again without it, as c-ares does.
                self.query, self.question_end, self.cookie = _make_query(self.name, self.record_type, edns=False)
                if self.timer is not None:
                    self.timer.cancel()
                    self.timer = None
                self.tries = TRIES  # the plain query is the last try
                self._send()
                continue
            self.future.set_result(response)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            self.fd = -1
        self.sock.close()


async def _tcp_exchange(server: _Server, query: bytes, question_end: int, cookie: bytes) -> _Response:
    """The query again over a fresh tcp connection (its udp answer came truncated), as c-ares does."""
    reader, writer = await asyncio.open_connection(str(server.ip), server.port)
    try:
        writer.write(len(query).to_bytes(2) + query)
        while True:
            length = int.from_bytes(await reader.readexactly(2))
            response = _response(await reader.readexactly(length), query, question_end, cookie)
            if response is not None:
                return response
    finally:
        writer.close()


def _system_server() -> _Server:
    """The first name server of /etc/resolv.conf (127.0.0.1 without one, as c-ares and glibc default)."""
    try:
        with open(_RESOLV_CONF, encoding="utf-8", errors="replace") as f:
            for line in f:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    try:
                        return _Server(ipaddress.ip_address(words[1].split("%", 1)[0]), DEFAULT_PORT)
                    except ValueError:
                        continue
    except OSError:
        pass
    return _Server(ipaddress.ip_address("127.0.0.1"), DEFAULT_PORT)


async def _udp_probe(request: ProbeRequest, name: str, record_type: str, server: _Server | None,
                     started: float) -> ProbeResult:
    if server is None:  # the agent's own: reported without its port, as before
        server = _system_server()
        resolver = f"[{server.ip}]" if server.ip.version == 6 else str(server.ip)
    else:
        resolver = _server_text(server)
    seconds = budget(request)
    data = dns_pb2.DnsResult(query=name, record_type=record_type, resolver=resolver, protocol="udp")
    # What c-ares reported as an error (a bad name, a refused or unreachable server, a malformed answer)
    # is a failed result, as it was; a timeout is a ProbeError with what was measured.
    try:
        query = _make_query(name, record_type)
    except ValueError as exc:
        return ProbeResult(False, data, f"{name} {record_type}: {exc}", "bad_target")
    sent = time.perf_counter()
    try:
        exchange = _UdpExchange(server, name, record_type, query, max(seconds / TRIES, 0.01))
    except OSError as exc:
        return _network_error(exc, data, name, record_type, sent)
    try:
        exchange.start()
        async with asyncio.timeout(max(seconds - (sent - started), 0.001)):
            response = await exchange.future
            if response.truncated:
                response = await _tcp_exchange(server, exchange.query, exchange.question_end, exchange.cookie)
    except TimeoutError as exc:
        data.query_ms = ms(time.perf_counter() - sent)
        raise ProbeError("timeout", f"no answer from {data.resolver} for {name} {record_type}", data) from exc
    except _BadAnswer as exc:
        data.query_ms = ms(time.perf_counter() - sent)
        return ProbeResult(False, data, f"{name} {record_type} via {data.resolver}: bad answer: {exc}", "dns_error")
    except asyncio.IncompleteReadError:  # the tcp retry of a truncated answer
        data.query_ms = ms(time.perf_counter() - sent)
        return ProbeResult(False, data, f"{name} {record_type} via {data.resolver}: the tcp connection closed "
                                        f"before the answer", "connection_error")
    except OSError as exc:
        return _network_error(exc, data, name, record_type, sent)
    finally:
        exchange.close()
    data.query_ms = ms(time.perf_counter() - sent)
    data.rcode = _RCODE_NAMES.get(response.rcode) or str(response.rcode)
    data.answers.extend(response.answers)
    data.authority.extend(response.authority)
    return _outcome(data, name, record_type)


def _network_error(exc: OSError, data: dns_pb2.DnsResult, name: str, record_type: str, sent: float) -> ProbeResult:
    data.query_ms = ms(time.perf_counter() - sent)
    if isinstance(exc, ConnectionRefusedError):
        code, text = "refused", "refused (nothing listens on its port)"
    elif isinstance(exc, ConnectionError):
        code, text = "connection_error", f"the connection closed: {exc.strerror or exc}"
    else:
        code, text = ("unreachable" if exc.errno in (101, 113) else "network_error"), exc.strerror or str(exc)
    return ProbeResult(False, data, f"{name} {record_type} via {data.resolver}: {text}", code)


def _outcome(data: dns_pb2.DnsResult, name: str, record_type: str) -> ProbeResult:
    if data.rcode != "NOERROR":
        code = _RCODE_ERRORS.get(data.rcode, "dns_error")
        return ProbeResult(False, data, f"{name} {record_type} via {data.resolver}: {data.rcode}", code)
    if not data.answers:
        return ProbeResult(False, data, f"{name} has no {record_type} records", "no_answer")
    return ProbeResult(True, data)


