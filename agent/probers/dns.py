"""dns: one query of one record type to a resolver over udp, tcp or tls, or a trace from the root servers.

Two libraries, each for what it does well:
- c-ares (pycares) for plain queries: over udp, of the types c-ares parses (A, AAAA, CNAME,
  MX, NS, SOA, PTR, SRV, CAA). Fast, and what agents have always used. Its sockets are
  driven by the agent's event loop (`_ares_query`), not by the thread c-ares starts per
  channel by default (what aiodns uses): a check needs a fresh channel (c-ares caches
  answers inside one), and a thread started and stopped per check cost two thirds of a
  check's CPU (issue 17).
- dnspython for what c-ares cannot do: TCP as the transport and DNS over TLS (c-ares has
  neither DoT nor a way to verify a resolver's certificate), the trace (queries without
  recursion to each authoritative server, reading the referrals), and record types
  c-ares does not parse (DNSKEY, DS, HTTPS, SVCB, NAPTR, TLSA, SSHFP). TXT goes through
  dnspython too: pycares joins a record's strings into one, losing where each ended
  (`"part one" "part two"` came back as `part onepart two`).

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
import ipaddress
import random
import ssl
import time
import weakref
from dataclasses import dataclass
from functools import lru_cache

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import pycares

from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, ProbeSettings, budget, ms
from hostcheck.core.checktypes import dns as spec
from hostcheck.core.checktypes.dns import ARES_RECORD_TYPES, DEFAULT_PORT, DEFAULT_TLS_PORT, RECORD_TYPES
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

_QUERY_TYPES = {name: getattr(pycares, f"QUERY_TYPE_{name}") for name in ARES_RECORD_TYPES}
_TYPE_NAMES = {number: name for name, number in _QUERY_TYPES.items()}
# Types c-ares answers with their strings joined (TXT) or does not parse: dnspython's.
_ARES_TYPES = frozenset(ARES_RECORD_TYPES) - {"TXT"}

# c-ares error -> (rcode the server sent or "" when none came, our error code).
_ERRORS: dict[int, tuple[str, str]] = {
    pycares.errno.ARES_ENOTFOUND: ("NXDOMAIN", "nxdomain"),
    pycares.errno.ARES_ENODATA: ("NOERROR", "no_answer"),
    pycares.errno.ARES_ESERVFAIL: ("SERVFAIL", "servfail"),
    pycares.errno.ARES_EREFUSED: ("REFUSED", "dns_refused"),
    pycares.errno.ARES_EFORMERR: ("FORMERR", "formerr"),
    pycares.errno.ARES_ENOTIMP: ("NOTIMP", "notimp"),
    pycares.errno.ARES_ETIMEOUT: ("", "timeout"),
    pycares.errno.ARES_ECONNREFUSED: ("", "refused"),
    pycares.errno.ARES_EBADNAME: ("", "bad_target"),
}
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


def _query(request: ProbeRequest) -> tuple[str, str]:
    """(name to look up, record type)."""
    target_ip = request.target.ip
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


def _txt(strings) -> str:
    """TXT strings in zone-file form: each quoted, with `"` and `\\` escaped."""
    def quote(raw: bytes) -> str:
        text = raw.decode("utf-8", "replace").replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'

    return " ".join(quote(s) for s in strings)


def _answer(record: pycares.DNSRecord) -> dns_pb2.DnsRecord:
    """One answer from c-ares: name, type, ttl, `value` in zone-file form, and the record's own fields."""
    d = record.data
    out = dns_pb2.DnsRecord(name=record.name, type=_TYPE_NAMES.get(record.type, str(record.type)),
                            ttl=max(record.ttl, 0))
    if isinstance(d, pycares.ARecordData | pycares.AAAARecordData):
        out.value = d.addr
    elif isinstance(d, pycares.CNAMERecordData):
        out.value = d.cname
    elif isinstance(d, pycares.NSRecordData):
        out.value = d.nsdname
    elif isinstance(d, pycares.PTRRecordData):
        out.value = d.dname
    elif isinstance(d, pycares.MXRecordData):
        out.priority, out.exchange = d.priority, d.exchange
        out.value = f"{d.priority} {d.exchange}"
    elif isinstance(d, pycares.SRVRecordData):
        out.priority, out.weight, out.port, out.target = d.priority, d.weight, d.port, d.target
        out.value = f"{d.priority} {d.weight} {d.port} {d.target}"
    elif isinstance(d, pycares.SOARecordData):
        soa = (d.mname, d.rname, d.serial, d.refresh, d.retry, d.expire, d.minimum)
        out.mname, out.rname, out.serial, out.refresh, out.retry, out.expire, out.minimum = soa
        out.value = " ".join(map(str, soa))
    elif isinstance(d, pycares.CAARecordData):
        out.flags, out.tag, out.caa_value = d.critical, d.tag, d.value
        out.value = f'{d.critical} {d.tag} "{d.value}"'
    else:
        out.value = str(d)
    return out


def _name(value: dns.name.Name) -> str:
    return value.to_text(omit_final_dot=True) if value != dns.name.root else "."


def _records(rrset) -> list[dns_pb2.DnsRecord]:
    """One rrset from dnspython as DnsRecords, in the same form as c-ares's (names without the final dot)."""
    out = []
    type_name = dns.rdatatype.to_text(rrset.rdtype)
    for rdata in rrset:
        record = dns_pb2.DnsRecord(name=_name(rrset.name), type=type_name, ttl=rrset.ttl)
        kind = rrset.rdtype
        if kind in (dns.rdatatype.A, dns.rdatatype.AAAA):
            record.value = rdata.address
        elif kind in (dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR):
            record.value = _name(rdata.target)
        elif kind == dns.rdatatype.MX:
            record.priority, record.exchange = rdata.preference, _name(rdata.exchange)
            record.value = f"{rdata.preference} {record.exchange}"
        elif kind == dns.rdatatype.SRV:
            record.priority, record.weight, record.port = rdata.priority, rdata.weight, rdata.port
            record.target = _name(rdata.target)
            record.value = f"{rdata.priority} {rdata.weight} {rdata.port} {record.target}"
        elif kind == dns.rdatatype.SOA:
            record.mname, record.rname = _name(rdata.mname), _name(rdata.rname)
            record.serial, record.refresh, record.retry = rdata.serial, rdata.refresh, rdata.retry
            record.expire, record.minimum = rdata.expire, rdata.minimum
            record.value = " ".join(map(str, (record.mname, record.rname, rdata.serial, rdata.refresh, rdata.retry,
                                              rdata.expire, rdata.minimum)))
        elif kind == dns.rdatatype.CAA:
            record.flags, record.tag = rdata.flags, rdata.tag.decode("ascii", "replace")
            record.caa_value = rdata.value.decode("utf-8", "replace")
            record.value = f'{rdata.flags} {record.tag} "{record.caa_value}"'
        elif kind == dns.rdatatype.TXT:
            record.value = _txt(rdata.strings)
        else:
            # DNSKEY, DS, HTTPS, SVCB, NAPTR, TLSA, SSHFP: dnspython's zone-file form, as dig prints it.
            record.value = rdata.to_text()
        out.append(record)
    return out


def _message_records(section) -> list[dns_pb2.DnsRecord]:
    return [record for rrset in section for record in _records(rrset)]


@lru_cache(maxsize=1)
def _tls_context() -> ssl.SSLContext:
    """The system's trust roots (SSL_CERT_FILE respected), built once: a context costs ~40 ms of CPU."""
    return ssl.create_default_context()


@dataclass
class _Server:
    ip: IPAddress
    port: int

    def __str__(self) -> str:
        return f"[{self.ip}]:{self.port}" if self.ip.version == 6 else f"{self.ip}:{self.port}"


async def _exchange(query: dns.message.Message, server: _Server, protocol: str, timeout: float,
                    tls_server_name: str = "") -> dns.message.Message:
    """One query to one server; ProbeError with our code for what can go wrong on the way."""
    where = str(server.ip)
    try:
        if protocol == "tcp":
            return await dns.asyncquery.tcp(query, where, timeout=timeout, port=server.port)
        if protocol == "tls":
            return await dns.asyncquery.tls(query, where, timeout=timeout, port=server.port,
                                            ssl_context=_tls_context(), server_hostname=tls_server_name or where)
        response, _ = await dns.asyncquery.udp_with_fallback(query, where, timeout=timeout, port=server.port)
        return response
    except (dns.exception.Timeout, TimeoutError) as exc:
        raise ProbeError("timeout", f"no answer from {server} over {protocol} within {timeout:.3g} s") from exc
    except ssl.SSLCertVerificationError as exc:
        raise ProbeError("tls_error", f"{server}: certificate not trusted: {exc.verify_message}") from exc
    except ssl.SSLError as exc:
        raise ProbeError("tls_error", f"{server}: TLS handshake failed: {exc.reason or exc}") from exc
    except ConnectionRefusedError as exc:
        raise ProbeError("refused", f"{server} refused the {protocol} connection") from exc
    except (ConnectionError, EOFError) as exc:
        raise ProbeError("connection_error", f"{server} closed the {protocol} connection: {exc or 'no answer'}") from exc
    except dns.exception.DNSException as exc:
        raise ProbeError("dns_error", f"{server}: bad answer: {exc}") from exc
    except OSError as exc:
        code = "unreachable" if exc.errno in (101, 113) else "network_error"
        raise ProbeError(code, f"{server}: {exc.strerror or exc}") from exc


def _default_resolver(settings: ProbeSettings, default_port: int) -> _Server | None:
    """The agent's default resolver; None: the system's (for c-ares, which reads /etc/resolv.conf itself)."""
    if settings.dns_resolver == SYSTEM:
        return None
    ip, port = spec.parse_resolver(settings.dns_resolver, default_port)
    return _Server(ip, port)


def _system_resolver(port: int) -> _Server:
    try:
        servers = dns.resolver.Resolver().nameservers
    except dns.resolver.NoResolverConfiguration as exc:
        raise ProbeError("dns_error", "the agent's own resolver is not configured (/etc/resolv.conf)") from exc
    first = str(servers[0])
    try:
        return _Server(ipaddress.ip_address(first), port)
    except ValueError as exc:
        raise ProbeError("dns_error", f"the agent's own resolver {first!r} is not an address") from exc


async def probe(request: ProbeRequest) -> ProbeResult:
    started = time.perf_counter()
    name, record_type = _query(request)
    options = request.options
    protocol = (options.protocol or "udp").lower()
    if protocol not in spec.PROTOCOLS:
        raise ProbeError("bad_options", f"protocol {protocol!r} is not one of {', '.join(spec.PROTOCOLS)}")
    if not request.settings.dns_private_zones:
        reason = private_zone_refusal(name, request.guard)
        if reason:
            raise ProbeError("target_refused", reason)
    if options.trace:
        if options.resolver:
            raise ProbeError("bad_options", "a trace starts at the root servers: give no resolver")
        if protocol == "tls":
            raise ProbeError("bad_options", "a trace asks authoritative servers: udp or tcp, not tls")
        return await _trace_probe(request, name, record_type, protocol, started)
    default_port = DEFAULT_TLS_PORT if protocol == "tls" else DEFAULT_PORT
    server: _Server | None
    if options.resolver:
        ip, port = parse_resolver(options.resolver, default_port)
        reason = request.guard.refusal(ip)
        if reason:
            raise ProbeError("target_refused", f"resolver {options.resolver}: {reason}", resolver=options.resolver)
        server = _Server(ip, port)
    else:
        server = _default_resolver(request.settings, default_port)
    if protocol == "udp" and record_type in _ARES_TYPES:
        return await _ares_probe(request, name, record_type, server, started)
    if server is None:
        server = _system_resolver(default_port)
    return await _python_probe(request, name, record_type, protocol, server, started)


class _AresError(Exception):
    """c-ares gave up on the query: args are (errno, its text), as aiodns's DNSError had them."""


class _AresLookup:
    """One query on a fresh c-ares channel whose sockets the running event loop watches.

    c-ares calls `_sock_state` when it opens, closes or changes interest in a socket (a udp
    socket per server; a tcp connection for a truncated answer), and `_on_timer` at the
    channel's next timeout makes it resend (TRIES) or give up. The answer or the error comes
    through `_done`, inside one of those calls, on the loop's thread.
    """

    def __init__(self, nameservers: list[str] | None, timeout: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[pycares.DNSResult] = self.loop.create_future()
        self._readers: set[int] = set()
        self._writers: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._called_back = False  # c-ares ended the query (answer or error): nothing of it left to cancel
        self._closed = False
        # Through a weak reference: the channel outlives close() on pycares's thread, and a cycle
        # through it would leave each check's lookup to the garbage collector.
        this = weakref.ref(self)

        def sock_state(fd: int, readable: bool, writable: bool) -> None:
            lookup = this()
            if lookup is not None:
                lookup._sock_state(fd, readable, writable)

        self.channel = pycares.Channel(sock_state_cb=sock_state, timeout=timeout, tries=TRIES, servers=nameservers)

    def _sock_state(self, fd: int, readable: bool, writable: bool) -> None:
        if self._closed:  # the channel is destroyed on pycares's own thread: nothing to watch any more
            return
        loop = self.loop
        if readable and fd not in self._readers:
            loop.add_reader(fd, self.channel.process_read_fd, fd)
            self._readers.add(fd)
        elif not readable and fd in self._readers:
            loop.remove_reader(fd)
            self._readers.discard(fd)
        if writable and fd not in self._writers:
            loop.add_writer(fd, self.channel.process_write_fd, fd)
            self._writers.add(fd)
        elif not writable and fd in self._writers:
            loop.remove_writer(fd)
            self._writers.discard(fd)

    def _done(self, result: pycares.DNSResult | None, errno: int | None) -> None:
        self._called_back = True
        if self.future.done():
            return
        if errno is not None or result is None:
            errno = pycares.errno.ARES_EBADRESP if errno is None else errno
            self.future.set_exception(_AresError(errno, pycares.errno.strerror(errno)))
        else:
            self.future.set_result(result)

    def _arm(self) -> None:
        """Wakes c-ares at its next timeout (ares_timeout: 0 when one is due, or none is set)."""
        if not self.future.done() and not self._closed:
            self._timer = self.loop.call_later(max(self.channel.timeout(), 0.001), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.channel.process_fd(pycares.ARES_SOCKET_BAD, pycares.ARES_SOCKET_BAD)
        self._arm()

    async def query(self, name: str, record_type: str) -> pycares.DNSResult:
        try:
            self.channel.query(name, _QUERY_TYPES[record_type], callback=self._done)
        except pycares.AresError as exc:
            # c-ares may have called back first with the same error (a malformed name).
            errno = exc.args[0] if exc.args else pycares.errno.ARES_EFORMERR
            self._done(None, errno)
        self._arm()
        return await self.future

    def close(self) -> None:
        """Cancels what is pending (its callback runs here, on the loop), stops watching, frees the channel."""
        if self._closed:
            return
        if not self._called_back:
            self.channel.cancel()
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fd in self._readers:
            self.loop.remove_reader(fd)
        for fd in self._writers:
            self.loop.remove_writer(fd)
        self._readers.clear()
        self._writers.clear()
        self.channel.close()


async def _ares_probe(request: ProbeRequest, name: str, record_type: str, server: _Server | None,
                      started: float) -> ProbeResult:
    nameservers = [str(server)] if server is not None else None
    seconds = budget(request)
    # A fresh channel per check: c-ares caches answers inside one.
    lookup = _AresLookup(nameservers, max(seconds / TRIES, 0.01))
    # The system's (/etc/resolv.conf, read by c-ares) without their ports, as aiodns gave them.
    servers = nameservers or [s.rsplit(":", 1)[0] for s in lookup.channel.servers]
    data = dns_pb2.DnsResult(query=name, record_type=record_type, resolver=servers[0] if servers else "",
                             protocol="udp")
    try:
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(max(seconds - (sent - started), 0.001)):
                result = await lookup.query(name, record_type)
        except TimeoutError as exc:
            data.query_ms = ms(time.perf_counter() - sent)
            raise ProbeError("timeout", f"no answer from {data.resolver} for {name} {record_type}", data) from exc
        except _AresError as exc:
            data.query_ms = ms(time.perf_counter() - sent)
            errno, text = exc.args
            rcode, code = _ERRORS.get(errno, ("", "dns_error"))
            data.rcode = rcode
            return ProbeResult(False, data, f"{name} {record_type} via {data.resolver}: {text}", code)
        data.query_ms = ms(time.perf_counter() - sent)
    finally:
        lookup.close()
    data.rcode = "NOERROR"
    data.answers.extend(_answer(r) for r in result.answer)
    data.authority.extend(_answer(r) for r in result.authority)
    return _outcome(data, name, record_type)


def _outcome(data: dns_pb2.DnsResult, name: str, record_type: str) -> ProbeResult:
    if data.rcode != "NOERROR":
        code = _RCODE_ERRORS.get(data.rcode, "dns_error")
        return ProbeResult(False, data, f"{name} {record_type} via {data.resolver}: {data.rcode}", code)
    if not data.answers:
        return ProbeResult(False, data, f"{name} has no {record_type} records", "no_answer")
    return ProbeResult(True, data)


async def _python_probe(request: ProbeRequest, name: str, record_type: str, protocol: str, server: _Server,
                        started: float) -> ProbeResult:
    data = dns_pb2.DnsResult(query=name, record_type=record_type, resolver=str(server), protocol=protocol)
    query = dns.message.make_query(dns.name.from_text(name), dns.rdatatype.from_text(record_type))
    sent = time.perf_counter()
    remaining = max(budget(request) - (sent - started), 0.001)
    try:
        response = await _exchange(query, server, protocol, remaining, request.options.tls_server_name)
    except ProbeError as exc:
        data.query_ms = ms(time.perf_counter() - sent)
        raise ProbeError(exc.code, f"{name} {record_type}: {exc.message}", data) from exc
    data.query_ms = ms(time.perf_counter() - sent)
    data.rcode = dns.rcode.to_text(response.rcode())
    data.answers.extend(_message_records(response.answer))
    data.authority.extend(_message_records(response.authority))
    return _outcome(data, name, record_type)


# The trace ---------------------------------------------------------------------------------------


def _root_servers(request: ProbeRequest) -> list[_Server]:
    configured = request.settings.dns_root_servers
    if configured:
        servers = [_Server(*spec.parse_resolver(s)) for s in configured]
    else:
        v4 = [_Server(ipaddress.ip_address(a), DEFAULT_PORT) for a in ROOT_SERVERS_V4]
        v6 = [_Server(ipaddress.ip_address(a), DEFAULT_PORT) for a in ROOT_SERVERS_V6]
        # Spread the load over the roots, as resolvers do.
        random.shuffle(v4)
        random.shuffle(v6)
        servers = v4 + v6
    return _family(servers, request.ip_version)


def _family(servers: list[_Server], ip_version: int) -> list[_Server]:
    if ip_version:
        return [s for s in servers if s.ip.version == ip_version]
    return sorted(servers, key=lambda s: s.ip.version)  # IPv4 first: an agent without IPv6 routes still traces


class _Tracer:
    """Follows referrals from the root for one check; `steps` are what the check reports."""

    def __init__(self, request: ProbeRequest, protocol: str, deadline: float) -> None:
        self.request = request
        self.protocol = protocol
        self.deadline = deadline
        self.steps: list[dns_pb2.DnsTraceStep] = []

    def _guarded(self, servers: list[_Server]) -> list[_Server]:
        allowed = [s for s in servers if self.request.guard.refusal(s.ip) is None]
        if servers and not allowed:
            reason = self.request.guard.refusal(servers[0].ip)
            raise ProbeError("target_refused", f"name server {servers[0]}: {reason}")
        return allowed

    async def run(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType, *, record: bool = True,
                  depth: int = 0) -> tuple[dns.message.Message, _Server]:
        """The authoritative answer for `name`, and the server that gave it."""
        zone = dns.name.root
        servers = self._guarded(_root_servers(self.request))
        if not servers:
            raise ProbeError("bad_options", f"no root server for IPv{self.request.ip_version}")
        names: dict[str, str] = {}
        for _ in range(MAX_STEPS):
            response, server = await self._ask(zone, servers, names, name, rdtype, record=record)
            if response.rcode() != dns.rcode.NOERROR or response.answer:
                return response, server
            referral = self._referral(response, zone, name)
            if referral is None:
                return response, server  # NOERROR without records of the type: no data
            zone, ns_names = referral
            addresses = self._glue(response, ns_names)
            if not addresses and depth < MAX_GLUELESS_DEPTH:
                addresses = await self._resolve_glueless(ns_names, depth)
            servers = self._guarded(_family(addresses, self.request.ip_version))
            if not servers:
                raise ProbeError("no_answer", f"{_name(zone)}: no address for its name servers "
                                              f"{', '.join(_name(n) for n in ns_names)}")
            names = {str(s.ip): _name(n) for s, n in self._server_names(response, ns_names, addresses)}
        raise ProbeError("too_many_referrals", f"{_name(name)}: more than {MAX_STEPS} referrals")

    async def _ask(self, zone: dns.name.Name, servers: list[_Server], names: dict[str, str], name: dns.name.Name,
                   rdtype: dns.rdatatype.RdataType, *, record: bool) -> tuple[dns.message.Message, _Server]:
        """Asks the zone's servers in turn until one answers."""
        last_error: ProbeError | None = None
        for server in servers:
            remaining = self.deadline - time.perf_counter()
            if remaining <= 0:
                break
            query = dns.message.make_query(name, rdtype)
            query.flags &= ~dns.flags.RD  # an authoritative server's own answer or referral
            step = dns_pb2.DnsTraceStep(zone=_name(zone), server=str(server), server_name=names.get(str(server.ip), ""))
            sent = time.perf_counter()
            try:
                response = await _exchange(query, server, self.protocol, min(SERVER_TIMEOUT, remaining))
            except ProbeError as exc:
                step.query_ms, step.error = ms(time.perf_counter() - sent), exc.message
                if record:
                    self.steps.append(step)
                last_error = exc
                continue
            step.query_ms = ms(time.perf_counter() - sent)
            step.rcode = dns.rcode.to_text(response.rcode())
            step.answers.extend(_message_records(response.answer))
            step.referral.extend(r for rrset in response.authority if rrset.rdtype == dns.rdatatype.NS
                                 for r in _records(rrset))
            if record:
                self.steps.append(step)
            return response, server
        if last_error is None:
            raise ProbeError("timeout", f"{_name(name)}: the trace ran out of time at zone {_name(zone)}")
        raise ProbeError(last_error.code, f"zone {_name(zone)}: no server answered ({last_error.message})")

    @staticmethod
    def _referral(response: dns.message.Message, zone: dns.name.Name,
                  name: dns.name.Name) -> tuple[dns.name.Name, list[dns.name.Name]] | None:
        for rrset in response.authority:
            if rrset.rdtype != dns.rdatatype.NS:
                continue
            # A referral must lead closer to the name: anything else is a lame server.
            if rrset.name != zone and rrset.name.is_subdomain(zone) and name.is_subdomain(rrset.name):
                # In name order: the servers of a zone are equals, and a trace should be repeatable.
                return rrset.name, sorted(r.target for r in rrset)
        return None

    @staticmethod
    def _glue(response: dns.message.Message, ns_names: list[dns.name.Name]) -> list[_Server]:
        out: list[_Server] = []
        for ns_name in ns_names:
            for rrset in response.additional:
                if rrset.name == ns_name and rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                    out.extend(_Server(ipaddress.ip_address(r.address), DEFAULT_PORT) for r in rrset)
        return out

    @staticmethod
    def _server_names(response: dns.message.Message, ns_names: list[dns.name.Name],
                      addresses: list[_Server]) -> list[tuple[_Server, dns.name.Name]]:
        by_address: dict[str, dns.name.Name] = {}
        for rrset in response.additional:
            if rrset.name in ns_names and rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                for r in rrset:
                    by_address[r.address] = rrset.name
        return [(s, by_address[str(s.ip)]) for s in addresses if str(s.ip) in by_address]

    async def _resolve_glueless(self, ns_names: list[dns.name.Name], depth: int) -> list[_Server]:
        """Addresses of name servers named without glue: each a trace of its own (not reported as steps)."""
        for ns_name in ns_names:
            for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                if self.request.ip_version and rdtype != (dns.rdatatype.A if self.request.ip_version == 4
                                                          else dns.rdatatype.AAAA):
                    continue
                try:
                    response, _ = await self.run(ns_name, rdtype, record=False, depth=depth + 1)
                except ProbeError:
                    continue
                found = [_Server(ipaddress.ip_address(r.address), DEFAULT_PORT)
                         for rrset in response.answer if rrset.rdtype == rdtype for r in rrset]
                if found:
                    return found
        return []


async def _trace_probe(request: ProbeRequest, name: str, record_type: str, protocol: str,
                       started: float) -> ProbeResult:
    data = dns_pb2.DnsResult(query=name, record_type=record_type, protocol=protocol)
    tracer = _Tracer(request, protocol, started + budget(request))
    try:
        response, server = await tracer.run(dns.name.from_text(name), dns.rdatatype.from_text(record_type))
    except ProbeError as exc:
        data.trace.extend(tracer.steps)
        data.query_ms = ms(time.perf_counter() - started)
        if data.trace:
            data.resolver = data.trace[-1].server
        raise ProbeError(exc.code, f"trace of {name} {record_type}: {exc.message}", data) from exc
    data.trace.extend(tracer.steps)
    data.query_ms = ms(time.perf_counter() - started)
    data.resolver = str(server)
    data.rcode = dns.rcode.to_text(response.rcode())
    data.answers.extend(_message_records(response.answer))
    data.authority.extend(_message_records(response.authority))
    return _outcome(data, name, record_type)

