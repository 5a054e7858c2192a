"""Simulated agents: many agent streams in one process, speaking the real stream protocol.

Each simulated agent authenticates like a real one (x-agent-id + Bearer token, checked
by the registry on every connect), sends hello, heartbeats at the interval the
welcome gives, answers tasks, keeps each result until it is acknowledged and sends the
unacknowledged again after a reconnect (the stream ended, failed or was drained), as the
agent does (hostcheck.agent.client). What it does with a task is its mode:

- `probe`: runs the real prober (hostcheck.agent.runner.run_task), as an agent does;
- `synthetic`: answers at once with a tcp-like result;
- `hold`: makes that result but keeps it until `release` (to measure ingestion or watchers).

Results go up in batches under the agent's own rule (`hostcheck.agent.client.flush_delay`) and
default settings (AgentConfig), on the agent's default event loop (uvloop). Streams share a few
HTTP/2 connections (`streams_per_channel`), which a real fleet would not: per-stream memory in
the scheduler is then a lower bound of per-agent memory with one connection each.

The harness's CPU is taken from the system it measures (2 cores), so the simulated agents cost
as little per result as they can (issue 17):

- A result is serialised once, when it is made (for `hold`, before the release: outside the
  timed part), and kept as its encoded `ResultBatch.results` entry; a batch is those entries
  joined under the `ConnectRequest.results` key, byte for byte what protobuf writes for the same
  messages (tests/test_simagent_wire.py). An ack costs a dict pop per task id.
- The streams' gRPC over HTTP/2 is this module's own minimal client (`H2Link`, on the `h2`
  project's HPACK only) unless SIMAGENT_TRANSPORT=grpcio: grpcio's asyncio client costs ~20 us a
  message read in bursts but ~130 us one read alone (a core thread, its completion-queue poller
  thread and the event loop woken per message), and the scheduler acks about once per result in
  the ingestion burst, so the harness spent ~90-110 us per result there. Here a connection's
  frames are parsed in one pass per socket read and a loop turn's writes go out as one send. What
  goes on the wire is gRPC as grpcio writes it: the same messages, one gRPC message per DATA
  frame, the same headers and metadata; it grants the scheduler a large flow-control window once
  instead of updating it as messages are read, and sends no pings (it answers the server's).

Run as `python -m bench.simagent`; it reads one JSON command per line on stdin
and answers one JSON line on stdout (see `Fleet.handle`). `SimFleet` drives
several such processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import hpack

from hostcheck.agent.client import RECONNECT_SPREAD_S, event_loop_factory, flush_delay
from hostcheck.agent.probers import PROBERS
from hostcheck.agent.runner import run_task
from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.core.config import AgentConfig
from hostcheck.core.rpc import CHANNEL_OPTIONS
from hostcheck.core.targets import TargetGuard
from hostcheck.core.timestamps import now_ts
from hostcheck.v1 import scheduler_pb2, tcp_pb2

log = logging.getLogger("bench.simagent")

DEFAULTS = AgentConfig()
CONNECT_PATIENCE_S = 60.0
LOOPBACK = TargetGuard.from_cidrs(["127.0.0.0/8", "::1/128"])
CONNECT_METHOD = "/hostcheck.v1.AgentStreamService/Connect"  # requests go as bytes, serialised here
TRANSPORTS = ("h2", "grpcio")

# Field keys (field number << 3 | wire type 2, length-delimited) of the messages built by hand.
RESULTS_ENTRY = 0x0A  # ResultBatch.results = 1 (repeated TaskResult)
REQUEST_RESULTS = 0x1A  # ConnectRequest.results = 3 (ResultBatch)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def result_entry(result: scheduler_pb2.TaskResult) -> bytes:
    """The result as an encoded `ResultBatch.results` entry (key, length, message)."""
    data = result.SerializeToString()
    return bytes((RESULTS_ENTRY,)) + _varint(len(data)) + data


def results_request(entries: list[bytes]) -> bytes:
    """`ConnectRequest(results=ResultBatch(results=...))` serialised, from the results' entries."""
    body = b"".join(entries)
    return bytes((REQUEST_RESULTS,)) + _varint(len(body)) + body


def synthetic_result(task: scheduler_pb2.Task) -> scheduler_pb2.TaskResult:
    """What a tcp probe of a loopback port reports, without probing (another type: an empty result of its own)."""
    result = scheduler_pb2.TaskResult(task_id=task.task_id, check_id=task.check_id, check_type=task.check_type,
                                      success=True, duration_ms=0.12, started_at=now_ts())
    if task.check_type == "tcp":
        result.data.tcp.CopyFrom(tcp_pb2.TcpResult(address="127.0.0.1", port=9, ip_version=4, connect_ms=0.081))
    elif task.check_type in CHECK_TYPES:
        getattr(result.data, task.check_type).SetInParent()  # an empty result of its own type
    return result


OnMessage = Callable[[bytes], None]
OnEnd = Callable[[str], None]  # the stream ended (not by cancel()): its status code's name


# ---- transport: gRPC over a minimal HTTP/2 client ---------------------------------------------

# Frame types and flags (RFC 9113).
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
MAX_WINDOW = 2**31 - 1
GRPC_STATUS = {code.value[0]: code.name for code in grpc.StatusCode}


def _frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload


class H2Stream:
    """One gRPC call on an H2Connection: messages out (`write`), messages and the end in by callback."""

    def __init__(self, conn: H2Connection, stream_id: int, on_message: OnMessage, on_end: OnEnd) -> None:
        self.conn = conn
        self.id = stream_id
        self.on_message = on_message
        self.on_end = on_end
        self.send_window = conn.peer_initial_window
        self.out = bytearray()  # framed messages waiting for flow-control window
        self.inbuf = b""  # a message's bytes so far, when it spans DATA frames
        self.ended = False

    def write(self, message: bytes) -> None:
        if self.ended:
            return
        framed = b"\x00" + len(message).to_bytes(4, "big") + message
        if self.out:
            self.out += framed
        else:
            self.out = bytearray(framed)
        self.conn.send_data(self)

    def received(self, data: bytes) -> None:
        if self.inbuf:
            data, self.inbuf = self.inbuf + data, b""
        at, size = 0, len(data)
        while size - at >= 5:
            end = at + 5 + int.from_bytes(data[at + 1:at + 5], "big")
            if end > size:
                break
            if self.ended:
                return
            self.on_message(data[at + 5:end])
            at = end
        if at < size:
            self.inbuf = data[at:]

    def headers(self, block, end_stream: bool) -> None:
        if not end_stream:
            return  # the response's headers; the status comes in the trailers
        status = dict(block).get("grpc-status")
        self.end(GRPC_STATUS.get(int(status), "UNKNOWN") if status is not None else "INTERNAL")

    def end(self, status: str) -> None:
        """The server ended the call (trailers, a reset, the connection lost)."""
        if self.ended:
            return
        self.ended = True
        self.conn.forget(self, reset=True)
        self.on_end(status)

    def cancel(self) -> None:
        """Ends the call from this side: no on_end."""
        if not self.ended:
            self.ended = True
            self.conn.forget(self, reset=True)


class H2Connection(asyncio.Protocol):
    """An HTTP/2 client connection carrying many gRPC streams (RFC 9113, the parts gRPC uses)."""

    def __init__(self, authority: str) -> None:
        self.authority = authority
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, H2Stream] = {}
        self.next_id = 1
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.send_window = 65_535  # the connection's, granted by the server
        self.peer_initial_window = 65_535
        self.peer_max_frame = 16_384
        self.received_bytes = 0  # since our last connection WINDOW_UPDATE
        self.blocked: dict[int, H2Stream] = {}  # streams with data waiting for window
        self.buf = b""
        self.headers_of: tuple[int, int, bytearray] | None = None  # (stream, flags, block) until END_HEADERS
        self.wbuf: list[bytes] = []
        self.closed = False

    # -- sending
    def _send(self, data: bytes) -> None:
        if not self.wbuf:
            asyncio.get_running_loop().call_soon(self._flush)
        self.wbuf.append(data)

    def _flush(self) -> None:
        data, self.wbuf = b"".join(self.wbuf), []
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        # No push; the largest window for every stream and for the connection, granted once.
        settings = (2).to_bytes(2, "big") + (0).to_bytes(4, "big") + (4).to_bytes(2, "big") + MAX_WINDOW.to_bytes(4, "big")
        self._send(PREFACE + _frame(SETTINGS, 0, 0, settings)
                   + _frame(WINDOW_UPDATE, 0, 0, (MAX_WINDOW - 65_535).to_bytes(4, "big")))

    def open(self, metadata: tuple[tuple[str, str], ...], on_message: OnMessage, on_end: OnEnd) -> H2Stream:
        if self.closed or self.next_id > 2**31 - 2:
            raise ConnectionError("connection closed")
        stream = H2Stream(self, self.next_id, on_message, on_end)
        self.next_id += 2
        self.streams[stream.id] = stream
        block = self.encoder.encode([
            (":method", "POST"), (":scheme", "http"), (":path", CONNECT_METHOD), (":authority", self.authority),
            ("te", "trailers"), ("content-type", "application/grpc"),
            ("user-agent", f"grpc-python-bench-simagent/{grpc.__version__}"), *metadata])
        self._send(_frame(HEADERS, END_HEADERS, stream.id, block))  # small: one frame
        return stream

    def send_data(self, stream: H2Stream) -> None:
        out = stream.out
        while out:
            n = min(len(out), stream.send_window, self.send_window, self.peer_max_frame)
            if n <= 0:
                self.blocked[stream.id] = stream
                return
            self._send(_frame(DATA, 0, stream.id, bytes(out[:n])))
            del out[:n]
            stream.send_window -= n
            self.send_window -= n
        self.blocked.pop(stream.id, None)

    def forget(self, stream: H2Stream, *, reset: bool) -> None:
        if self.streams.pop(stream.id, None) is not None and reset and not self.closed:
            self._send(_frame(RST_STREAM, 0, stream.id, (8).to_bytes(4, "big")))  # CANCEL
        self.blocked.pop(stream.id, None)

    # -- receiving
    def data_received(self, data: bytes) -> None:
        if self.buf:
            data, self.buf = self.buf + data, b""
        at, size = 0, len(data)
        while size - at >= 9:
            length = int.from_bytes(data[at:at + 3], "big")
            end = at + 9 + length
            if end > size:
                break
            kind, flags = data[at + 3], data[at + 4]
            stream_id = int.from_bytes(data[at + 5:at + 9], "big") & 0x7FFFFFFF
            payload = data[at + 9:end]
            at = end
            if kind == DATA:
                self._data(stream_id, flags, payload, length)
            elif kind == HEADERS or kind == CONTINUATION:
                self._headers(kind, stream_id, flags, payload)
            elif kind == SETTINGS:
                if not flags & ACK:
                    self._settings(payload)
            elif kind == WINDOW_UPDATE:
                self._window_update(stream_id, int.from_bytes(payload[:4], "big") & 0x7FFFFFFF)
            elif kind == PING:
                if not flags & ACK:
                    self._send(_frame(PING, ACK, 0, payload))
            elif kind == RST_STREAM:
                stream = self.streams.get(stream_id)
                if stream is not None:
                    code = int.from_bytes(payload[:4], "big")
                    stream.end("UNAVAILABLE" if code == 7 else "CANCELLED" if code == 8 else "INTERNAL")
            elif kind == GOAWAY:
                self._goaway(int.from_bytes(payload[:4], "big") & 0x7FFFFFFF)
        if at < size:
            self.buf = data[at:]

    def _data(self, stream_id: int, flags: int, payload: bytes, length: int) -> None:
        if flags & PADDED:
            payload = payload[1:len(payload) - payload[0]]
        self.received_bytes += length
        if self.received_bytes > MAX_WINDOW // 2:  # grant again what was used (after 1 GiB)
            self._send(_frame(WINDOW_UPDATE, 0, 0, self.received_bytes.to_bytes(4, "big")))
            self.received_bytes = 0
        stream = self.streams.get(stream_id)
        if stream is None:
            return
        stream.received(payload)
        if flags & END_STREAM and not stream.ended:
            stream.end("INTERNAL")  # no trailers: not a gRPC end

    def _headers(self, kind: int, stream_id: int, flags: int, payload: bytes) -> None:
        if kind == HEADERS:
            if flags & PADDED:
                payload = payload[1:len(payload) - payload[0]]
            if flags & PRIORITY:
                payload = payload[5:]
            self.headers_of = (stream_id, flags, bytearray(payload))
        elif self.headers_of is not None:
            self.headers_of[2].extend(payload)
        if not flags & END_HEADERS or self.headers_of is None:
            return
        stream_id, first_flags, block = self.headers_of
        self.headers_of = None
        headers = self.decoder.decode(bytes(block))  # every block, to keep HPACK's table in step
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.headers(headers, bool(first_flags & END_STREAM))

    def _settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            key, value = int.from_bytes(payload[i:i + 2], "big"), int.from_bytes(payload[i + 2:i + 6], "big")
            if key == 1:
                self.encoder.header_table_size = value
            elif key == 4:
                delta, self.peer_initial_window = value - self.peer_initial_window, value
                for stream in self.streams.values():
                    stream.send_window += delta
            elif key == 5:
                self.peer_max_frame = value
        self._send(_frame(SETTINGS, ACK, 0))
        self._unblock()

    def _window_update(self, stream_id: int, increment: int) -> None:
        if stream_id == 0:
            self.send_window += increment
            self._unblock()
        elif (stream := self.streams.get(stream_id)) is not None:
            stream.send_window += increment
            if stream.out:
                self.send_data(stream)

    def _unblock(self) -> None:
        for stream in list(self.blocked.values()):
            self.send_data(stream)

    def _goaway(self, last_stream_id: int) -> None:
        self.closed = True  # no new streams here; those the server did not take end now
        for stream in [s for s in self.streams.values() if s.id > last_stream_id]:
            stream.end("UNAVAILABLE")

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for stream in list(self.streams.values()):
            stream.end("UNAVAILABLE")

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self._flush()
            self.transport.close()


class H2Link:
    """One HTTP/2 connection to the scheduler, shared by many agents' streams; opened again once lost."""

    def __init__(self, addr: str) -> None:
        self.addr = addr
        host, _, port = addr.rpartition(":")
        self.host, self.port = host.strip("[]"), int(port)
        self.conn: H2Connection | None = None
        self._opening: asyncio.Task | None = None

    async def _connection(self) -> H2Connection:
        if self.conn is not None and not self.conn.closed:
            return self.conn
        if self._opening is None or self._opening.done():
            self._opening = asyncio.create_task(self._open())
        return await asyncio.shield(self._opening)

    async def _open(self) -> H2Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: H2Connection(self.addr), self.host, self.port)
        self.conn = conn
        return conn

    async def open(self, metadata, on_message: OnMessage, on_end: OnEnd) -> H2Stream:
        return (await self._connection()).open(metadata, on_message, on_end)

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


# ---- transport: grpcio (SIMAGENT_TRANSPORT=grpcio) ---------------------------------------------

class GrpcStream:
    """The same interface over a grpc.aio call: writes in order from an outbox, a reader task."""

    def __init__(self, call, on_message: OnMessage, on_end: OnEnd) -> None:
        self.call = call
        self.on_message = on_message
        self.on_end = on_end
        self.outbox: list[bytes] = []
        self.writing = False
        self.reader = asyncio.create_task(self._read())

    def write(self, message: bytes) -> None:
        self.outbox.append(message)
        if not self.writing:
            self.writing = True
            asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self.outbox:
                await self.call.write(self.outbox.pop(0))
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            self.outbox.clear()  # the stream ended: its reader says so
        finally:
            self.writing = False

    async def _read(self) -> None:
        status = "OK"
        try:
            while True:
                message = await self.call.read()
                if message is grpc.aio.EOF:
                    break
                self.on_message(message)
        except grpc.aio.AioRpcError as exc:
            status = exc.code().name
        self.on_end(status)

    def cancel(self) -> None:
        self.reader.cancel()
        self.call.cancel()


class GrpcLink:
    def __init__(self, addr: str, index: int) -> None:
        # A unique argument gives each channel its own connection (no shared subchannel).
        self.channel = grpc.aio.insecure_channel(addr, options=[*CHANNEL_OPTIONS, ("bench.channel", index)])
        # Requests are serialised by the agent (bytes), responses parsed by it.
        self.connect = self.channel.stream_stream(CONNECT_METHOD, request_serializer=None,
                                                  response_deserializer=None, _registered_method=True)

    async def open(self, metadata, on_message: OnMessage, on_end: OnEnd) -> GrpcStream:
        return GrpcStream(self.connect(metadata=metadata), on_message, on_end)

    async def close(self) -> None:
        await self.channel.close()


# ---- the agents -----------------------------------------------------------------------------------

class SimAgent:
    """One agent: its stream (connected again after it ends) and its results until acknowledged."""

    def __init__(self, fleet: Fleet, agent_id: str, token: str, link: H2Link | GrpcLink) -> None:
        self.fleet = fleet
        self.agent_id = agent_id
        self.link = link
        self.metadata = (("x-agent-id", agent_id), ("authorization", f"Bearer {token}"))
        self.stream: H2Stream | GrpcStream | None = None
        self.welcome: asyncio.Future | None = None
        self.unacked: dict[str, bytes] = {}  # task id -> its result's entry, until acknowledged
        self.pending: list[bytes] = []  # entries waiting for their batch
        self.held: list[tuple[str, bytes]] = []  # hold mode: (task id, entry) until release
        self.seen: dict[str, None] = {}  # task ids taken, as the agent's: a re-delivered task is not run again
        self.flushing = False
        self.last_flush = -math.inf
        self.in_flight = 0
        self.beat: asyncio.TimerHandle | None = None
        self.reconnecting: asyncio.Task | None = None
        self.closing = False

    async def connect(self) -> None:
        """One session: hello, welcome, then heartbeats; the unacknowledged results go again."""
        self.welcome = asyncio.get_running_loop().create_future()
        stream = self.stream = await self.link.open(self.metadata, self._message, self._ended)
        stream.write(scheduler_pb2.ConnectRequest(hello=scheduler_pb2.AgentHello(
            version="bench-sim", capabilities=sorted(CHECK_TYPES),
            unacked_results=len(self.unacked))).SerializeToString())
        try:
            await self.welcome  # see _welcomed
        except BaseException:
            stream.cancel()
            raise

    def _welcomed(self, welcome: scheduler_pb2.Welcome) -> None:
        """At the welcome, before any message after it: heartbeats, and the unacknowledged go again (only
        those: results of tasks coming after the welcome are sent once, as made)."""
        assert self.stream is not None
        interval = welcome.heartbeat_interval_s or 10
        loop = asyncio.get_running_loop()
        self.beat = loop.call_later(random.uniform(0, interval), self._heartbeat, self.stream, interval)
        self.last_flush = -math.inf
        if self.unacked:
            self.queue(list(self.unacked.values()))

    def _heartbeat(self, stream: H2Stream | GrpcStream, interval: float) -> None:
        if stream is not self.stream:
            return
        stream.write(scheduler_pb2.ConnectRequest(heartbeat=scheduler_pb2.AgentHeartbeat(
            tasks_in_flight=self.in_flight)).SerializeToString())
        self.fleet.heartbeats += 1
        self.beat = asyncio.get_running_loop().call_later(interval, self._heartbeat, stream, interval)

    def _message(self, raw: bytes) -> None:
        fleet = self.fleet
        message = scheduler_pb2.ConnectResponse.FromString(raw)
        kind = message.WhichOneof("message")
        if kind == "ack":
            unacked = self.unacked
            acked = 0
            for task_id in message.ack.task_ids:
                if unacked.pop(task_id, None) is not None:
                    acked += 1
            fleet.acked += acked
            fleet.ack_messages += 1
            fleet.last_ack = time.monotonic()
        elif kind == "tasks":
            now = time.monotonic()
            seen = self.seen
            for task in message.tasks.tasks:
                if task.task_id not in seen:
                    seen[task.task_id] = None
                    fleet.task_arrived(task, now)
                    self._take(task)
            while len(seen) > 100_000:
                del seen[next(iter(seen))]
        elif kind == "welcome":
            if self.welcome is not None and not self.welcome.done():
                self._welcomed(message.welcome)
                self.welcome.set_result(message.welcome)
        elif kind == "drain":  # as the agent: end this stream, connect again
            if self.stream is not None:
                self.stream.cancel()
            self._ended("drain")

    def _ended(self, status: str) -> None:
        if self.welcome is not None and not self.welcome.done():
            self.welcome.set_exception(RuntimeError(f"stream of {self.agent_id} ended before welcome: {status}"))
            return
        if self.closing:
            return
        if status not in ("CANCELLED", "drain"):
            log.warning("stream of %s ended: %s", self.agent_id, status)
        self.fleet.disconnects += 1
        self.stream = None
        if self.beat is not None:
            self.beat.cancel()
        self.pending.clear()  # what was not sent is in unacked: sent again on the next stream
        self.reconnecting = asyncio.create_task(self._reconnect())

    async def _reconnect(self) -> None:
        """As the agent: randomised backoff, doubling to 30 s, until connected."""
        backoff = RECONNECT_SPREAD_S
        while not self.closing:
            await asyncio.sleep(random.uniform(0, backoff))
            backoff = min(backoff * 2, 30.0)
            try:
                await self.connect()
                self.fleet.reconnects += 1
                return
            except (grpc.aio.AioRpcError, RuntimeError, OSError) as exc:
                log.info("reconnect of %s failed: %s", self.agent_id, exc)

    def _take(self, task: scheduler_pb2.Task) -> None:
        mode = self.fleet.mode
        if mode == "probe":
            self.in_flight += 1
            asyncio.create_task(self._probe(task))
        elif mode == "hold":
            self.held.append((task.task_id, result_entry(synthetic_result(task))))
        else:
            self.results([(task.task_id, result_entry(synthetic_result(task)))])

    async def _probe(self, task: scheduler_pb2.Task) -> None:
        async with self.fleet.slots:
            result = await run_task(task, LOOPBACK, PROBERS)
        self.in_flight -= 1
        self.results([(task.task_id, result_entry(result))])

    def results(self, done: list[tuple[str, bytes]]) -> None:
        """Results made: kept until acknowledged, and sent."""
        for task_id, entry in done:
            self.unacked[task_id] = entry
        self.queue([entry for _, entry in done])

    def queue(self, entries: list[bytes]) -> None:
        self.pending.extend(entries)
        if self.flushing:
            return
        delay = flush_delay(len(self.pending), DEFAULTS.result_batch_size, DEFAULTS.result_flush_ms / 1000.0,
                            time.monotonic() - self.last_flush)
        if delay <= 0:
            self._flush()  # at once, as the agent's flusher would on its next turn
        else:
            self.flushing = True
            asyncio.get_running_loop().call_later(delay, self._flush)

    def _flush(self) -> None:
        """Sends pending results under the real agent's batching rule (`flush_delay`)."""
        self.flushing = False
        if self.stream is None:
            return
        size = DEFAULTS.result_batch_size
        self.last_flush = time.monotonic()
        while self.pending:
            batch, self.pending = self.pending[:size], self.pending[size:]
            self.stream.write(results_request(batch))
            self.fleet.results_sent += len(batch)

    def release(self, spread_s: float) -> int:
        held, self.held = self.held, []
        if spread_s <= 0:
            if held:
                self.results(held)
        else:
            loop = asyncio.get_running_loop()
            for one in held:
                loop.call_later(random.uniform(0, spread_s), self.results, [one])
        return len(held)

    def close(self) -> None:
        self.closing = True
        if self.beat is not None:
            self.beat.cancel()
        if self.reconnecting is not None:
            self.reconnecting.cancel()
        if self.stream is not None:
            self.stream.cancel()


@dataclass
class Fleet:
    """The simulated agents of this process."""

    mode: str = "synthetic"
    transport: str = field(default_factory=lambda: os.environ.get("SIMAGENT_TRANSPORT", "h2"))
    agents: list[SimAgent] = field(default_factory=list)
    links: list = field(default_factory=list)
    heartbeats: int = 0
    results_sent: int = 0
    acked: int = 0  # results acknowledged (each task once)
    ack_messages: int = 0
    last_ack: float = 0.0
    disconnects: int = 0
    reconnects: int = 0
    connect_retries: int = 0
    tasks_received: int = 0  # tasks taken (a re-delivered one once)
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
        if self.transport not in TRANSPORTS:
            raise ValueError(f"SIMAGENT_TRANSPORT={self.transport!r}: expected one of {', '.join(TRANSPORTS)}")
        n_links = max(1, -(-len(agents) // streams_per_channel))
        base = len(self.links)
        for i in range(n_links):
            self.links.append(H2Link(scheduler) if self.transport == "h2" else GrpcLink(scheduler, base + i))
        gate = asyncio.Semaphore(parallel)
        failed = []

        async def one(i: int, agent_id: str, token: str) -> None:
            sim = SimAgent(self, agent_id, token, self.links[base + i % n_links])
            async with gate:
                # Like the agent: retry (e.g. UNAVAILABLE while the scheduler is busy) with randomised backoff.
                backoff, give_up = 0.2, time.monotonic() + CONNECT_PATIENCE_S
                while True:
                    try:
                        await sim.connect()
                        self.agents.append(sim)
                        return
                    except (grpc.aio.AioRpcError, RuntimeError, OSError) as exc:
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
        out: dict[str, object] = {
            "agents": len(self.agents), "heartbeats": self.heartbeats, "results_sent": self.results_sent,
            "acked": self.acked, "ack_messages": self.ack_messages, "last_ack": self.last_ack,
            "disconnects": self.disconnects, "reconnects": self.reconnects,
            "tasks_received": self.tasks_received, "held": sum(len(a.held) for a in self.agents),
            "unacked": sum(len(a.unacked) for a in self.agents)}
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
            for a in self.agents:
                a.close()
            await asyncio.sleep(0)  # the streams' resets go out
            for link in self.links:
                await link.close()
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
        self._logs: list = []

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
                                                          "ack_messages", "disconnects", "reconnects",
                                                          "tasks_received", "held", "unacked")}
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
    with asyncio.Runner(loop_factory=event_loop_factory(DEFAULTS.event_loop)) as runner:
        runner.run(serve_commands())
