"""A raw agent for ingestion tests: holds a real token and a real stream to the scheduler, and sends
whatever results a test gives it, bypassing the agent's sanitiser (agent/sanitize.py)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import grpc
import psycopg

from hostcheck.v1 import checks_pb2, scheduler_pb2, scheduler_pb2_grpc


class RawAgent:
    """A registered agent on a raw stream: `tasks` it was given, `acked` task ids it was acknowledged."""

    def __init__(self, system, name: str) -> None:
        self.system = system
        self.name = name
        self.agent_id = ""
        self.tasks: list[scheduler_pb2.Task] = []
        self.acked: set[str] = set()
        self._changed = asyncio.Event()
        self._channel: grpc.aio.Channel | None = None
        self._call = None
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> RawAgent:
        reg = await self.system.register(self.name)
        self.agent_id = reg.agent_id
        self._channel = grpc.aio.insecure_channel(self.system.scheduler_addr)
        self._call = scheduler_pb2_grpc.AgentStreamServiceStub(self._channel).Connect(
            metadata=[("x-agent-id", reg.agent_id), ("authorization", f"Bearer {reg.api_token}")])
        await self._call.write(scheduler_pb2.ConnectRequest(hello=scheduler_pb2.AgentHello(
            version="raw", capabilities=["tcp", "http"])))
        welcome = await self._call.read()
        assert welcome.WhichOneof("message") == "welcome", welcome
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(BaseException):
                await self._reader
        if self._call is not None:
            self._call.cancel()
        if self._channel is not None:
            await self._channel.close()

    async def _read(self) -> None:
        while True:
            message = await self._call.read()
            if message is grpc.aio.EOF:
                return
            kind = message.WhichOneof("message")
            if kind == "tasks":
                self.tasks.extend(message.tasks.tasks)
            elif kind == "ack":
                self.acked.update(message.ack.task_ids)
            self._changed.set()

    async def send(self, results: list[scheduler_pb2.TaskResult]) -> None:
        await self._call.write(scheduler_pb2.ConnectRequest(results=scheduler_pb2.ResultBatch(results=results)))

    async def wait(self, predicate, *, timeout: float = 20.0, what: str = "") -> None:
        """Until predicate() holds, woken by what the stream brings (no polling)."""
        async with asyncio.timeout(timeout):
            while not predicate():
                assert self._reader is not None and not self._reader.done(), f"stream ended waiting for {what}"
                self._changed.clear()
                await self._changed.wait()

    async def task_for(self, check_type: str = "tcp", target: str = "127.0.0.1:9") -> scheduler_pb2.Task:
        """Creates a check on this agent alone and returns its task as the agent received it."""
        # A heartbeat first: presence lapses after 30 s without one (a long test, a shrinking hypothesis).
        await self._call.write(scheduler_pb2.ConnectRequest(heartbeat=scheduler_pb2.AgentHeartbeat()))
        created = await self.system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
            target=target, checks=[check_type], agents=checks_pb2.AgentSelector(agent_ids=[self.agent_id])))
        task_id = created.check.tasks[0].task_id
        await self.wait(lambda: any(t.task_id == task_id for t in self.tasks), what=f"task {task_id}")
        return next(t for t in self.tasks if t.task_id == task_id)


def now_ts():
    from google.protobuf import timestamp_pb2

    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime.now(UTC) - timedelta(milliseconds=5))
    return ts


def good_result(task: scheduler_pb2.Task) -> scheduler_pb2.TaskResult:
    result = scheduler_pb2.TaskResult(task_id=task.task_id, check_id=task.check_id, check_type=task.check_type,
                                      success=True, duration_ms=1.5, started_at=now_ts())
    getattr(result.data, task.check_type).SetInParent()
    if task.check_type == "tcp":
        result.data.tcp.address = "127.0.0.1"
    return result


def stored_results(system, task_ids: list[str]) -> dict[str, tuple[bool, str, str, str]]:
    """task id -> (success, error_code, error, task status) of the results stored for these tasks."""
    if not task_ids:
        return {}
    if system.database_url.startswith("sqlite"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(system.database_url.removeprefix("sqlite:///"), timeout=30)) as conn:
            marks = ",".join("?" for _ in task_ids)
            # SQLite stores UUIDs as 32 hex digits.
            rows = conn.execute(
                "SELECT r.task_id, r.success, r.error_code, r.error, t.status FROM check_results r "
                f"JOIN check_tasks t ON t.id = r.task_id WHERE r.task_id IN ({marks})",
                [t.replace("-", "") for t in task_ids]).fetchall()
        by_hex = {t.replace("-", ""): t for t in task_ids}
        return {by_hex[r[0]]: (bool(r[1]), r[2], r[3] or "", r[4]) for r in rows}
    with psycopg.connect(system.database_url) as conn:
        rows = conn.execute(
            "SELECT r.task_id::text, r.success, r.error_code, r.error, t.status FROM check_results r "
            "JOIN check_tasks t ON t.id = r.task_id WHERE r.task_id::text = ANY(%s)", [task_ids]).fetchall()
    return {r[0]: (r[1], r[2], r[3] or "", r[4]) for r in rows}

