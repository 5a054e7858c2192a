"""What the monitors' acceptance tests need (issue 16): a webhook receiver that checks signatures, and a
network-namespace lab where one agent can be cut off from a target the others still reach.

The lab (every address private to it; the host only gets a bridge):

    host (services, Postgres, Redis, webhook receiver on 127.0.0.1)
      bridge {p}br 10.97.K.1/24  <- the services listen here (registry, results, schedulers)
        |  veth {p}h1 .. {p}h3
    agent namespaces {p}a1 .. {p}a3: up0 10.97.K.(10+n)/24, default via 10.97.K.1
        |  veth tgt0 10.98.n.2/24 -- a{n} 10.98.n.1/24, route 10.98.0.0/24 via 10.98.n.1
    target namespace {p}t: 10.98.0.1/32 on lo, a TCP server on it

Every agent reaches the same target address (10.98.0.1) over its own link; cutting agent n off is a
blackhole route for the target in its namespace (`ip -n {p}a{n} route add blackhole 10.98.0.1/32`),
restoring it deletes that route. Agents run in their namespace (`ip netns exec`, which execs the
agent: the pid is the agent's). `delete()` removes every namespace, link and the bridge, whatever
state the test left them in.

Run as `python -m tests.monitorlab serve-tcp HOST PORT` it is the target's server: accepts and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import Proc, free_port, hostcheck_cmd
from tests.procs import REGISTRATION_TOKEN, ProcSystem

TARGET = "10.98.0.1"
TARGET_NET = "10.98.0.0/16"


# ---- the webhook receiver -------------------------------------------------------------------------

@dataclass
class Received:
    """One POST as the receiver got it."""

    at: float  # time.monotonic()
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def payload(self) -> dict:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        """The signature of docs/monitors.md: sha256=hex(HMAC-SHA256(secret, f"{timestamp}." + body))."""
        timestamp = self.headers.get("x-hostcheck-timestamp", "")
        expected = "sha256=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + self.body,
                                        hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("x-hostcheck-signature", ""), expected)


@dataclass
class WebhookReceiver:
    """An HTTP/1.1 server on 127.0.0.1 recording every request (answering 200), stoppable and restartable
    on the same port: stopped, it refuses connections and drops the ones open (a receiver that is down)."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                _, path, _ = line.decode("latin-1").split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                if headers.get("transfer-encoding", "").lower() == "chunked":
                    body = b""
                    while size := int((await reader.readline()).split(b";")[0], 16):
                        body += await reader.readexactly(size)
                        await reader.readline()
                    await reader.readline()
                else:
                    body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.received.append(Received(time.monotonic(), path, headers, body))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: text/plain\r\n\r\nok")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    def for_event(self, event_id: str) -> list[Received]:
        return [r for r in self.received if r.payload.get("event_id") == event_id]


# ---- the network-namespace lab ----------------------------------------------------------------------

class LabError(RuntimeError):
    pass


def _ip() -> str:
    found = shutil.which("ip") or shutil.which("ip", path="/usr/sbin:/sbin")
    if found is None:
        raise LabError("the ip command is not installed (iproute2)")
    return found


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=20)
    if check and done.returncode != 0:
        raise LabError(f"{' '.join(args)}: {done.stderr.strip() or done.stdout.strip()}")
    return done


def cannot_create() -> str | None:
    """Why the lab cannot be made here (not root, no ip, no bridge or veth), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    try:
        ip = _ip()
    except LabError as exc:
        return str(exc)
    name = f"hcmx{secrets.token_hex(2)}"
    tried = _sh(ip, "netns", "add", name, check=False)
    if tried.returncode != 0:
        return f"ip netns add: {tried.stderr.strip()}"
    _sh(ip, "netns", "del", name, check=False)
    return None


class MonitorLab:
    """Agent namespaces that reach one target over links of their own, and the services over a host bridge."""

    def __init__(self, agents: int = 3) -> None:
        self.n = agents
        self.prefix = f"hcm{secrets.token_hex(2)}"
        # The host's side: a /24 of 10.97/16 picked at random, so two labs at once do not collide.
        self.k = random.randrange(1, 255)
        self.host_addr = f"10.97.{self.k}.1"
        self.bridge = f"{self.prefix}br"
        self.target_ns = f"{self.prefix}t"
        self.namespaces: list[str] = []
        self.links: list[str] = []
        self.cut: set[int] = set()
        self.ip = _ip()

    def agent_ns(self, n: int) -> str:
        return f"{self.prefix}a{n}"

    def _ipn(self, ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return _sh(self.ip, "-n", ns, *args, check=check)

    def create(self) -> MonitorLab:
        ip, t = self.ip, self.target_ns
        try:
            _sh(ip, "link", "add", self.bridge, "type", "bridge")
            self.links.append(self.bridge)
            _sh(ip, "addr", "add", f"{self.host_addr}/24", "dev", self.bridge)
            _sh(ip, "link", "set", self.bridge, "up")
            _sh(ip, "netns", "add", t)
            self.namespaces.append(t)
            self._ipn(t, "link", "set", "lo", "up")
            self._ipn(t, "addr", "add", f"{TARGET}/32", "dev", "lo")
            for n in range(1, self.n + 1):
                a, host_end = self.agent_ns(n), f"{self.prefix}h{n}"
                _sh(ip, "netns", "add", a)
                self.namespaces.append(a)
                self._ipn(a, "link", "set", "lo", "up")
                # The control plane: agent -> host bridge (the services).
                _sh(ip, "link", "add", host_end, "type", "veth", "peer", "name", "up0", "netns", a)
                self.links.append(host_end)
                _sh(ip, "link", "set", host_end, "master", self.bridge)
                _sh(ip, "link", "set", host_end, "up")
                self._ipn(a, "addr", "add", f"10.97.{self.k}.{10 + n}/24", "dev", "up0")
                self._ipn(a, "link", "set", "up0", "up")
                self._ipn(a, "route", "add", "default", "via", self.host_addr)
                # The data plane: agent -> target namespace, a link of its own.
                self._ipn(a, "link", "add", "tgt0", "type", "veth", "peer", "name", f"a{n}", "netns", t)
                self._ipn(a, "addr", "add", f"10.98.{n}.2/24", "dev", "tgt0")
                self._ipn(t, "addr", "add", f"10.98.{n}.1/24", "dev", f"a{n}")
                self._ipn(a, "link", "set", "tgt0", "up")
                self._ipn(t, "link", "set", f"a{n}", "up")
                self._ipn(a, "route", "add", "10.98.0.0/24", "via", f"10.98.{n}.1")
        except BaseException:
            self.delete()
            raise
        return self

    def cut_off(self, n: int) -> None:
        """Agent n can no longer reach the target (its control plane stays up)."""
        self._ipn(self.agent_ns(n), "route", "add", "blackhole", f"{TARGET}/32")
        self.cut.add(n)

    def restore(self, n: int) -> None:
        self._ipn(self.agent_ns(n), "route", "del", "blackhole", f"{TARGET}/32")
        self.cut.discard(n)

    def in_ns(self, ns: str, args: list[str]) -> list[str]:
        return [self.ip, "netns", "exec", ns, *args]

    def start_target(self, workdir: Path) -> tuple[int, Proc]:
        """A TCP server on TARGET in the target namespace: accepts and closes. Returns its port and process."""
        port = random.randrange(20000, 30000)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
        proc = Proc(self.in_ns(self.target_ns, [sys.executable, "-m", "tests.monitorlab", "serve-tcp", TARGET,
                                                str(port)]), env=env, log_path=workdir / "target.log")
        deadline = time.monotonic() + 15
        while "listening" not in proc.output():
            if not proc.alive() or time.monotonic() > deadline:
                proc.stop()
                raise LabError(f"target server did not start:\n{proc.output()[-2000:]}")
            time.sleep(0.02)
        return port, proc

    def reachable(self, n: int, port: int) -> bool:
        """Whether agent n's namespace can open a TCP connection to the target now."""
        probe = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).close()\n"
                 "except OSError:\n sys.exit(1)\n")
        return _sh(*self.in_ns(self.agent_ns(n), [sys.executable, "-c", probe, TARGET, str(port)]),
                   check=False).returncode == 0

    def delete(self) -> None:
        """Removes everything made, whatever state it is in (idempotent; errors ignored)."""
        for ns in reversed(self.namespaces):
            _sh(self.ip, "netns", "del", ns, check=False)  # takes its veths (and their peers) with it
        for link in reversed(self.links):
            if _sh(self.ip, "link", "show", link, check=False).returncode == 0:
                _sh(self.ip, "link", "del", link, check=False)
        self.namespaces.clear()
        self.links.clear()

    def leftovers(self) -> list[str]:
        """Namespaces or links of this lab that still exist (empty after delete())."""
        names = _sh(self.ip, "netns", "list", check=False).stdout.split()
        links = _sh(self.ip, "-o", "link", "show", check=False).stdout
        return [n for n in names if n.startswith(self.prefix)] + \
            [w.rstrip(":").split("@")[0] for w in links.split() if w.startswith(self.prefix)]


# ---- the production shape in the lab ------------------------------------------------------------------

class LabSystem(ProcSystem):
    """tests/procs.py's processes, listening on the lab's host address so the agents in their namespaces
    reach them; two scheduler replicas; agents started in the lab's namespaces."""

    lab: MonitorLab

    def addr(self, name: str) -> str:
        return f"{self.lab.host_addr}:{self.ports[name]}"

    async def start(self) -> LabSystem:
        for name in ("results", "registry", "scheduler", "scheduler2"):
            self.ports[name] = free_port(self.lab.host_addr)
        # results first (it migrates the database), then the others at once: a few seconds less per run.
        await self.start_service("results")
        await asyncio.gather(*(self.start_service(name) for name in ("registry", "scheduler", "scheduler2")))
        return self

    def start_agent(self, name: str, **env_overrides: str) -> Proc:
        """Agent `name` (a1, a2, a3) in its namespace, with both schedulers' addresses (it moves to the other
        when one fails)."""
        n = int(name.removeprefix("a"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
        env.update({"HOSTCHECK_SCHEDULER_ADDR": f"{self.addr('scheduler')},{self.addr('scheduler2')}",
                    "HOSTCHECK_REGISTRY_ADDR": self.addr("registry"),
                    "HOSTCHECK_REGISTRATION_TOKEN": REGISTRATION_TOKEN,
                    "HOSTCHECK_STATE_FILE": str(self.workdir / f"agent-{name}.json"), "HOSTCHECK_NAME": name,
                    "HOSTCHECK_ALLOW_TARGETS": TARGET_NET, "HOSTCHECK_RESULT_FLUSH_MS": "5", **env_overrides})
        proc = Proc(self.lab.in_ns(self.lab.agent_ns(n), hostcheck_cmd("agent")), env=env,
                    log_path=self.workdir / f"agent-{name}.log")
        self.agents[name] = proc
        return proc


def lab_system(lab: MonitorLab, database_url: str, live_url: str, prefix: str, workdir: Path) -> LabSystem:
    system = LabSystem(database_url, live_url, prefix, workdir, extra_env={
        "scheduler": {"HOSTCHECK_ALLOW_TARGETS": TARGET_NET},
        "results": {"HOSTCHECK_ALLOW_TARGETS": f"{TARGET_NET},127.0.0.0/8", "HOSTCHECK_MONITOR_MIN_INTERVAL_S": "1"},
    })
    system.lab = lab
    return system


# ---- the target server ---------------------------------------------------------------------------------

async def _serve_tcp(host: str, port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()
    server = await asyncio.start_server(handle, host, port, reuse_address=True)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve-tcp"]:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_tcp(sys.argv[2], int(sys.argv[3])))
    else:
        sys.exit("usage: python -m tests.monitorlab serve-tcp HOST PORT")
