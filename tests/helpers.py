"""Test helpers: polling with a deadline (never sleeps as synchronisation), ports, processes, servers."""

from __future__ import annotations

import asyncio
import http.server
import inspect
import os
import random
import re
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


async def assert_eventually(fn, *, timeout: float = 10.0, interval: float = 0.02, message: str = ""):
    """Calls fn (sync or async) until it returns a truthy value or stops raising AssertionError."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = fn()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            last_error = None
        except AssertionError as exc:
            last_error = exc
        if time.monotonic() > deadline:
            if last_error is not None:
                raise AssertionError(f"not true within {timeout} s: {message}") from last_error
            raise AssertionError(f"not true within {timeout} s: {message or fn}")
        await asyncio.sleep(interval)


# How late a timer may fire on a loaded machine (CI's 2 cores, shared) before a test calls it a bug. A
# deadline that never fires still fails: the test servers then hold on far longer (30 s, or for ever).
TIMER_SLACK_S = 1.0


def within(timeout_s: float) -> float:
    """The most a probe with this timeout may take, timer slack included."""
    return timeout_s + TIMER_SLACK_S


_handed_out: set[tuple[str, int]] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(p) for p in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    return low, high


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on `host` now, for a server that must be told its port before it starts (Envoy's config,
    a child process's settings).

    Not from the kernel's ephemeral range: a port bound to 0 and released there can be handed to any
    socket of any process (an outgoing connection, another test's port 0) before our server binds it.
    Below that range the kernel never picks it; a random one, never the same twice in a run, checked
    bindable (also with SO_REUSEADDR off, as a server binds it). Where a server can bind port 0 itself
    and say its port, that is better still.
    """
    low, _ = _ephemeral_range()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(10000, min(low, 65536)) if low > 11000 else rng.randrange(1024, 65536)
        if (host, port) in _handed_out:
            continue
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add((host, port))
        return port
    raise RuntimeError(f"no free port on {host} below the ephemeral range ({low})")


class Proc:
    """A child process we started, stopped by its pid; its output kept in a log file."""

    def __init__(self, args: list[str], *, env: dict[str, str], log_path: Path, cwd: Path | None = None) -> None:
        self.args = args
        self.log_path = log_path
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, env=env, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd or ROOT,
                                      start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, grace: float = 10.0) -> int | None:
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(10)
        self._log.close()
        return self.popen.returncode

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")


def hostcheck_cmd(*args: str) -> list[str]:
    return [str(VENV_BIN / "python"), "-m", "hostcheck.cli", *args]


async def health_status(addr: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(addr) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1)
            return reply.status
        except grpc.aio.AioRpcError:
            return -1


async def wait_serving(addr: str, proc: Proc | None = None, *, timeout: float = 20.0) -> None:
    async def serving() -> bool:
        if proc is not None and not proc.alive():
            raise AssertionError(f"{proc.args} exited with {proc.popen.returncode}:\n{proc.output()[-3000:]}")
        return await health_status(addr) == health_pb2.HealthCheckResponse.SERVING
    await assert_eventually(serving, timeout=timeout, message=f"{addr} serving")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hang = threading.Event()

    def log_message(self, *args) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self.server.hits[self.path.split("/")[1]] = self.server.hits.get(self.path.split("/")[1], 0) + 1
        if self.path.startswith("/hang"):
            # Holds the request until the test ends (the server's stop releases it).
            self.server.stopping.wait(30)
            return
        if self.path.startswith("/slow/"):
            # Answers after the given milliseconds (or when the test ends).
            self.server.stopping.wait(int(self.path.split("/")[2]) / 1000.0)
        body = b"hello from the test server\n"
        status = 200 if self.path in ("/", "/ok") or self.path.startswith("/slow/") else 404
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    allow_reuse_address = True


class HttpTarget:
    """An HTTP/1.1 server on loopback: `/` answers 200, `/slow/MS` after MS ms, `/hang` never.

    `hits` counts requests by first path segment ("hang", "slow", "").
    """

    def __init__(self) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.server.stopping = threading.Event()
        self.server.hits = {}
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def hits(self) -> dict[str, int]:
        return self.server.hits

    def stop(self) -> None:
        self.server.stopping.set()
        self.server.shutdown()
        self.server.server_close()



# Envoy resolves the names of its STRICT_DNS clusters even in `--mode validate` (and its bootstrap
# resolver setting does not reach them): tests that load a config naming Kubernetes services map
# those names to localhost (answered from /etc/hosts), so no query leaves this machine (tests send
# traffic only to loopback or to their own namespaces).
_SERVICE_HOSTS = re.compile(r"address: (registry|results|scheduler)(-headless)?\b")


def with_loopback_dns(envoy_config: str) -> str:
    """`envoy_config` with the services' host names replaced by localhost."""
    return _SERVICE_HOSTS.sub("address: localhost", envoy_config)
