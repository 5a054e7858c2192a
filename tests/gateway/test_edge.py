"""The public edge holds against what an attacker sends (issue 12): the repo's envoy.yaml, rendered
with shorter timeouts so the suite stays fast, in front of the services (SQLite + memory) with an
agent whose stream goes through Envoy, as an agent outside the cluster's would.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import httpx
import pytest
from google.rpc import error_details_pb2, status_pb2

from hostcheck.agent.client import Agent
from hostcheck.core import limits
from hostcheck.gateway import envoy
from hostcheck.v1 import (
    checks_pb2,
    http_pb2,
    results_pb2,
    scheduler_pb2,
    scheduler_pb2_grpc,
)
from tests.conftest import System
from tests.gateway.conftest import Gateway, start_envoy, wait_envoy_ready
from tests.helpers import assert_eventually, free_port
from tests.test_bad_input import count_rows

EDGE = envoy.EdgeLimits(request_headers_timeout_s=1.0, idle_timeout_s=3.0, max_connections=64)


@dataclasses.dataclass
class Edge:
    system: System
    gw: Gateway
    agent: Agent


@pytest.fixture(scope="module")
async def edge(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("edge")
    system = System(f"sqlite:///{workdir / 'hostcheck.db'}", "memory://", "unused:")
    gw = None
    try:
        await system.start()
        port, admin_port = free_port(), free_port()
        config = workdir / "envoy.yaml"
        config.write_text(envoy.render(listen_address="127.0.0.1", listen_port=port, admin_port=admin_port,
                                       upstreams=envoy.Upstreams(scheduler=system.scheduler_addr,
                                                                 results=system.results_addr,
                                                                 registry=system.registry_addr), edge=EDGE))
        gw = Gateway(start_envoy(config, workdir), port, admin_port)
        await wait_envoy_ready(gw)
        # The bystander: an agent whose stream (and registration) goes through Envoy.
        agent_config = dataclasses.replace(system.agent_config(workdir, "edge-agent"), scheduler_addr=gw.addr,
                                           registry_addr=gw.addr)
        agent = Agent(agent_config)
        system.agents.append((agent, asyncio.create_task(agent.run())))
        await assert_eventually(agent.ready.is_set, timeout=20, message="agent connected through envoy")
        yield Edge(system, gw, agent)
    finally:
        if gw is not None:
            gw.proc.stop()
        await system.stop()


@pytest.fixture
async def rest(edge):
    async with httpx.AsyncClient(base_url=edge.gw.url, timeout=30) as client:
        yield client


async def _closed_by_peer(reader: asyncio.StreamReader) -> bytes:
    """Reads until the peer closes; returns what it sent."""
    data = b""
    while chunk := await reader.read(65536):
        data += chunk
    return data


async def test_partial_request_headers_are_cut_at_the_header_timeout(edge):
    conns = [await asyncio.open_connection("127.0.0.1", edge.gw.port) for _ in range(20)]
    started = time.monotonic()
    for _, writer in conns:
        writer.write(b"GET /api/checks HTTP/1.1\r\nHost: x\r\n")  # never the blank line
        await writer.drain()
    replies = await asyncio.wait_for(asyncio.gather(*(_closed_by_peer(r) for r, _ in conns)), 20)
    elapsed = time.monotonic() - started
    assert elapsed >= EDGE.request_headers_timeout_s * 0.9, elapsed
    assert all(r == b"" or r.startswith(b"HTTP/1.1 408") for r in replies), replies[:2]
    for _, writer in conns:
        writer.close()


async def test_connections_that_send_nothing_are_closed_when_idle(edge):
    conns = [await asyncio.open_connection("127.0.0.1", edge.gw.port) for _ in range(20)]
    started = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(_closed_by_peer(r) for r, _ in conns)), 30)
    assert time.monotonic() - started >= EDGE.idle_timeout_s * 0.9
    for _, writer in conns:
        writer.close()


async def _stat(gw: Gateway, name: str) -> int:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{gw.admin}/stats", params={"filter": name})).text
    return sum(int(line.rsplit(":", 1)[1]) for line in text.splitlines() if line.split(":")[0].endswith(name))


async def test_connections_past_the_limit_are_refused(edge):
    before = await _stat(edge.gw, "downstream_global_cx_overflow")
    conns = []
    try:
        # Everyone else's connections (the agent's, health checks) count too: open until refused.
        for _ in range(EDGE.max_connections + 5):
            conns.append(await asyncio.open_connection("127.0.0.1", edge.gw.port))

        async def refused():
            return await _stat(edge.gw, "downstream_global_cx_overflow") > before
        await assert_eventually(refused, timeout=10, message="envoy refused connections past the limit")
    finally:
        for _, writer in conns:
            writer.close()


def _rest_violations(body: dict) -> list[dict]:
    found = []
    for detail in body.get("details", []):
        if detail.get("@type", "").endswith("google.rpc.BadRequest"):
            found.extend(detail["field_violations"])
    return found


async def test_a_1mb_path_gets_400_and_nothing_is_stored(edge, rest):
    before = count_rows(edge.system)
    reply = await rest.post("/api/checks", json={"target": "example.com", "checks": ["http"],
                                                  "http": {"path": "/" + "a" * 1_000_000}})
    assert reply.status_code == 400, reply.text[:500]
    assert "http.path" in reply.json()["message"]
    # Past MAX_REQUEST_BYTES the gateway refuses before anything reads it.
    huge = await rest.post("/api/checks", json={"target": "example.com", "checks": ["http"],
                                                 "http": {"body": "a" * (limits.MAX_REQUEST_BYTES + 1)}})
    assert huge.status_code == 413, huge.text[:500]
    assert count_rows(edge.system) == before
    # Nothing stored, and listing still works for everyone.
    assert (await rest.get("/api/checks")).status_code == 200


async def test_a_1000_entry_request_gets_400_and_no_stream_is_reset(edge, rest, tcp_target):
    connects = edge.agent.connects
    resets = await _stat(edge.gw, "cluster.scheduler.upstream_cx_destroy")
    reply = await rest.post("/api/checks", json={"target": "example.com", "checks": ["http"] * 1000})
    assert reply.status_code == 400 and "checks" in reply.json()["message"], reply.text[:300]
    # 1,000 violations (one per bad agent id): the details are capped so the trailers fit.
    bad_ids = {"target": "example.com", "checks": ["tcp"], "tcp": {"port": 80},
               "agents": {"agent_ids": [f"not-a-uuid-{i}" for i in range(1000)]}}
    reply = await rest.post("/api/checks", json=bad_ids)
    assert reply.status_code == 400, reply.text[:300]
    found = _rest_violations(reply.json())
    assert len(found) == limits.MAX_VIOLATIONS + 1, len(found)
    assert found[0]["field"] == "agents.agent_ids[0]" and "980 more" in found[-1]["description"]
    # The same over gRPC through Envoy (trailers straight from the scheduler).
    async with grpc.aio.insecure_channel(edge.gw.addr) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await scheduler_pb2_grpc.SchedulerServiceStub(channel).CreateCheck(
                scheduler_pb2.CreateCheckRequest(target="example.com", checks=["tcp"],
                                                 agents=checks_pb2.AgentSelector(agent_ids=bad_ids["agents"]["agent_ids"])))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # The bystander's stream is the same one, and it still takes work.
    assert edge.agent.connects == connects and edge.agent.ready.is_set()
    assert await _stat(edge.gw, "cluster.scheduler.upstream_cx_destroy") == resets
    created = await rest.post("/api/checks", json={"target": f"127.0.0.1:{tcp_target}", "checks": ["tcp"],
                                                    "agents": {"agent_ids": [edge.agent.identity.agent_id]}})
    assert created.status_code == 200, created.text
    check_id = created.json()["check_id"]

    async def done():
        return (await rest.get(f"/api/checks/{check_id}")).json()["status"] == "completed"
    await assert_eventually(done, timeout=15, message="the bystander agent ran a check")


def _grpc_frame(payload: bytes, *, flags: int = 0, length: int | None = None) -> bytes:
    return bytes([flags]) + (len(payload) if length is None else length).to_bytes(4, "big") + payload


async def _h2_post(gw: Gateway, path: str, body: bytes, content_type: str) -> httpx.Response:
    async with httpx.AsyncClient(http2=True, http1=False, timeout=10) as client:
        return await client.post(f"{gw.url}{path}", content=body, headers={"content-type": content_type,
                                                                            "te": "trailers"})


SHORT_BODIES = [
    ("empty body", b"", "less than a frame header"),
    ("short frame header", b"\x00\x00\x00", "less than a frame header"),
    ("frame shorter than its length", _grpc_frame(b"\x0a\x02ab", length=100), "announces 100 bytes"),
    ("compressed flag without grpc-encoding", _grpc_frame(b"", flags=1), "marked compressed"),
    ("unknown frame flags", _grpc_frame(b"", flags=0x80), "unknown flags"),
]


@pytest.mark.parametrize(("name", "body", "reason"), SHORT_BODIES, ids=[c[0] for c in SHORT_BODIES])
@pytest.mark.parametrize("path", ["/hostcheck.v1.SchedulerService/CreateCheck",
                                  "/hostcheck.v1.ResultsService/WatchCheck", "/hostcheck.v1.RegistryService/ListAgents"])
async def test_short_unary_grpc_bodies_get_invalid_argument_at_once(edge, name, body, reason, path):
    # grpcio itself never answers these: without the gateway's check the client waits for its deadline.
    reply = await _h2_post(edge.gw, path, body, "application/grpc")
    assert reply.status_code == 200, (name, reply.status_code)
    assert reply.headers.get("grpc-status") == "3" and reason in reply.headers["grpc-message"], reply.headers


async def test_undecodable_protobuf_gets_invalid_argument_not_unknown(edge):
    async with grpc.aio.insecure_channel(edge.gw.addr) as channel:
        call = channel.unary_unary("/hostcheck.v1.SchedulerService/CreateCheck",
                                   request_serializer=lambda b: b, response_deserializer=lambda b: b)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(b"\xff\xff\xff\xff")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Exception" not in (err.value.details() or "") and "protobuf" in err.value.details()


@pytest.mark.parametrize(("name", "body", "content_type", "reason"), [
    ("compressed flag", _grpc_frame(b"", flags=1), "application/grpc-web+proto", "marked compressed"),
    ("bad base64", b"!!not base64!!", "application/grpc-web-text", "not valid base64"),
    ("base64 of a short frame", base64.b64encode(b"\x00\x00\x00\x00\x09ab"), "application/grpc-web-text",
     "announces 9 bytes"),
])
async def test_bad_grpc_web_framing_gets_invalid_argument(edge, name, body, content_type, reason):
    reply = await _h2_post(edge.gw, "/hostcheck.v1.ResultsService/ListChecks", body, content_type)
    assert reply.headers.get("grpc-status") == "3" and reason in reply.headers["grpc-message"], reply.headers


async def test_well_formed_grpc_web_text_still_works(edge):
    body = base64.b64encode(_grpc_frame(results_pb2.ListChecksRequest(page_size=1).SerializeToString()))
    reply = await _h2_post(edge.gw, "/hostcheck.v1.ResultsService/ListChecks", body, "application/grpc-web-text")
    assert reply.status_code == 200 and reply.headers.get("grpc-status") in (None, "0"), reply.headers
    assert reply.content, "a gRPC-Web reply carries its message and trailers in the body"


async def _open_largest_check(system: System) -> tuple[str, int]:
    """A check with MAX_TASKS_PER_CHECK tasks, each with a result near MAX_RESULT_JSON_BYTES, stored
    through the results service's ingest API as the scheduler stores them."""
    check_id = str(uuid.uuid4())
    deadline = datetime.now(UTC) + timedelta(minutes=10)
    tasks = [results_pb2.PlannedTask(task_id=str(uuid.uuid4()), agent_id=str(uuid.uuid4()), check_type="http",
                                     agent_name=f"agent-{i}") for i in range(limits.MAX_TASKS_PER_CHECK)]
    for task in tasks:
        task.deadline.FromDatetime(deadline)
    opened = results_pb2.OpenCheckRequest(check_id=check_id, tasks=tasks, request=scheduler_pb2.CreateCheckRequest(
        target="example.com", checks=["http"]))
    opened.deadline.FromDatetime(deadline)
    await system.ingest.OpenCheck(opened)
    body = "x" * (limits.MAX_RESULT_JSON_BYTES - 2048)
    for start in range(0, len(tasks), 100):
        batch = results_pb2.RecordResultsRequest(results=[results_pb2.AgentResult(
            agent_id=t.agent_id, result=scheduler_pb2.TaskResult(
                task_id=t.task_id, check_id=check_id, check_type="http", success=True, duration_ms=1.0,
                data=checks_pb2.ResultData(http=http_pb2.HttpResult(url="http://example.com/", status_code=200,
                                                                   body=body))))
            for t in tasks[start:start + 100]])
        stored = await system.ingest.RecordResults(batch)
        assert len(stored.stored_task_ids) == len(batch.results), stored
    return check_id, len(body)


async def test_the_largest_allowed_check_reads_and_watches_over_rest(edge, rest):
    check_id, body_len = await _open_largest_check(edge.system)
    reply = await rest.get(f"/api/checks/{check_id}")
    assert reply.status_code == 200, reply.text[:300]
    check = reply.json()
    assert check["status"] == "completed" and len(check["tasks"]) == limits.MAX_TASKS_PER_CHECK
    assert all(len(r["data"]["http"]["body"]) == body_len for r in check["results"])
    assert len(reply.content) < limits.MAX_CHECK_JSON_BYTES
    events = []
    async with rest.stream("GET", f"/api/checks/{check_id}/watch") as watch:
        assert watch.status_code == 200
        async for line in watch.aiter_lines():
            if line.strip():
                events.append(json.loads(line))
    assert [e["event"] for e in events] == ["snapshot", "done"]
    assert len(events[-1]["check"]["tasks"]) == limits.MAX_TASKS_PER_CHECK


def _status_of(reply: httpx.Response) -> status_pb2.Status | None:
    raw = reply.headers.get("grpc-status-details-bin")
    if not raw:
        return None
    return status_pb2.Status.FromString(base64.b64decode(raw + "=" * (-len(raw) % 4)))


async def test_grpc_web_error_details_are_capped(edge):
    request = scheduler_pb2.CreateCheckRequest(target="example.com", checks=["tcp"], agents=checks_pb2.AgentSelector(
        agent_ids=[f"bad-{i}" for i in range(1000)]))
    reply = await _h2_post(edge.gw, "/hostcheck.v1.SchedulerService/CreateCheck",
                           _grpc_frame(request.SerializeToString()), "application/grpc-web+proto")
    assert reply.status_code == 200
    status = _status_of(reply)
    assert status is not None and status.code == 3, reply.headers
    bad = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad)
    assert len(bad.field_violations) == limits.MAX_VIOLATIONS + 1
