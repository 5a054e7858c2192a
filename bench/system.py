"""What the benchmarks run against: the services as processes on Postgres + Redis with the
production defaults, Envoy in front, real agent processes, loopback targets, blackbox_exporter.

The only settings that differ from a default install are addresses, the registration
token, the target allow-list (loopback, which the guard refuses by default), the
rate-limit quota (100 checks per IP per hour would stop a benchmark; the limiter
still runs on every CreateCheck) and the watch streams allowed per client IP (every
simulated watcher comes from 127.0.0.1; the bound is still checked on every WatchCheck).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import psycopg

from hostcheck.gateway import envoy
from hostcheck.services.registry.service import hash_token
from hostcheck.v1 import registry_pb2_grpc, results_pb2_grpc, scheduler_pb2_grpc
from tests.gateway.conftest import Gateway, start_gateway_for
from tests.helpers import Proc, free_port, hostcheck_cmd, wait_serving

REGISTRATION_TOKEN = "bench-registration-token"
LOOPBACK = "127.0.0.0/8,::1/128"
RATE_LIMIT_QUOTA = "1000000"
WATCHERS_PER_IP = "1000000"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- process metrics --------------------------------------------------------------------------

def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine() -> dict[str, str]:
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cores": str(os.cpu_count()), "memory": f"{mem_kb / 1024 / 1024:.1f} GiB", "cpu": model}


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class CpuWindow:
    """CPU used by some processes over a wall-clock window, as % of one core."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.start = time.monotonic()
        self.cpu = {name: cpu_s(pid) for name, pid in pids.items()}

    def percent(self) -> dict[str, float]:
        wall = time.monotonic() - self.start
        return {name: 100.0 * (cpu_s(pid) - self.cpu[name]) / wall for name, pid in self.pids.items()}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# ---- the services -----------------------------------------------------------------------------

@dataclass
class BenchSystem:
    """registry, results and scheduler, each its own process (production mode)."""

    database_url: str
    live_url: str
    prefix: str
    workdir: Path
    ports: dict[str, int] = field(default_factory=dict)
    procs: dict[str, Proc] = field(default_factory=dict)
    agents: list[Proc] = field(default_factory=list)
    channels: list = field(default_factory=list)

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.ports[name]}"

    def pid(self, name: str) -> int:
        return self.procs[name].pid

    def _env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
        env.update({"HOSTCHECK_DATABASE_URL": self.database_url, "HOSTCHECK_LIVE_STATE_URL": self.live_url,
                    "HOSTCHECK_LIVE_STATE_PREFIX": self.prefix, "HOSTCHECK_LISTEN": self.addr(name),
                    "HOSTCHECK_REGISTRY_ADDR": self.addr("registry"), "HOSTCHECK_RESULTS_ADDR": self.addr("results")})
        if name == "registry":
            env["HOSTCHECK_REGISTRATION_TOKEN"] = REGISTRATION_TOKEN
        if name == "scheduler":
            env.update({"HOSTCHECK_ALLOW_TARGETS": LOOPBACK, "HOSTCHECK_RATE_LIMIT": RATE_LIMIT_QUOTA})
        if name == "results":
            # Every simulated watcher comes from 127.0.0.1: one client IP stands for thousands of clients.
            env["HOSTCHECK_WATCHERS_PER_CLIENT_IP"] = WATCHERS_PER_IP
        return env

    async def start(self) -> BenchSystem:
        for name in ("results", "registry", "scheduler"):
            self.ports[name] = free_port()
        for name in ("results", "registry", "scheduler"):
            proc = Proc(hostcheck_cmd(name), env=self._env(name), log_path=self.workdir / f"{name}.log")
            self.procs[name] = proc
            await wait_serving(self.addr(name), proc, timeout=60)
        self.channel = grpc.aio.insecure_channel(self.addr("scheduler"))
        self.results_channel = grpc.aio.insecure_channel(self.addr("results"))
        self.channels = [self.channel, self.results_channel]
        return self

    @property
    def create(self) -> scheduler_pb2_grpc.SchedulerServiceStub:
        return scheduler_pb2_grpc.SchedulerServiceStub(self.channel)

    @property
    def checks(self) -> results_pb2_grpc.ResultsServiceStub:
        return results_pb2_grpc.ResultsServiceStub(self.results_channel)

    def registry_stub(self, channel) -> registry_pb2_grpc.RegistryServiceStub:
        return registry_pb2_grpc.RegistryServiceStub(channel)

    def add_agents(self, n: int, *, prefix: str = "sim") -> list[tuple[str, str]]:
        """Agent rows written straight into the database (as RegisterAgent would write them).

        Registration is not what is measured; the stream's token check still is.
        """
        agents = [(str(uuid.uuid4()), secrets.token_urlsafe(32)) for _ in range(n)]
        caps = json.dumps(["http", "tcp", "ping", "dns", "udp", "traceroute"])
        with psycopg.connect(self.database_url) as conn, conn.cursor() as cur:
            with cur.copy("COPY agents (id, name, location, region, country, city, asn, labels, capabilities, "
                          "version, api_token_hash, registered_at, metadata) FROM STDIN") as copy:
                for i, (agent_id, token) in enumerate(agents):
                    copy.write_row((agent_id, f"{prefix}-{i}", "bench", "bench", "DE", "", 0, "{}", caps, "",
                                    hash_token(token), "2026-11-28T00:00:00Z", "{}"))
        return agents

    def start_agent(self, name: str, agent: tuple[str, str], *, scheduler_addr: str | None = None) -> Proc:
        """A real agent process with the default settings."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
        env.update({"HOSTCHECK_SCHEDULER_ADDR": scheduler_addr or self.addr("scheduler"),
                    "HOSTCHECK_AGENT_ID": agent[0], "HOSTCHECK_API_TOKEN": agent[1],
                    "HOSTCHECK_STATE_FILE": str(self.workdir / f"agent-{name}.json"), "HOSTCHECK_NAME": name,
                    "HOSTCHECK_ALLOW_TARGETS": LOOPBACK})
        proc = Proc(hostcheck_cmd("agent"), env=env, log_path=self.workdir / f"agent-{name}.log")
        self.agents.append(proc)
        return proc

    async def stop(self) -> None:
        for ch in self.channels:
            await ch.close()
        for proc in self.agents:
            proc.stop()
        for name in ("scheduler", "registry", "results"):
            if name in self.procs:
                self.procs[name].stop()

    def logs(self) -> str:
        return "\n".join(f"--- {p.log_path.name}\n{p.output()[-3000:]}" for p in [*self.procs.values(), *self.agents])


async def start_gateway(system: BenchSystem, workdir: Path) -> Gateway:
    """Envoy rendered from the repo's envoy.yaml in front of the services (as in production)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return await start_gateway_for(envoy.Upstreams(scheduler=system.addr("scheduler"),
                                                   results=system.addr("results"),
                                                   registry=system.addr("registry")), workdir)


# ---- loopback targets and the peer --------------------------------------------------------------

TARGET_ENVOY = """
static_resources:
  listeners:
  - name: target
    address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: target
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{prefix: "/"}}
                direct_response: {{status: 200, body: {{inline_string: "hello from the bench target\\n"}}}}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: {admin}}}}}
"""

BLACKBOX_CONFIG = """
modules:
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp: {{preferred_ip_protocol: ip4}}
  http_2xx:
    prober: http
    timeout: 5s
    http: {{preferred_ip_protocol: ip4}}
  dns_a:
    prober: dns
    timeout: 5s
    dns: {{query_name: {name}, query_type: A, preferred_ip_protocol: ip4}}
"""

DNS_NAME = "www.bench.test"


async def _wait_port(port: int, proc: Proc, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if not proc.alive():
            raise RuntimeError(f"{what} exited:\n{proc.output()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not listening on {port} after {timeout} s") from None
            await asyncio.sleep(0.05)


@dataclass
class Targets:
    """An HTTP/TCP target (Envoy answering 200 from one worker) and a DNS server (dnsmasq)."""

    http_port: int
    dns_port: int
    procs: list[Proc]

    def stop(self) -> None:
        for proc in self.procs:
            proc.stop()


async def start_targets(workdir: Path) -> Targets:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    http_port, admin_port, dns_port = free_port(), free_port(), free_port()
    config = workdir / "target-envoy.yaml"
    config.write_text(TARGET_ENVOY.format(port=http_port, admin=admin_port))
    web = Proc([envoy.envoy_binary(), "-c", str(config), "--use-dynamic-base-id", "--concurrency", "1",
                "--log-level", "error"], env=env, log_path=workdir / "target-envoy.log", cwd=workdir)
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    dns = Proc([dnsmasq, "--keep-in-foreground", "--no-resolv", "--no-hosts", "--conf-file=/dev/null",
                "--listen-address=127.0.0.1", "--bind-interfaces", f"--port={dns_port}", "--user=root",
                f"--host-record={DNS_NAME},127.0.0.10", "--local=/bench.test/", "--cache-size=1000"],
               env=env, log_path=workdir / "dnsmasq.log")
    targets = Targets(http_port, dns_port, [web, dns])
    try:
        await _wait_port(http_port, web, "target envoy")
        async with httpx.AsyncClient() as client:
            deadline = time.monotonic() + 20
            while (await client.get(f"http://127.0.0.1:{http_port}/")).status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError("target envoy does not answer 200")
                await asyncio.sleep(0.05)
    except BaseException:
        targets.stop()
        raise
    return targets


def blackbox_binary() -> str | None:
    return shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")


@dataclass
class Blackbox:
    proc: Proc
    port: int

    def stop(self) -> None:
        self.proc.stop()


async def start_blackbox(workdir: Path) -> Blackbox:
    binary = blackbox_binary()
    if binary is None:
        raise RuntimeError("prometheus-blackbox-exporter is not installed (scripts/setup-system.sh installs it)")
    config = workdir / "blackbox.yml"
    config.write_text(BLACKBOX_CONFIG.format(name=DNS_NAME))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    proc = Proc([binary, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                env=env, log_path=workdir / "blackbox.log")
    await _wait_port(port, proc, "blackbox_exporter")
    return Blackbox(proc, port)
