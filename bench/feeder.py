"""A stand-in scheduler that keeps one real agent busy, to measure the agent alone.

It speaks the scheduler's side of the stream (welcome, task batches, acks) and
keeps `window` tasks outstanding, so what limits checks/s is the agent (its
probers and its stream), not check creation or storage.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc

from hostcheck.services.grpcserver import SERVER_OPTIONS
from hostcheck.v1 import scheduler_pb2, scheduler_pb2_grpc


class Feeder(scheduler_pb2_grpc.AgentStreamServiceServicer):
    def __init__(self) -> None:
        self.make_task: Callable[[], scheduler_pb2.Task] | None = None
        self.window = 0
        self.connected = asyncio.Event()
        self.done = 0
        self.succeeded = 0
        self.errors: dict[str, int] = {}
        self._outstanding = 0
        self._wake = asyncio.Event()

    def feed(self, make_task: Callable[[], scheduler_pb2.Task], window: int) -> None:
        """From now on, keep `window` tasks made by `make_task` at the agent; counters restart."""
        self.make_task, self.window = make_task, window
        self.done = self.succeeded = 0
        self.errors = {}
        self._wake.set()

    def pause(self) -> None:
        self.window = 0

    async def Connect(self, request_iterator, context):
        hello = await anext(aiter(request_iterator))
        assert hello.WhichOneof("message") == "hello"
        yield scheduler_pb2.ConnectResponse(welcome=scheduler_pb2.Welcome(
            scheduler_id="bench-feeder", agent_id="bench", heartbeat_interval_s=10))
        self.connected.set()
        acks: asyncio.Queue = asyncio.Queue()

        async def read() -> None:
            async for message in request_iterator:
                if message.WhichOneof("message") == "results":
                    ids = []
                    for r in message.results.results:
                        ids.append(r.task_id)
                        self.done += 1
                        self._outstanding -= 1
                        if r.success:
                            self.succeeded += 1
                        else:
                            self.errors[r.error_code] = self.errors.get(r.error_code, 0) + 1
                    acks.put_nowait(ids)
                    self._wake.set()

        reader = asyncio.create_task(read())
        try:
            while not reader.done():
                # Every ack waiting goes in one message, and tasks are topped up once an eighth of the
                # window is free: the stand-in's own gRPC writes per check are few, so its CPU (it shares
                # the 2 cores with the agent under test) is not what bounds the agent's rate.
                if not acks.empty():
                    ids = []
                    while not acks.empty():
                        ids.extend(acks.get_nowait())
                    yield scheduler_pb2.ConnectResponse(ack=scheduler_pb2.ResultAck(task_ids=ids))
                want = self.window - self._outstanding
                if self.make_task is not None and want > 0 and (want >= max(1, self.window // 8)
                                                                 or self._outstanding == 0):
                    tasks = [self.make_task() for _ in range(want)]
                    self._outstanding += want
                    yield scheduler_pb2.ConnectResponse(tasks=scheduler_pb2.TaskBatch(tasks=tasks))
                self._wake.clear()
                if acks.empty():
                    await self._wake.wait()
        finally:
            reader.cancel()

    async def measure(self, seconds: float) -> tuple[float, int, dict[str, int]]:
        """(checks/s, succeeded, errors) over the next `seconds`."""
        start_done, start_ok = self.done, self.succeeded
        start_errors = dict(self.errors)
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        elapsed = time.monotonic() - t0
        ok = self.succeeded - start_ok
        errors = {k: v - start_errors.get(k, 0) for k, v in self.errors.items() if v - start_errors.get(k, 0)}
        return (self.done - start_done) / elapsed, ok, errors


def task_maker(check_type: str, target: str, options, *, timeout_ms: int = 5000) -> Callable[[], scheduler_pb2.Task]:
    from hostcheck.v1 import checks_pb2

    opts = checks_pb2.CheckOptions()
    getattr(opts, check_type).CopyFrom(options)
    template = scheduler_pb2.Task(check_id=str(uuid.uuid4()), check_type=check_type, target=target, options=opts,
                                  timeout_ms=timeout_ms)
    fresh_until = [0.0]
    prefix = uuid.uuid4().hex[:20]  # task ids: UUID-shaped, unique per maker, without a urandom call each
    serial = itertools.count()

    def make() -> scheduler_pb2.Task:
        now = time.monotonic()
        if now > fresh_until[0]:  # the deadline moves on every 0.1 s (a task's timeout is seconds)
            template.deadline.FromDatetime(datetime.now(UTC) + timedelta(milliseconds=timeout_ms))
            fresh_until[0] = now + 0.1
        task = scheduler_pb2.Task()
        task.CopyFrom(template)
        n = next(serial)
        task.task_id = f"{prefix[:8]}-{prefix[8:12]}-4{prefix[12:15]}-8{prefix[15:18]}-{prefix[18:20]}{n:010x}"
        return task
    return make


async def start_feeder() -> tuple[grpc.aio.Server, int, Feeder]:
    server = grpc.aio.server(options=SERVER_OPTIONS)
    feeder = Feeder()
    scheduler_pb2_grpc.add_AgentStreamServiceServicer_to_server(feeder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port, feeder
