"""Targets: parsing what a person typed, and the guard against probing where we must not.

A checker is an attack tool if done carelessly: by default we refuse private,
loopback, link-local (cloud metadata at 169.254.169.254 included), CGNAT,
multicast, reserved and documentation ranges, IPv4 and IPv6. The API refuses IP
targets (and addresses in options, e.g. a dns resolver); the agent checks again
after resolving a name (DNS rebinding).

An IPv6 address that carries an IPv4 address (IPv4-mapped, IPv4-translated,
IPv4-compatible, NAT64, 6to4, Teredo) is judged by the IPv4 inside as well:
`64:ff9b::a00:1` reaches 10.0.0.1 through a NAT64 gateway, so it is refused as
10.0.0.1 is. Operators allow ranges with HOSTCHECK_ALLOW_TARGETS.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_TARGET_LEN = 255
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")

# The setting that allows ranges (scheduler and agents), named in every refusal.
ALLOW_SETTING = "HOSTCHECK_ALLOW_TARGETS"

# Special-purpose ranges (IANA IPv4/IPv6 special-purpose registries) we never probe by default.
BLOCKED_NETWORKS: tuple[IPNetwork, ...] = tuple(ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "255.255.255.255/32",
    "::/128", "::1/128", "64:ff9b:1::/48", "100::/64", "100:0:0:1::/64", "2001::/23", "2001:db8::/32",
    "2002::/16", "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
))

# IPv6 ranges whose last 32 bits are an IPv4 address (RFC 4291 mapped and compatible, RFC 2765
# translated, RFC 6052 NAT64 well-known prefix; the local-use prefix 64:ff9b:1::/48 of RFC 8215
# is read as a /96 too, and is refused by default whatever it carries).
_IPV4_IN_LAST_32 = tuple(ipaddress.IPv6Network(n) for n in (
    "::ffff:0:0/96", "::ffff:0:0:0/96", "::/96", "64:ff9b::/96", "64:ff9b:1::/48"))


def embedded_ipv4(ip: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries (6to4's, Teredo's server and client), else ()."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return ()
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo
    # :: and ::1 (unspecified, loopback) are in ::/96 but carry no IPv4 address.
    if int(ip) > 1 and any(ip in net for net in _IPV4_IN_LAST_32):
        return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    return ()


class TargetError(ValueError):
    """The target is malformed or refused; the message says why."""


@dataclass(frozen=True)
class Target:
    """A parsed target: a host (name or IP) with what the form it came in adds."""

    host: str
    port: int | None = None
    scheme: str | None = None
    path: str | None = None

    @property
    def ip(self) -> IPAddress | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def _valid_hostname(host: str) -> bool:
    if len(host) > 253:
        return False
    labels = host.rstrip(".").split(".")
    return all(_LABEL.match(label) for label in labels) and not labels[-1].isdigit()


def _port(value: str | int | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        port = int(value)
    except ValueError as exc:
        raise TargetError(f"port {value!r} is not a number") from exc
    if not 1 <= port <= 65535:
        raise TargetError(f"port {port} is out of range 1-65535")
    return port


def parse_target(raw: str) -> Target:
    """Parses a host name, IPv4/IPv6 address, host:port, [v6]:port or http(s) URL."""
    text = raw.strip()
    if not text:
        raise TargetError("must not be empty")
    if len(text) > MAX_TARGET_LEN:
        raise TargetError(f"must be at most {MAX_TARGET_LEN} characters")
    if any(c.isspace() for c in text):
        raise TargetError("must not contain spaces")
    if "://" in text:
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https"):
            raise TargetError(f"URL scheme {parts.scheme!r} is not http or https")
        if not parts.hostname:
            raise TargetError("URL has no host")
        try:
            port = parts.port
        except ValueError as exc:
            raise TargetError(f"bad port in URL: {exc}") from exc
        host = parts.hostname
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        target = Target(host=host, port=_port(port), scheme=parts.scheme, path=path)
    else:
        try:
            ipaddress.ip_address(text)
            return Target(host=text)
        except ValueError:
            pass
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise TargetError("bracketed IPv6 address is malformed")
            target = Target(host=host, port=_port(rest[1:]) if rest else None)
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
            target = Target(host=host, port=_port(port_text))
        else:
            target = Target(host=text)
    if target.ip is None and not _valid_hostname(target.host):
        raise TargetError(f"{target.host!r} is not a valid host name or IP address")
    return target


@dataclass(frozen=True)
class TargetGuard:
    """Refuses special-purpose addresses unless an operator allowed their range."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_cidrs(cls, cidrs: Iterable[str]) -> TargetGuard:
        nets = []
        for cidr in cidrs:
            try:
                nets.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError as exc:
                raise ValueError(f"allowed target range {cidr!r} is not a CIDR: {exc}") from exc
        return cls(tuple(nets))

    def refusal(self, ip: IPAddress) -> str | None:
        """Why `ip` may not be probed, or None when it may.

        An IPv6 address carrying IPv4 is refused when any IPv4 inside is; an IPv4-mapped
        address is then simply that IPv4 address. Otherwise (6to4, Teredo, NAT64, ...) its own
        range is judged too.
        """
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        for inner in embedded_ipv4(ip):
            reason = self._refusal(inner)
            if reason:
                return f"address {ip} carries the IPv4 address {inner}: {reason}"
        return self._refusal(ip)

    def _refusal(self, ip: IPAddress) -> str | None:
        if any(ip.version == net.version and ip in net for net in self.allowed):
            return None
        for net in BLOCKED_NETWORKS:
            if ip.version == net.version and ip in net:
                return (f"address {ip} is in the special-purpose range {net}, refused by default "
                        f"(an operator can allow it with {ALLOW_SETTING}={net} on the scheduler and the agents)")
        if not ip.is_global:
            return (f"address {ip} is not globally routable, refused by default "
                    f"(an operator can allow it with {ALLOW_SETTING} on the scheduler and the agents)")
        return None

    def check(self, ip: IPAddress) -> None:
        reason = self.refusal(ip)
        if reason:
            raise TargetError(reason)
