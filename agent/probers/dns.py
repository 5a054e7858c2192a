"""dns: one query of one record type to a chosen resolver (or the agent's own); answers, rcode, time.

The target is the name to look up, so the guard is applied to the resolver: that
is where the packets go (a 127.0.0.1 resolver needs 127.0.0.0/8 allowed). The
agent's own resolver is the operator's choice and is not guarded. An IP target
is looked up by its reverse name (PTR). An answer with an error rcode
(NXDOMAIN, SERVFAIL, ...) is a result with that rcode, not a crash.
"""

from __future__ import annotations

import asyncio
import time

import aiodns
import pycares
from aiodns.error import DNSError

from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, budget, ms
from hostcheck.core.checktypes import dns as spec
from hostcheck.core.checktypes.dns import RECORD_TYPES
from hostcheck.core.targets import IPAddress
from hostcheck.v1 import dns_pb2

# c-ares retries a silent server once within the check's time.
TRIES = 2

_TYPE_NAMES = {getattr(pycares, f"QUERY_TYPE_{name}"): name for name in RECORD_TYPES}

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


def parse_resolver(value: str) -> tuple[IPAddress, int]:
    """`ip`, `ip:port` or `[v6]:port` -> (ip, port)."""
    try:
        return spec.parse_resolver(value)
    except ValueError as exc:
        raise ProbeError("bad_options", f"resolver {exc}") from exc


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


def _answer(record: pycares.DNSRecord) -> dns_pb2.DnsRecord:
    """One answer: name, type, ttl, `value` in zone-file form, and the record's own fields."""
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
    elif isinstance(d, pycares.TXTRecordData):
        out.value = d.data.decode("utf-8", "replace") if isinstance(d.data, bytes) else str(d.data)
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


async def probe(request: ProbeRequest) -> ProbeResult:
    started = time.perf_counter()
    name, record_type = _query(request)
    nameservers = None
    if request.options.resolver:
        ip, port = parse_resolver(request.options.resolver)
        reason = request.guard.refusal(ip)
        if reason:
            raise ProbeError("target_refused", f"resolver {request.options.resolver}: {reason}",
                             resolver=request.options.resolver)
        nameservers = [f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"]
    seconds = budget(request)
    # A fresh resolver per check: c-ares caches answers inside one.
    resolver = aiodns.DNSResolver(nameservers=nameservers, timeout=max(seconds / TRIES, 0.01), tries=TRIES)
    servers = nameservers or list(resolver.nameservers)
    data = dns_pb2.DnsResult(query=name, record_type=record_type, resolver=servers[0] if servers else "")
    try:
        sent = time.perf_counter()
        try:
            async with asyncio.timeout(max(seconds - (sent - started), 0.001)):
                result = await resolver.query_dns(name, record_type)
        except TimeoutError as exc:
            data.query_ms = ms(time.perf_counter() - sent)
            raise ProbeError("timeout", f"no answer from {data.resolver} for {name} {record_type}", data) from exc
        except DNSError as exc:
            data.query_ms = ms(time.perf_counter() - sent)
            errno = exc.args[0] if exc.args else -1
            rcode, code = _ERRORS.get(errno, ("", "dns_error"))
            data.rcode = rcode
            text = exc.args[1] if len(exc.args) > 1 else str(exc)
            return ProbeResult(False, data, f"{name} {record_type} via {data.resolver}: {text}", code)
        data.query_ms = ms(time.perf_counter() - sent)
    finally:
        await resolver.close()
    data.rcode = "NOERROR"
    data.answers.extend(_answer(r) for r in result.answer)
    data.authority.extend(_answer(r) for r in result.authority)
    if not data.answers:
        return ProbeResult(False, data, f"{name} has no {record_type} records", "no_answer")
    return ProbeResult(True, data)
