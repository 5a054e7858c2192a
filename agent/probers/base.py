"""What every prober shares: its one signature, its result, and name resolution under the guard.

A prober is `async def probe(request: ProbeRequest) -> ProbeResult` in
`agent/probers/<type>.py`, for a type with a spec (hostcheck.core.checktypes).
Its result's `data` is the type's result message (e.g. TcpResult). It raises
`ProbeError(code, message, data)` for an expected failure (refused, timeout,
nxdomain, ...), with what it measured so far; the runner turns that, a timeout
or any other exception into a failed result, so one failing check never breaks
the agent or its stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any, Protocol

from google.protobuf.message import Message

from hostcheck.core.config import AgentConfig
from hostcheck.core.targets import IPAddress, Target, TargetGuard


class ProbeError(Exception):
    """An expected failure, reported as a result with `code` (timeout, refused, ...).

    `data` is the type's result message as far as the prober got. `fields` are set
    on the result by whoever knows its type: code shared by every prober (e.g.
    `resolve`, which reports the refused address) knows none.
    """

    def __init__(self, code: str, message: str, data: Message | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.fields = fields

    def partial(self, result_type: type[Message]) -> Message:
        """The failed probe's result as a `result_type`: `data`, with `fields` that type has set on it."""
        result = result_type()
        if isinstance(self.data, result_type):
            result.CopyFrom(self.data)
        known = result_type.DESCRIPTOR.fields_by_name
        for name, value in self.fields.items():
            if name in known:
                # A value of the wrong kind is left out: reporting the failure matters more than one field.
                with contextlib.suppress(TypeError, ValueError, AttributeError):
                    setattr(result, name, value)
        return result


@dataclass
class ProbeResult:
    success: bool
    # The type's result message (e.g. hostcheck.v1.TcpResult); None: nothing measured.
    data: Message | None = None
    error: str = ""
    error_code: str = ""


class Progress(Protocol):
    """Reports a step of a long probe (e.g. each reply, each hop), for live progress.

    `message` says the step in words, `done` of `total` steps, `data` is the type's result
    message as measured so far. Callable from any thread; the agent sends at most one every
    500 ms per task (the latest wins), so a prober reports every step and never throttles.
    """

    def __call__(self, message: str, *, done: int = 0, total: int = 0, data: Message | None = None) -> None: ...


def no_progress(message: str, *, done: int = 0, total: int = 0, data: Message | None = None) -> None:
    """The default: progress goes nowhere (a probe run outside the agent's stream)."""


@dataclass(frozen=True)
class ProbeSettings:
    """What the agent's operator set for probers (AgentConfig's dns_* settings), the same for every check.

    A prober module checks the ones it reads in its `check_settings(settings)` (see __init__.py)."""

    # Resolver of DNS checks that name none: ip or ip:port, or "system" for the agent's own
    # (/etc/resolv.conf: in a Kubernetes pod, the cluster's DNS). Not the system's by default: that
    # would let anyone enumerate cluster-internal names.
    dns_resolver: str = "1.1.1.1"
    # Allow DNS checks of private zones (cluster.local, internal, local, reverse zones of refused ranges).
    dns_private_zones: bool = False
    # Root servers a DNS trace starts from (ip or ip:port); empty: the IANA root servers.
    dns_root_servers: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: AgentConfig) -> ProbeSettings:
        return cls(dns_resolver=config.dns_resolver, dns_private_zones=config.dns_private_zones,
                   dns_root_servers=tuple(config.dns_root_servers))


@dataclass(frozen=True)
class ProbeRequest:
    target: Target
    # The check type's options message (e.g. hostcheck.v1.TcpOptions).
    options: Any
    # Seconds the probe may take in all.
    timeout: float
    # 4 or 6 to force a family for a host name; 0 for any.
    ip_version: int
    guard: TargetGuard
    settings: ProbeSettings = field(default_factory=ProbeSettings)
    # Where a long probe reports its steps (see Progress).
    progress: Progress = field(default=no_progress, compare=False)


class Prober(Protocol):
    async def __call__(self, request: ProbeRequest) -> ProbeResult: ...


async def resolve(request: ProbeRequest, *, port: int | None = None) -> list[IPAddress]:
    """Addresses of the target host in preference order, each allowed by the guard.

    An IP target is used as is. For a name, every address it resolves to must be
    allowed: a name that resolves to 127.0.0.1 is refused (DNS rebinding).
    """
    host = request.target.host
    ip = request.target.ip
    if ip is not None:
        _check_family(ip, request.ip_version)
        _guard(request.guard, ip, host)
        return [ip]
    family = {4: socket.AF_INET, 6: socket.AF_INET6}.get(request.ip_version, socket.AF_UNSPEC)
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        code = "nxdomain" if exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5)) else "dns_error"
        raise ProbeError(code, f"cannot resolve {host}: {exc.strerror}") from exc
    addrs: list[IPAddress] = []
    for info in infos:
        addr = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if addr not in addrs:
            addrs.append(addr)
    if not addrs:
        raise ProbeError("nxdomain", f"{host} has no address for IPv{request.ip_version or '4/6'}")
    for addr in addrs:
        _guard(request.guard, addr, host)
    return addrs


def _check_family(ip: IPAddress, ip_version: int) -> None:
    if ip_version and ip.version != ip_version:
        raise ProbeError("bad_target", f"{ip} is not an IPv{ip_version} address")


def _guard(guard: TargetGuard, ip: IPAddress, host: str) -> None:
    reason = guard.refusal(ip)
    if reason:
        raise ProbeError("target_refused", f"{host}: {reason}", address=str(ip))


def budget(request: ProbeRequest) -> float:
    """Seconds a prober may spend: its timeout less a margin, so that under load the prober's own
    deadline (which reports what it measured) fires before the runner's (which reports only "timeout")."""
    return request.timeout - min(max(0.1 * request.timeout, 0.05), 0.5)


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)
