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
  (`"part one" "part two"` came back as `part onepart two`). That half is _dnspython.py, imported
  by the first check that needs it: an agent whose dns checks are all c-ares's never loads
  dnspython (~3-4 MB of RSS; issue 17).

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
import ssl
import time
import weakref
from dataclasses import dataclass
from functools import lru_cache
from types import ModuleType

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


def _default_resolver(settings: ProbeSettings, default_port: int) -> _Server | None:
    """The agent's default resolver; None: the system's (for c-ares, which reads /etc/resolv.conf itself)."""
    if settings.dns_resolver == SYSTEM:
        return None
    ip, port = spec.parse_resolver(settings.dns_resolver, default_port)
    return _Server(ip, port)


async def prepare(request: ProbeRequest) -> bool:
    """What this check loads the first time (probers.prepare): dnspython's half, and the DoT context.
    True when it loaded something."""
    try:
        _name, record_type = _query(request)
    except ProbeError:
        return False  # the probe says what is wrong
    options = request.options
    protocol = (options.protocol or "udp").lower()
    if not options.trace and protocol == "udp" and record_type in _ARES_TYPES:
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
        reason = private_zone_refusal(name, request.guard)
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
        ip, port = parse_resolver(options.resolver, default_port)
        reason = request.guard.refusal(ip)
        if reason:
            raise ProbeError("target_refused", f"resolver {options.resolver}: {reason}", resolver=options.resolver)
        server = _Server(ip, port)
    else:
        server = _default_resolver(request.settings, default_port)
    if protocol == "udp" and record_type in _ARES_TYPES:
        return await _ares_probe(request, name, record_type, server, started)
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


