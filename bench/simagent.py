"""Simulated agents: many agent streams in one process, speaking the real stream protocol.

Each simulated agent authenticates like a real one (x-agent-id + Bearer token, checked
by the registry on every connect), sends hello, heartbeats at the interval the
welcome gives, answers tasks and counts acks. What it does with a task is its mode:

- `probe`: runs the real prober (hostcheck.agent.runner.run_task), as an agent does;
- `synthetic`: answers at once with a tcp-like result;
- `hold`: makes that result but keeps it until `release` (to measure ingestion or watchers).

Results go up in batches under the agent's own rule (`hostcheck.agent.client.flush_delay`) and
default settings (AgentConfig). Streams share a few HTTP/2 connections
(`streams_per_channel`), which a real fleet would not: per-stream memory in the
scheduler is then a lower bound of per-agent memory with one connection each.

Run as `python -m bench.simagent`; it reads one JSON command per line on stdin
and answers one JSON line on stdout (see `Fleet.handle`). `SimFleet` drives
several such processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import grpc

from hostcheck.agent.client import flush_delay
from hostcheck.agent.probers import PROBERS
from hostcheck.agent.runner import run_task
from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.core.config import AgentConfig
from hostcheck.core.rpc import CHANNEL_OPTIONS
from hostcheck.core.targets import TargetGuard
from hostcheck.core.timestamps import now_ts
from hostcheck.v1 import scheduler_pb2, scheduler_pb2_grpc, tcp_pb2

log = logging.getLogger("bench.simagent")

DEFAULTS = AgentConfig()
CONNECT_PATIENCE_S = 60.0
LOOPBACK = TargetGuard.from_cidrs(["127.0.0.0/8", "::1/128"])


def synthetic_result(task: scheduler_pb2.Task) -> scheduler_pb2.TaskResult:
    """What a tcp probe of a loopback port reports, without probing (another type: an empty result of its own)."""
    result = scheduler_pb2.TaskResult(task_id=task.task_id, check_id=task.check_id, check_type=task.check_type,
                                      success=True, duration_ms=0.12, started_at=now_ts())
    if task.check_type == "tcp":
        result.data.tcp.CopyFrom(tcp_pb2.TcpResult(address="127.0.0.1", port=9, ip_version=4, connect_ms=0.081))
    elif task.check_type in CHECK_TYPES:
        getattr(result.data, task.check_type).SetInParent()  # an empty result of its own type
    return result


class SimAgent:
    """One agent stream."""

    def __init__(self, fleet: Fleet, agent_id: str, token: str) -> None:
        self.fleet = fleet
        self.agent_id = agent_id
        self.token = token
        self.call = None
        self.lock = asyncio.Lock()
        self.pending: list[scheduler_pb2.TaskResult] = []
        self.held: list[scheduler_pb2.TaskResult] = []
        self.flushing = False
        self.last_flush = 0.0
        self.in_flight = 0
        self.tasks: list[asyncio.Task] = []

    async def connect(self, stub) -> None:
        metadata = (("x-agent-id", self.agent_id), ("authorization", f"Bearer {self.token}"))
        self.call = stub.Connect(metadata=metadata)
        await self.call.write(scheduler_pb2.ConnectRequest(hello=scheduler_pb2.AgentHello(
            version="bench-sim", capabilities=sorted(CHECK_TYPES))))
        first = await self.call.read()
        if first is grpc.aio.EOF or first.WhichOneof("message") != "welcome":
            raise RuntimeError(f"no welcome for {self.agent_id}")
        interval = first.welcome.heartbeat_interval_s or 10
        self.tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._heartbeats(interval))]

    async def _write(self, message) -> None:
        async with self.lock:
            await self.call.write(message)

    async def _heartbeats(self, interval: float) -> None:
        await asyncio.sleep(random.uniform(0, interval))  # agents connect at different times
        while True:
            await self._write(scheduler_pb2.ConnectRequest(
                heartbeat=scheduler_pb2.AgentHeartbeat(tasks_in_flight=self.in_flight)))
            self.fleet.heartbeats += 1
            await asyncio.sleep(interval)

    async def _read(self) -> None:
        fleet = self.fleet
        try:
            while True:
                message = await self.call.read()
                if message is grpc.aio.EOF:
                    break
                kind = message.WhichOneof("message")
                if kind == "tasks":
                    now = time.monotonic()
                    for task in message.tasks.tasks:
                        fleet.task_arrived(task, now)
                        self._take(task)
                elif kind == "ack":
                    fleet.acked += len(message.ack.task_ids)
                    fleet.last_ack = time.monotonic()
        except asyncio.CancelledError:
            raise
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                log.warning("stream of %s ended: %s", self.agent_id, exc.code().name)
        fleet.disconnects += 1

    def _take(self, task: scheduler_pb2.Task) -> None:
        mode = self.fleet.mode
        if mode == "probe":
            self.in_flight += 1
            asyncio.create_task(self._probe(task))
        elif mode == "hold":
            self.held.append(synthetic_result(task))
        else:
            self.queue([synthetic_result(task)])

    async def _probe(self, task: scheduler_pb2.Task) -> None:
        async with self.fleet.slots:
            result = await run_task(task, LOOPBACK, PROBERS)
        self.in_flight -= 1
        self.queue([result])

    def queue(self, results: list[scheduler_pb2.TaskResult]) -> None:
        self.pending.extend(results)
        if not self.flushing:
            self.flushing = True
            asyncio.create_task(self._flush())

    async def _flush(self) -> None:
        """Sends pending results under the real agent's batching rule."""
        size = DEFAULTS.result_batch_size
        linger = DEFAULTS.result_flush_ms / 1000.0
        try:
            while self.pending:
                delay = flush_delay(len(self.pending), size, linger, time.monotonic() - self.last_flush)
                if delay > 0:
                    await asyncio.sleep(delay)
                self.last_flush = time.monotonic()
                while self.pending:
                    batch, self.pending = self.pending[:size], self.pending[size:]
                    await self._write(scheduler_pb2.ConnectRequest(results=scheduler_pb2.ResultBatch(results=batch)))
                    self.fleet.results_sent += len(batch)
        finally:
            self.flushing = False

    def release(self, spread_s: float) -> int:
        held, self.held = self.held, []
        if spread_s <= 0:
            if held:
                self.queue(held)
        else:
            loop = asyncio.get_running_loop()
            for result in held:
                loop.call_later(random.uniform(0, spread_s), self.queue, [result])
        return len(held)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.call is not None:
            self.call.cancel()


@dataclass
class Fleet:
    """The simulated agents of this process."""

    mode: str = "synthetic"
    agents: list[SimAgent] = field(default_factory=list)
    channels: list = field(default_factory=list)
    heartbeats: int = 0
    results_sent: int = 0
    acked: int = 0
    last_ack: float = 0.0
    disconnects: int = 0
    connect_retries: int = 0
    tasks_received: int = 0
    # check id -> [tasks, first arrival, last arrival] (time.monotonic(), shared by processes on Linux)
    arrivals: dict[str, list] = field(default_factory=lambda: defaultdict(lambda: [0, 0.0, 0.0]))
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(DEFAULTS.concurrency))

    def task_arrived(self, task: scheduler_pb2.Task, now: float) -> None:
        self.tasks_received += 1
        entry = self.arrivals[task.check_id]
        if entry[0] == 0:
            entry[1] = now
        entry[0] += 1
        entry[2] = now

    async def connect(self, scheduler: str, agents: list[list[str]], streams_per_channel: int,
                      parallel: int) -> dict:
        n_channels = max(1, -(-len(agents) // streams_per_channel))
        base = len(self.channels)
        for i in range(n_channels):
            # A unique argument gives each channel its own connection (no shared subchannel).
            self.channels.append(grpc.aio.insecure_channel(
                scheduler, options=[*CHANNEL_OPTIONS, ("bench.channel", base + i)]))
        gate = asyncio.Semaphore(parallel)
        failed = []

        async def one(i: int, agent_id: str, token: str) -> None:
            sim = SimAgent(self, agent_id, token)
            stub = scheduler_pb2_grpc.AgentStreamServiceStub(self.channels[base + i % n_channels])
            async with gate:
                # Like the agent: retry (e.g. UNAVAILABLE while the scheduler is busy) with randomised backoff.
                backoff, give_up = 0.2, time.monotonic() + CONNECT_PATIENCE_S
                while True:
                    try:
                        await sim.connect(stub)
                        self.agents.append(sim)
                        return
                    except (grpc.aio.AioRpcError, RuntimeError) as exc:
                        await sim.close()
                        if time.monotonic() > give_up:
                            failed.append(f"{agent_id}: {exc}")
                            return
                        self.connect_retries += 1
                        await asyncio.sleep(random.uniform(0, backoff))
                        backoff = min(backoff * 2, 5.0)

        started = time.monotonic()
        await asyncio.gather(*(one(i, a, t) for i, (a, t) in enumerate(agents)))
        return {"connected": len(agents) - len(failed), "failed": failed[:3], "started": started,
                "finished": time.monotonic(), "retries": self.connect_retries}

    def stats(self, checks: list[str] | None = None) -> dict:
        out = {"agents": len(self.agents), "heartbeats": self.heartbeats, "results_sent": self.results_sent,
               "acked": self.acked, "last_ack": self.last_ack, "disconnects": self.disconnects,
               "tasks_received": self.tasks_received, "held": sum(len(a.held) for a in self.agents)}
        if checks is not None:
            out["arrivals"] = {c: self.arrivals[c] for c in checks if c in self.arrivals}
        return out

    async def handle(self, cmd: dict) -> dict:
        name = cmd["cmd"]
        if name == "connect":
            self.mode = cmd.get("mode", self.mode)
            return await self.connect(cmd["scheduler"], cmd["agents"], cmd["streams_per_channel"],
                                      cmd.get("parallel", 100))
        if name == "mode":
            self.mode = cmd["mode"]
            return {"mode": self.mode}
        if name == "stats":
            return self.stats(cmd.get("checks"))
        if name == "release":
            return {"released": sum(a.release(cmd.get("spread_s", 0.0)) for a in self.agents),
                    "at": time.monotonic()}
        if name == "close":
            await asyncio.gather(*(a.close() for a in self.agents))
            for ch in self.channels:
                await ch.close()
            return {"closed": len(self.agents)}
        raise ValueError(f"unknown command {name!r}")


async def serve_commands() -> None:
    fleet = Fleet()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=64 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            break
        cmd = json.loads(line)
        try:
            reply = await fleet.handle(cmd)
        except Exception as exc:  # noqa: BLE001 - reported to the driver
            log.exception("command %s failed", cmd.get("cmd"))
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if cmd["cmd"] == "close":
            break


class SimFleet:
    """Drives `processes` simulated-agent processes from the benchmark."""

    def __init__(self, processes: int, *, log_dir) -> None:
        self.n = processes
        self.log_dir = log_dir
        self.procs: list[asyncio.subprocess.Process] = []
        self._logs = []

    async def start(self) -> SimFleet:
        for i in range(self.n):
            log_file = open(self.log_dir / f"simagent-{i}.log", "wb")  # noqa: SIM115 - closed in stop()
            self._logs.append(log_file)
            self.procs.append(await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.simagent", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log_file, limit=64 * 1024 * 1024))
        return self

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def _ask(self, proc, cmd: dict) -> dict:
        proc.stdin.write((json.dumps(cmd) + "\n").encode())
        await proc.stdin.drain()
        line = await proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simagent {proc.pid} exited (see {self.log_dir}/simagent-*.log)")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"simagent {proc.pid}: {reply['error']}")
        return reply

    async def all(self, cmd: dict) -> list[dict]:
        return list(await asyncio.gather(*(self._ask(p, cmd) for p in self.procs)))

    async def connect(self, scheduler: str, agents: list[tuple[str, str]], *, mode: str,
                      streams_per_channel: int) -> dict:
        parts = [agents[i::self.n] for i in range(self.n)]
        replies = await asyncio.gather(*(
            self._ask(p, {"cmd": "connect", "scheduler": scheduler, "agents": [list(a) for a in part],
                          "mode": mode, "streams_per_channel": streams_per_channel})
            for p, part in zip(self.procs, parts, strict=True)))
        failed = [f for r in replies for f in r["failed"]]
        if failed:
            raise RuntimeError(f"{sum(len(p) for p in parts) - sum(r['connected'] for r in replies)} agent(s) "
                               f"did not connect, e.g. {failed[0]}")
        return {"connected": sum(r["connected"] for r in replies), "retries": sum(r["retries"] for r in replies),
                "seconds": max(r["finished"] for r in replies) - min(r["started"] for r in replies)}

    async def mode(self, mode: str) -> None:
        await self.all({"cmd": "mode", "mode": mode})

    async def stats(self, checks: list[str] | None = None) -> dict:
        replies = await self.all({"cmd": "stats", "checks": checks})
        total = {k: sum(r[k] for r in replies) for k in ("agents", "heartbeats", "results_sent", "acked",
                                                          "disconnects", "tasks_received", "held")}
        total["last_ack"] = max(r["last_ack"] for r in replies)
        if checks is not None:
            arrivals: dict[str, list] = {}
            for r in replies:
                for check_id, (n, first, last) in r["arrivals"].items():
                    if check_id in arrivals:
                        a = arrivals[check_id]
                        arrivals[check_id] = [a[0] + n, min(a[1], first), max(a[2], last)]
                    else:
                        arrivals[check_id] = [n, first, last]
            total["arrivals"] = arrivals
        return total

    async def release(self, spread_s: float = 0.0) -> int:
        return sum(r["released"] for r in await self.all({"cmd": "release", "spread_s": spread_s}))

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._ask(proc, {"cmd": "close"}), 10)
        for proc in self.procs:
            if proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), 5)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
        for f in self._logs:
            f.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve_commands())
