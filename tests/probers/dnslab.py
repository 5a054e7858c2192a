"""A DNS hierarchy on loopback for trace tests: a root, a TLD and leaf zones, each served on port 53 of its own
127.53.N.x address (N from the test's pid, so two runs do not meet), over UDP and TCP.

    root  127.53.N.1   "."           delegates test. to ns.nic.test (glue)
    tld   127.53.N.2   "test."       delegates trace.test. to ns1.trace.test (glue);
                                     fallback.test. to ns1 (127.53.N.9: nothing listens) then ns2 (127.53.N.3);
                                     glueless.test. to ns.trace.test (no glue: another zone's name)
    leaf  127.53.N.3   trace.test., fallback.test., glueless.test.
    stub  127.53.N.4   answers the address of any name server above, with recursion available: the
                       resolver `dig +trace` asks for name servers' addresses (it does so even with glue)

The servers are authoritative only (no recursion), as real ones are: a query under a
delegation gets a referral, anything else the zone's answer, NODATA or NXDOMAIN with the
SOA. Built on dnspython's message parsing; ~100 lines instead of a zone-file server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

NET = f"127.53.{os.getpid() % 250 + 1}"
ROOT, TLD, LEAF, STUB, DEAD = f"{NET}.1", f"{NET}.2", f"{NET}.3", f"{NET}.4", f"{NET}.9"
SOA = "ns.{zone} hostmaster.{zone} 2026112901 3600 600 86400 300"


@dataclass
class Zone:
    origin: str
    # (owner, type) -> rdata in zone-file form.
    records: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    # child zone -> its name servers as (name, glue address or None).
    delegations: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        zone = self.origin.rstrip(".") or "root"
        self.records.setdefault((self.origin, "SOA"), [SOA.format(zone=zone + ".")])


def zones() -> dict[str, list[Zone]]:
    """Zones by the address that serves them."""
    root = Zone(".", {(".", "NS"): ["a.root.test."], ("a.root.test.", "A"): [ROOT]},
                {"test.": [("ns.nic.test.", TLD)]})
    tld = Zone("test.", {("test.", "NS"): ["ns.nic.test."], ("ns.nic.test.", "A"): [TLD]},
               {"trace.test.": [("ns1.trace.test.", LEAF)],
                "fallback.test.": [("ns1.fallback.test.", DEAD), ("ns2.fallback.test.", LEAF)],
                "glueless.test.": [("ns.trace.test.", None)]})
    trace = Zone("trace.test.", {
        ("trace.test.", "NS"): ["ns1.trace.test."],
        ("ns1.trace.test.", "A"): [LEAF], ("ns.trace.test.", "A"): [LEAF],
        ("www.trace.test.", "A"): ["192.0.2.80"],
        ("alias.trace.test.", "CNAME"): ["www.trace.test."],
        ("txt.trace.test.", "TXT"): ['"part one" "part two"'],
    })
    fallback = Zone("fallback.test.", {("www.fallback.test.", "A"): ["192.0.2.81"]})
    glueless = Zone("glueless.test.", {("www.glueless.test.", "A"): ["192.0.2.82"]})
    stub = Zone(".", {(name, "A"): [glue] for z in (root, tld, trace) for servers in z.delegations.values()
                      for name, glue in servers if glue is not None})
    stub.records.update({key: value for key, value in trace.records.items() if key[1] == "A"})
    stub.records.update({("a.root.test.", "A"): [ROOT]})
    return {ROOT: [root], TLD: [tld], LEAF: [trace, fallback, glueless], STUB: [stub]}


def _rrset(owner: str, kind: str, values: list[str], ttl: int = 300) -> dns.rrset.RRset:
    return dns.rrset.from_text_list(owner, ttl, dns.rdataclass.IN, dns.rdatatype.from_text(kind), values)


def answer(served: list[Zone], wire: bytes) -> bytes:
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags &= ~dns.flags.RA
    qname, qtype = query.question[0].name, dns.rdatatype.to_text(query.question[0].rdtype)
    candidates = [z for z in served if qname.is_subdomain(dns.name.from_text(z.origin))]
    if not candidates:
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    zone = max(candidates, key=lambda z: len(dns.name.from_text(z.origin)))
    owner = qname.to_text()
    for child, servers in sorted(zone.delegations.items(), key=lambda item: -len(item[0])):
        if qname.is_subdomain(dns.name.from_text(child)):
            response.authority.append(_rrset(child, "NS", [name for name, _ in servers], 86400))
            for name, glue in servers:
                if glue is not None:
                    response.additional.append(_rrset(name, "A", [glue], 86400))
            return response.to_wire()
    response.flags |= dns.flags.AA
    if zone.origin == "." and not zone.delegations:
        response.flags |= dns.flags.RA  # the stub: a resolver, as far as dig can tell
    if (owner, qtype) in zone.records:
        response.answer.append(_rrset(owner, qtype, zone.records[(owner, qtype)]))
        if qtype == "NS":
            for target in zone.records[(owner, qtype)]:
                if (target, "A") in zone.records:
                    response.additional.append(_rrset(target, "A", zone.records[(target, "A")]))
    elif (owner, "CNAME") in zone.records:
        response.answer.append(_rrset(owner, "CNAME", zone.records[(owner, "CNAME")]))
    else:
        if not any(name == owner for name, _ in zone.records):
            response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(_rrset(zone.origin, "SOA", zone.records[(zone.origin, "SOA")]))
    return response.to_wire()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, served: list[Zone], log: list[tuple[str, str]]) -> None:
        self.served, self.log = served, log

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.log.append(("udp", self.transport.get_extra_info("sockname")[0]))
        self.transport.sendto(answer(self.served, data), addr)


class DnsLab:
    def __init__(self) -> None:
        self.transports: list[asyncio.BaseTransport] = []
        self.servers: list[asyncio.AbstractServer] = []
        # (protocol, server address) of every query, in order.
        self.log: list[tuple[str, str]] = []

    async def start(self) -> DnsLab:
        loop = asyncio.get_running_loop()
        for address, served in zones().items():
            transport, _ = await loop.create_datagram_endpoint(lambda s=served: _Udp(s, self.log),
                                                               local_addr=(address, 53))
            self.transports.append(transport)

            async def handle(reader, writer, served=served, address=address) -> None:
                with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                    while True:
                        (length,) = struct.unpack("!H", await reader.readexactly(2))
                        data = await reader.readexactly(length)
                        self.log.append(("tcp", address))
                        reply = answer(served, data)
                        writer.write(struct.pack("!H", len(reply)) + reply)
                        await writer.drain()
                writer.close()

            self.servers.append(await asyncio.start_server(handle, address, 53))
        return self

    async def stop(self) -> None:
        for transport in self.transports:
            transport.close()
        for server in self.servers:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
