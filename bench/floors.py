"""Floors: the same work as a scenario, done by the bare parts in the same run (issue 17).

On a shared, noisy machine a figure alone says little; measured / floor says how much the
product adds over what its parts cost here and now. Each floor does the work of one scenario
with nothing of the product in the way:

- `raw_chain`: create -> completed through bare grpcio servers in separate processes with the
  same hops as the product (client -> "scheduler" unary, which calls "results" unary, then sends
  the task down three agent streams; each "agent" process opens a fresh tcp connection to the
  same target and sends a result up its stream; the "scheduler" forwards it to "results" unary;
  the third one ends the client's server-streaming watch). Raw bytes, no protobuf, no storage.
- `heartbeat_server`: a bare grpc.aio AgentStreamService that answers hello with a welcome and
  reads (parses) every message, doing nothing with it: what holding the streams and receiving
  1,000 heartbeats/s costs grpcio itself.
- `raw_copy`: the stored results of the ingestion scenario written again by one COPY into
  check_results and one UPDATE of their check_tasks rows, in one transaction (same tables,
  indexes and partitions).
- `raw_publish`: the watcher events published straight to Redis on the same channels, read by
  the same number of watchers over as many connections as the scenario's gRPC channels.
- `idle_agent`: the least an agent process can be (Python, grpcio, one stream heartbeating), idle
  next to the real agent over the same window.

Run as `python -m bench.floors <role> ...` for the server processes (each prints `ready <port>`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import sys
import time
import uuid

import grpc

# Nothing of the product or of the bench is imported at module level: the server roles and the
# idle agent run as `python -m bench.floors` and must carry only what they use (the footprint floor).

# ---- processes --------------------------------------------------------------------------------


class FloorProc:
    """A `python -m bench.floors` role in its own process; `port` once it printed `ready <port>`."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc, self.port = proc, port

    @property
    def pid(self) -> int:
        return self.proc.pid

    @classmethod
    async def start(cls, *args: str, timeout: float = 30.0) -> FloorProc:
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.floors", *args,
                                                    stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        except BaseException:
            proc.kill()
            await proc.wait()
            raise
        if not line.startswith(b"ready "):
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"floor process {args[0]} did not start: {line!r}")
        return cls(proc, int(line.split()[1]))

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def _ident(x: bytes) -> bytes:
    return x


def _unary(fn) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(fn, request_deserializer=_ident, response_serializer=_ident)


def _ready(port: int) -> None:
    sys.stdout.write(f"ready {port}\n")
    sys.stdout.flush()


# ---- create -> completed through bare grpcio ----------------------------------------------------

async def _serve_results() -> None:
    """Open (unary), Record (unary: one result), Watch (server streaming: ends when all arrived)."""
    expected: dict[bytes, int] = {}
    done: dict[bytes, asyncio.Event] = {}

    async def open_(request: bytes, context) -> bytes:
        check_id, n = request[:16], struct.unpack("!I", request[16:20])[0]
        expected[check_id] = n
        done[check_id] = asyncio.Event()
        return b""

    async def record(request: bytes, context) -> bytes:
        check_id = request[:16]
        expected[check_id] -= 1
        if expected[check_id] == 0:
            done[check_id].set()
        return b""

    async def watch(request: bytes, context):
        await done[request].wait()
        yield b"done"
        del done[request], expected[request]

    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("floor.Results", {
        "Open": _unary(open_), "Record": _unary(record),
        "Watch": grpc.unary_stream_rpc_method_handler(watch, request_deserializer=_ident,
                                                      response_serializer=_ident)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _ready(port)
    await server.wait_for_termination()


async def _serve_scheduler(results_addr: str) -> None:
    """Create (unary: Open on results, then a task down every agent stream), Connect (agents' bidi)."""
    channel = grpc.aio.insecure_channel(results_addr)
    open_ = channel.unary_unary("/floor.Results/Open")
    record = channel.unary_unary("/floor.Results/Record")
    agents: list[asyncio.Queue[bytes]] = []

    async def create(request: bytes, context) -> bytes:
        check_id = uuid.uuid4().bytes
        await open_(check_id + struct.pack("!I", len(agents)))
        for outbox in agents:
            outbox.put_nowait(check_id + request)  # request: the target "host:port"
        return check_id

    async def connect(request_iterator, context):
        outbox: asyncio.Queue[bytes] = asyncio.Queue()
        agents.append(outbox)

        async def read() -> None:
            async for result in request_iterator:
                await record(result)
        reader = asyncio.create_task(read())
        try:
            while True:
                yield await outbox.get()
        finally:
            reader.cancel()
            agents.remove(outbox)

    async def count(request: bytes, context) -> bytes:
        return struct.pack("!I", len(agents))

    server = grpc.aio.server()
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("floor.Scheduler", {
        "Create": _unary(create), "Count": _unary(count),
        "Connect": grpc.stream_stream_rpc_method_handler(connect, request_deserializer=_ident,
                                                         response_serializer=_ident)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _ready(port)
    await server.wait_for_termination()


async def _run_agents(scheduler_addr: str, streams: int) -> None:
    """`streams` agent streams (50 per HTTP/2 connection, as the simulated fleet); per task a fresh tcp
    connection to the target, then the result up the stream."""
    channels = [grpc.aio.insecure_channel(scheduler_addr, options=[("bench.channel", i)])
                for i in range(-(-streams // 50))]

    async def agent(channel: grpc.aio.Channel) -> None:
        results: asyncio.Queue[bytes] = asyncio.Queue()

        async def outgoing():
            while True:
                yield await results.get()
        call = channel.stream_stream("/floor.Scheduler/Connect")(outgoing())
        async for task in call:
            check_id, target = task[:16], task[16:].decode()
            host, port = target.rsplit(":", 1)
            t0 = time.monotonic()
            _, writer = await asyncio.open_connection(host, int(port))
            writer.close()
            results.put_nowait(check_id + struct.pack("!d", time.monotonic() - t0))
    running = [asyncio.create_task(agent(channels[i // 50])) for i in range(streams)]
    _ready(0)
    await asyncio.gather(*running)


@contextlib.asynccontextmanager
async def raw_chain(target: str, *, agents: int, processes: int | None = None):
    """The bare chain, started: yields `once()`, which times one create -> completed in ms. `agents`
    agent streams are spread over `processes` processes (default: one process per agent). A scenario
    interleaves its runs with the product's, so load from elsewhere hits both alike."""
    procs: list[FloorProc] = []
    try:
        results = await FloorProc.start("results")
        procs.append(results)
        scheduler = await FloorProc.start("scheduler", f"127.0.0.1:{results.port}")
        procs.append(scheduler)
        processes = processes or agents
        for i in range(processes):
            procs.append(await FloorProc.start("agents", f"127.0.0.1:{scheduler.port}",
                                               str(len(range(i, agents, processes)))))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{scheduler.port}") as sched, \
                grpc.aio.insecure_channel(f"127.0.0.1:{results.port}") as res:
            create = sched.unary_unary("/floor.Scheduler/Create")
            count = sched.unary_unary("/floor.Scheduler/Count")
            watch = res.unary_stream("/floor.Results/Watch")
            deadline = time.monotonic() + 30
            while struct.unpack("!I", await count(b""))[0] < agents:  # the agents' streams reach the scheduler
                if time.monotonic() > deadline:
                    raise RuntimeError("floor agents did not connect")
                await asyncio.sleep(0.02)

            async def once() -> float:
                t0 = time.monotonic()
                check_id = await create(target.encode())
                async for _ in watch(check_id):
                    break
                return 1000 * (time.monotonic() - t0)
            yield once
    finally:
        for p in reversed(procs):
            await p.stop()


# ---- heartbeats through a bare grpcio stream server ---------------------------------------------

async def _serve_heartbeats(interval_s: int) -> None:
    from hostcheck.services.grpcserver import SERVER_OPTIONS
    from hostcheck.v1 import scheduler_pb2, scheduler_pb2_grpc

    class Bare(scheduler_pb2_grpc.AgentStreamServiceServicer):
        async def Connect(self, request_iterator, context):
            hello = await anext(aiter(request_iterator))
            assert hello.WhichOneof("message") == "hello"
            yield scheduler_pb2.ConnectResponse(welcome=scheduler_pb2.Welcome(
                scheduler_id="floor", agent_id="floor", heartbeat_interval_s=interval_s))
            async for _message in request_iterator:
                pass

    server = grpc.aio.server(options=SERVER_OPTIONS)
    scheduler_pb2_grpc.add_AgentStreamServiceServicer_to_server(Bare(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _ready(port)
    await server.wait_for_termination()


async def _idle_agent(scheduler_addr: str, agent_id: str, token: str) -> None:
    """The least an agent process can be: Python, grpcio and the generated messages, one stream to
    a scheduler (hello, then a heartbeat at the interval its welcome gives), nothing else."""
    from hostcheck.core.rpc import CHANNEL_OPTIONS
    from hostcheck.v1 import scheduler_pb2, scheduler_pb2_grpc

    async with grpc.aio.insecure_channel(scheduler_addr, options=CHANNEL_OPTIONS) as channel:
        call = scheduler_pb2_grpc.AgentStreamServiceStub(channel).Connect(
            metadata=(("x-agent-id", agent_id), ("authorization", f"Bearer {token}")))
        await call.write(scheduler_pb2.ConnectRequest(hello=scheduler_pb2.AgentHello(version="floor")))
        welcome = await call.read()
        if welcome is grpc.aio.EOF or welcome.WhichOneof("message") != "welcome":
            raise RuntimeError(f"no welcome: {welcome}")
        _ready(0)
        while True:
            await asyncio.sleep(welcome.welcome.heartbeat_interval_s or 10)
            await call.write(scheduler_pb2.ConnectRequest(heartbeat=scheduler_pb2.AgentHeartbeat()))


async def idle_agent(scheduler_addr: str, agent: tuple[str, str]) -> FloorProc:
    """Started once its stream is welcomed; `agent`: (agent id, api token) registered with the system."""
    return await FloorProc.start("idle-agent", scheduler_addr, *agent)


async def heartbeat_server(interval_s: int) -> FloorProc:
    return await FloorProc.start("heartbeats", str(interval_s))


class CpuSince:
    """CPU % of one core used by `pid` since construction."""

    def __init__(self, pid: int) -> None:
        from bench.system import cpu_s

        self.cpu_s = cpu_s
        self.pid, self.t0, self.c0 = pid, time.monotonic(), cpu_s(pid)

    def percent(self) -> float:
        return 100.0 * (self.cpu_s(self.pid) - self.c0) / (time.monotonic() - self.t0)


# ---- ingestion: one COPY of the same rows --------------------------------------------------------

RESULT_COLUMNS = ("id", "task_id", "check_id", "agent_id", "check_type", "success", "data", "error", "error_code",
                  "duration_ms", "started_at", "created_at", "late")


def raw_copy(database_url: str) -> tuple[float, int]:
    """(rows/s, rows): the stored check_results deleted, then written again (fresh ids) by one COPY,
    and their tasks marked completed by one UPDATE, in one transaction: the timed part."""
    import psycopg

    cols = ", ".join(RESULT_COLUMNS)
    select = cols.replace("data,", "data::text,")  # written back as text: COPY parses it into the column type
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(f"select {select} from check_results").fetchall()
        conn.execute("delete from check_results")
        conn.commit()
        task_ids = [r[1] for r in rows]
        fresh = [(uuid.uuid4(), *r[1:]) for r in rows]
        t0 = time.monotonic()
        with conn.cursor() as cur:
            with cur.copy(f"COPY check_results ({cols}) FROM STDIN") as copy:
                for row in fresh:
                    copy.write_row(row)
            cur.execute("update check_tasks set status = 'completed', completed_at = now() "
                        "where id = any(%s)", (task_ids,))
        conn.commit()
        elapsed = time.monotonic() - t0
        stored = conn.execute("select count(*) from check_results").fetchone()
    assert stored is not None and stored[0] == len(rows), (stored, len(rows))
    return len(rows) / elapsed, len(rows)


# ---- watchers: a raw Redis publish to the same subscribers ---------------------------------------

async def raw_publish(redis_url: str, *, checks: int, watchers_per_check: int, events_per_check: int,
                      connections: int, spread_s: float) -> list[float]:
    """Delays in ms from PUBLISH to each watcher's connection reading it: `checks` channels, watcher i of
    all watchers on connection i % connections (as the scenario spreads its gRPC watch streams),
    `events_per_check` events per channel published at random times over `spread_s`."""
    import redis.asyncio as aredis

    prefix = f"bench-floor:{uuid.uuid4().hex[:8]}:"
    channels = [f"{prefix}{c}" for c in range(checks)]
    # connection -> channel -> watchers of that channel reading from that connection
    plan: list[dict[str, int]] = [{} for _ in range(connections)]
    i = 0
    for ch in channels:
        for _ in range(watchers_per_check):
            plan[i % connections][ch] = plan[i % connections].get(ch, 0) + 1
            i += 1
    delays: list[float] = []
    expected = checks * watchers_per_check * events_per_check
    finished = asyncio.Event()
    clients = [aredis.Redis.from_url(redis_url) for _ in range(connections)]
    pubsubs = [c.pubsub() for c in clients]
    readers = []
    try:
        for ps, subs in zip(pubsubs, plan, strict=True):
            if subs:
                await ps.subscribe(*subs)
                for _ in subs:
                    await ps.get_message(timeout=5)  # subscribe confirmations

        async def read(ps, subs: dict[str, int]) -> None:
            while True:
                msg = await ps.get_message(timeout=None)
                if msg is None or msg["type"] != "message":
                    continue
                now = time.time()
                sent = struct.unpack("!d", msg["data"][:8])[0]
                delays.extend([1000 * (now - sent)] * subs[msg["channel"].decode()])
                if len(delays) >= expected:
                    finished.set()
        readers = [asyncio.create_task(read(ps, subs)) for ps, subs in zip(pubsubs, plan, strict=True) if subs]
        publisher = aredis.Redis.from_url(redis_url)
        try:
            loop = asyncio.get_running_loop()
            pending: list[asyncio.Future] = []
            body = b"x" * 200  # about the size of one task event

            async def publish(ch: str) -> None:
                await publisher.publish(ch, struct.pack("!d", time.time()) + body)

            def start(ch: str) -> None:
                pending.append(asyncio.ensure_future(publish(ch)))

            for ch in channels:
                for _ in range(events_per_check):
                    loop.call_later(random.uniform(0, spread_s), start, ch)
            await asyncio.wait_for(finished.wait(), spread_s + 60)
        finally:
            await publisher.aclose()
    finally:
        for r in readers:
            r.cancel()
        for r in readers:
            with contextlib.suppress(BaseException):
                await r
        for ps in pubsubs:
            await ps.aclose()
        for c in clients:
            await c.aclose()
    return delays


def summary(values: list[float]) -> tuple[float, float]:
    from bench.system import percentile

    return percentile(values, 50), percentile(values, 99)


def main() -> None:
    role, args = sys.argv[1], sys.argv[2:]
    if role == "results":
        runner = _serve_results()
    elif role == "scheduler":
        runner = _serve_scheduler(args[0])
    elif role == "agents":
        runner = _run_agents(args[0], int(args[1]))
    elif role == "idle-agent":
        runner = _idle_agent(args[0], args[1], args[2])
    elif role == "heartbeats":
        runner = _serve_heartbeats(int(args[0]))
    else:
        raise SystemExit(f"unknown role {role!r}")
    with contextlib.suppress(KeyboardInterrupt, asyncio.CancelledError):
        asyncio.run(runner)


if __name__ == "__main__":
    main()
