"""dns: dnspython's half of the prober (see dns.py): tcp and tls as the transport, the trace from the
root, and the record types dns.py's own wire code does not read.

Loaded by the first check that needs it (dns.py `_python_half`), not at the agent's start: dnspython
is ~3-4 MB of an idle agent's RSS, and the udp lookups of the common types (dns.py) never use it (issue 17).
"""

from __future__ import annotations

import ipaddress
import random
import ssl
import time

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, budget, ms
from hostcheck.agent.probers.dns import (
    DEFAULT_PORT,
    MAX_GLUELESS_DEPTH,
    MAX_STEPS,
    ROOT_SERVERS_V4,
    ROOT_SERVERS_V6,
    SERVER_TIMEOUT,
    _outcome,
    _Server,
    _tls_context,
)
from hostcheck.core.checktypes import dns as spec
from hostcheck.v1 import dns_pb2


def _name(value: dns.name.Name) -> str:
    return value.to_text(omit_final_dot=True) if value != dns.name.root else "."


def _records(rrset) -> list[dns_pb2.DnsRecord]:
    """One rrset from dnspython as DnsRecords, in the same form as dns.py's udp reader (names without the final dot)."""
    out = []
    type_name = dns.rdatatype.to_text(rrset.rdtype)
    for rdata in rrset:
        record = dns_pb2.DnsRecord(name=_name(rrset.name), type=type_name, ttl=rrset.ttl)
        kind = rrset.rdtype
        if kind in (dns.rdatatype.A, dns.rdatatype.AAAA):
            record.value = rdata.address
        elif kind in (dns.rdatatype.CNAME, dns.rdatatype.NS, dns.rdatatype.PTR, dns.rdatatype.DNAME):
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
            record.value = rdata.to_text()  # as dig prints it: bytes outside printable ASCII as \DDD
        elif kind == dns.rdatatype.TXT:
            record.value = rdata.to_text()  # each string quoted, `"`, `\\` and unprintable bytes escaped, as dig
        else:
            # DNSKEY, DS, HTTPS, SVCB, NAPTR, TLSA, SSHFP: dnspython's zone-file form, as dig prints it.
            record.value = rdata.to_text()
        out.append(record)
    return out


def _message_records(section) -> list[dns_pb2.DnsRecord]:
    return [record for rrset in section for record in _records(rrset)]


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


def system_resolver(port: int) -> _Server:
    try:
        servers = dns.resolver.Resolver().nameservers
    except dns.resolver.NoResolverConfiguration as exc:
        raise ProbeError("dns_error", "the agent's own resolver is not configured (/etc/resolv.conf)") from exc
    first = str(servers[0])
    try:
        return _Server(ipaddress.ip_address(first), port)
    except ValueError as exc:
        raise ProbeError("dns_error", f"the agent's own resolver {first!r} is not an address") from exc


async def python_probe(request: ProbeRequest, name: str, record_type: str, protocol: str, server: _Server,
                       started: float) -> ProbeResult:
    data = dns_pb2.DnsResult(query=name, record_type=record_type, resolver=str(server), protocol=protocol)
    query = dns.message.make_query(dns.name.from_text(name), dns.rdatatype.from_text(record_type))
    if protocol == "tls":
        _tls_context()  # built by an agent's first DoT check before its query is timed (~40 ms of CPU)
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


async def trace_probe(request: ProbeRequest, name: str, record_type: str, protocol: str,
                      started: float) -> ProbeResult:
    """The trace's time (`query_ms`) counts from here; its deadline from `started` (the check's start)."""
    data = dns_pb2.DnsResult(query=name, record_type=record_type, protocol=protocol)
    tracer = _Tracer(request, protocol, started + budget(request))
    started = time.perf_counter()
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
