"""A real Envoy (the repo's envoy.yaml, rendered) in front of the services.

`gateway`: one for the tests of this folder (package scope: stopped when they are done, not left
running under every later test), in front of the services in this process on SQLite + memory
(the embedded default) with one agent; the production path (separate processes, Postgres,
Redis) has its own test in test_production.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hostcheck.gateway import envoy
from tests.conftest import System
from tests.helpers import Proc, assert_eventually, free_port


@dataclass
class Gateway:
    """A running Envoy: `url` for HTTP (REST, gRPC-Web), `addr` for gRPC, `admin` for its admin API."""

    proc: Proc
    port: int
    admin_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


def start_envoy(config: Path, workdir: Path) -> Proc:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    return Proc([envoy.envoy_binary(), "-c", str(config), "--use-dynamic-base-id", "--log-level", "warn"],
                env=env, log_path=workdir / "envoy.log", cwd=workdir)


async def wait_envoy_ready(gw: Gateway, *, timeout: float = 20.0) -> None:
    """Ready means listeners up and every cluster through its first round of health checks."""
    async with httpx.AsyncClient() as client:
        async def ready() -> bool:
            if not gw.proc.alive():
                raise AssertionError(f"envoy exited with {gw.proc.popen.returncode}:\n{gw.proc.output()[-3000:]}")
            try:
                return (await client.get(f"{gw.admin}/ready", timeout=1)).status_code == 200
            except httpx.HTTPError:
                return False
        await assert_eventually(ready, timeout=timeout, message="envoy /ready")


async def start_gateway(system: System, workdir: Path) -> Gateway:
    return await start_gateway_for(envoy.Upstreams(scheduler=system.scheduler_addr, results=system.results_addr,
                                                   registry=system.registry_addr), workdir)


async def start_gateway_for(upstreams: envoy.Upstreams, workdir: Path) -> Gateway:
    port, admin_port = free_port(), free_port()
    config = workdir / "envoy.yaml"
    config.write_text(envoy.render(listen_address="127.0.0.1", listen_port=port, admin_port=admin_port,
                                   upstreams=upstreams))
    gw = Gateway(start_envoy(config, workdir), port, admin_port)
    try:
        await wait_envoy_ready(gw)
    except BaseException:
        gw.proc.stop()
        raise
    return gw


@pytest.fixture(scope="package")
async def gateway_system(tmp_path_factory):
    """The services in this process (SQLite + memory) with one online agent."""
    workdir = tmp_path_factory.mktemp("gateway-system")
    system = System(f"sqlite:///{workdir / 'hostcheck.db'}", "memory://", "unused:")
    try:
        await system.start()
        await system.start_agent(workdir, "gw-agent")
        yield system
    finally:
        await system.stop()


@pytest.fixture(scope="package")
async def gateway(gateway_system, tmp_path_factory):
    gw = await start_gateway(gateway_system, tmp_path_factory.mktemp("envoy"))
    try:
        yield gw
    finally:
        gw.proc.stop()


@pytest.fixture
async def rest(gateway):
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as client:
        yield client
