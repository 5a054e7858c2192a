"""The agent's event loop (HOSTCHECK_EVENT_LOOP): uvloop by default, asyncio's on request, and the real
agent process runs tcp, http and dns checks and its stream (tasks, batched results, acks) on either."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import dns.message
import dns.rrset
import grpc
import pytest
import uvloop

from hostcheck.agent.client import event_loop_factory
from hostcheck.core.config import AgentConfig, ConfigError, load
from hostcheck.v1 import checks_pb2, dns_pb2, http_pb2, scheduler_pb2, scheduler_pb2_grpc, tcp_pb2
from tests.helpers import Proc, assert_eventually, hostcheck_cmd


def test_uvloop_is_the_default_and_asyncio_turns_it_off():
    assert load(AgentConfig, env={}).event_loop == "uvloop"
    assert load(AgentConfig, env={"HOSTCHECK_EVENT_LOOP": "asyncio"}).event_loop == "asyncio"
    factory = event_loop_factory("uvloop")
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    assert event_loop_factory("asyncio") is None  # asyncio.Runner's own loop
    with pytest.raises(ConfigError, match="HOSTCHECK_EVENT_LOOP"):
        event_loop_factory("trio")


class _Scheduler(scheduler_pb2_grpc.AgentStreamServiceServicer):
    """The scheduler's side of one agent's stream: welcome, the tasks given, acks for every result."""

    def __init__(self, tasks: list[scheduler_pb2.Task]) -> None:
        self.tasks = tasks
        self.results: dict[str, scheduler_pb2.TaskResult] = {}
        self.acked: set[str] = set()

    async def Connect(self, request_iterator, context):
        hello = await anext(aiter(request_iterator))
        assert hello.WhichOneof("message") == "hello"
        yield scheduler_pb2.ConnectResponse(welcome=scheduler_pb2.Welcome(
            scheduler_id="test", agent_id="test", heartbeat_interval_s=10))
        yield scheduler_pb2.ConnectResponse(tasks=scheduler_pb2.TaskBatch(tasks=self.tasks))
        async for message in request_iterator:
            if message.WhichOneof("message") == "results":
                ids = [r.task_id for r in message.results.results]
                self.results.update((r.task_id, r) for r in message.results.results)
                yield scheduler_pb2.ConnectResponse(ack=scheduler_pb2.ResultAck(task_ids=ids))
                self.acked.update(ids)


class _Dns(asyncio.DatagramProtocol):
    """Answers every A query with 127.0.0.10."""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        query = dns.message.from_wire(data)
        reply = dns.message.make_response(query)
        reply.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", "127.0.0.10"))
        self.transport.sendto(reply.to_wire(), addr)


async def _http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _task(check_type: str, target: str, options) -> scheduler_pb2.Task:
    opts = checks_pb2.CheckOptions()
    getattr(opts, check_type).CopyFrom(options)
    return scheduler_pb2.Task(task_id=str(uuid.uuid4()), check_id=str(uuid.uuid4()), check_type=check_type,
                              target=target, options=opts, timeout_ms=5000)


@pytest.mark.parametrize("event_loop", ["uvloop", "asyncio"])
async def test_the_agent_process_checks_on_its_event_loop(event_loop: str, tmp_path: Path):
    loop = asyncio.get_running_loop()
    web = await asyncio.start_server(_http, "127.0.0.1", 0)
    web_port = web.sockets[0].getsockname()[1]
    resolver, _ = await loop.create_datagram_endpoint(_Dns, local_addr=("127.0.0.1", 0))
    dns_port = resolver.get_extra_info("sockname")[1]
    tasks = [t for _ in range(20) for t in (
        _task("tcp", f"127.0.0.1:{web_port}", tcp_pb2.TcpOptions()),
        _task("http", f"http://127.0.0.1:{web_port}/", http_pb2.HttpOptions()),
        _task("dns", "www.example.com", dns_pb2.DnsOptions(record_type="A", resolver=f"127.0.0.1:{dns_port}")))]
    scheduler = _Scheduler(tasks)
    server = grpc.aio.server()
    scheduler_pb2_grpc.add_AgentStreamServiceServicer_to_server(scheduler, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    env.update({"HOSTCHECK_SCHEDULER_ADDR": f"127.0.0.1:{port}", "HOSTCHECK_AGENT_ID": str(uuid.uuid4()),
                "HOSTCHECK_API_TOKEN": "x", "HOSTCHECK_STATE_FILE": str(tmp_path / "agent.json"),
                "HOSTCHECK_ALLOW_TARGETS": "127.0.0.0/8", "HOSTCHECK_EVENT_LOOP": event_loop})
    agent = Proc(hostcheck_cmd("agent"), env=env, log_path=tmp_path / "agent.log")
    try:
        def all_acked() -> bool:
            assert len(scheduler.acked) == len(tasks), f"{len(scheduler.acked)} acked:\n{agent.output()[-3000:]}"
            return True

        await assert_eventually(all_acked, timeout=60)
        failed = {r.check_type: f"{r.error_code}: {r.error}" for r in scheduler.results.values() if not r.success}
        assert not failed, f"{failed}\n{agent.output()[-3000:]}"
        answers = {r.data.dns.answers[0].value for r in scheduler.results.values() if r.check_type == "dns"}
        assert answers == {"127.0.0.10"}
        assert {r.data.http.status_code for r in scheduler.results.values() if r.check_type == "http"} == {200}
        assert f"on the {event_loop} event loop" in agent.output()
    finally:
        assert agent.stop() == 0, agent.output()[-3000:]
        await server.stop(0)
        resolver.close()
        web.close()
        await web.wait_closed()
