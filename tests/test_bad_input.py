"""Bad input to every public RPC: INVALID_ARGUMENT naming the field, and nothing written.
Wrong or missing agent tokens: UNAUTHENTICATED."""

from __future__ import annotations

import contextlib
import sqlite3

import grpc
import psycopg
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from hostcheck.v1 import (
    checks_pb2,
    dns_pb2,
    http_pb2,
    ping_pb2,
    registry_pb2,
    results_pb2,
    scheduler_pb2,
    scheduler_pb2_grpc,
    tcp_pb2,
)
from tests.conftest import REGISTRATION_TOKEN


def count_rows(system) -> dict[str, int]:
    tables = ("agents", "checks", "check_tasks", "check_results")
    if system.database_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(system.database_url.removeprefix("sqlite:///"), timeout=30)) as conn:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
    with psycopg.connect(system.database_url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


def violations(err: grpc.aio.AioRpcError) -> dict[str, str]:
    status = rpc_status.from_call(err)
    assert status is not None, "INVALID_ARGUMENT carries google.rpc.Status details"
    out = {}
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out.update({v.field: v.description for v in bad.field_violations})
    return out


def req(**kw) -> scheduler_pb2.CreateCheckRequest:
    kw.setdefault("target", "127.0.0.1:80")
    kw.setdefault("checks", ["tcp"])
    return scheduler_pb2.CreateCheckRequest(**kw)


CREATE_CASES = [
    (req(target=""), "target", "empty"),
    (req(target="a" * 300), "target", "at most 255"),
    (req(target="bad host"), "target", "spaces"),
    (req(target="exa mple..com"), "target", ""),
    (req(target="ftp://example.com"), "target", "scheme"),
    (req(target="10.0.0.1:80"), "target", "special-purpose range"),
    (req(target="169.254.169.254:80"), "target", "169.254.0.0/16"),
    (req(target="[fe80::1]:80"), "target", "fe80::/10"),
    (req(target="127.0.0.1:99999"), "target", "65535"),
    (req(checks=[]), "checks", "at least one"),
    (req(checks=["smtp"]), "checks[0]", "unknown check type"),
    (req(checks=["tcp", "tcp"]), "checks[1]", "twice"),
    (req(target="127.0.0.1", checks=["tcp"]), "tcp.port", "needs a port"),
    (req(checks=["tcp"], tcp=tcp_pb2.TcpOptions(port=70000)), "tcp.port", "out of range"),
    (req(checks=["ping"], ping=ping_pb2.PingOptions(count=17)), "ping.count", "1-16"),
    (req(checks=["dns"], dns=dns_pb2.DnsOptions(record_type="XYZ")), "dns.record_type", "must be one of"),
    (req(checks=["dns"], dns=dns_pb2.DnsOptions(resolver="not-an-ip")), "dns.resolver", "ip or ip:port"),
    (req(checks=["http"], http=http_pb2.HttpOptions(method="DELETE")), "http.method", "GET"),
    (req(checks=["http"], http=http_pb2.HttpOptions(expected_status=[700])), "http.expected_status", "100-599"),
    (req(checks=["http"], http=http_pb2.HttpOptions(body_regexp="(")), "http.body_regexp", "regular expression"),
    (req(checks=["tcp"], http=http_pb2.HttpOptions(method="GET")), "http", "not in checks"),
    (req(timeout_ms=10), "timeout_ms", "100-"),
    (req(ip_version=5), "ip_version", "4, 6"),
    (req(agents=checks_pb2.AgentSelector(limit=5000)), "agents.limit", "1-1000"),
    (req(agents=checks_pb2.AgentSelector(agent_ids=["nope"])), "agents.agent_ids[0]", "UUID"),
]


@pytest.mark.parametrize(("request_", "field", "reason"), CREATE_CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(CREATE_CASES)])
async def test_create_check_rejects_bad_input(system, tmp_path, request_, field, reason):
    await system.start_agent(tmp_path, "a1")
    before = count_rows(system)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.create.CreateCheck(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(err.value)
    assert field in found, found
    assert reason in found[field]
    assert count_rows(system) == before


RESULTS_CASES = [
    ("GetCheck", results_pb2.GetCheckRequest(check_id="not-a-uuid"), "check_id"),
    ("GetCheck", results_pb2.GetCheckRequest(check_id=""), "check_id"),
    ("DeleteCheck", results_pb2.DeleteCheckRequest(check_id="123"), "check_id"),
    ("ListChecks", results_pb2.ListChecksRequest(page_size=1000), "page_size"),
    ("ListChecks", results_pb2.ListChecksRequest(status="done"), "status"),
    ("ListChecks", results_pb2.ListChecksRequest(page_token="!!!"), "page_token"),
]


@pytest.mark.parametrize(("method", "request_", "field"), RESULTS_CASES)
async def test_results_rpcs_reject_bad_input(system, method, request_, field):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(system.checks, method)(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(err.value)


async def test_watch_rejects_bad_uuid_and_unknown_check(system):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in system.checks.WatchCheck(results_pb2.WatchCheckRequest(check_id="x")):
            pass
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "check_id" in violations(err.value)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        async for _ in system.checks.WatchCheck(
                results_pb2.WatchCheckRequest(check_id="00000000-0000-4000-8000-000000000000")):
            pass
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


REGISTER_CASES = [
    (registry_pb2.RegisterAgentRequest(name=""), "name"),
    (registry_pb2.RegisterAgentRequest(name="x" * 256), "name"),
    (registry_pb2.RegisterAgentRequest(name="ok", country="Germany"), "country"),
    (registry_pb2.RegisterAgentRequest(name="ok", latitude=91.0, longitude=0.0), "latitude"),
    (registry_pb2.RegisterAgentRequest(name="ok", latitude=50.0), "longitude"),
    (registry_pb2.RegisterAgentRequest(name="nul\x00name"), "name"),
    (registry_pb2.RegisterAgentRequest(name="ok", labels={"k": "v\x00"}), "labels['k']"),
]


@pytest.mark.parametrize(("request_", "field"), REGISTER_CASES)
async def test_register_rejects_bad_input(system, request_, field):
    before = count_rows(system)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.agents_api.RegisterAgent(request_, metadata=[("x-registration-token", REGISTRATION_TOKEN)])
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(err.value)
    assert count_rows(system) == before


@pytest.mark.parametrize("method", ["GetAgent", "GetAgentStats"])
async def test_agent_lookups_reject_bad_uuid(system, method):
    request_cls = getattr(registry_pb2, f"{method}Request")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(system.agents_api, method)(request_cls(agent_id="zzz"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "agent_id" in violations(err.value)


async def test_list_agents_rejects_bad_status(system):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.agents_api.ListAgents(registry_pb2.ListAgentsRequest(status="sleeping"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("token", [None, "", "wrong-token"])
async def test_registration_needs_the_right_token(system, token):
    before = count_rows(system)
    metadata = [] if token is None else [("x-registration-token", token)]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.agents_api.RegisterAgent(registry_pb2.RegisterAgentRequest(name="sneaky"), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert count_rows(system) == before


async def _connect(system, metadata) -> grpc.aio.AioRpcError:
    async with grpc.aio.insecure_channel(system.scheduler_addr) as channel:
        call = scheduler_pb2_grpc.AgentStreamServiceStub(channel).Connect(metadata=metadata)
        # No hello written: the scheduler refuses from the metadata alone, and a write racing that
        # refusal fails on the client, which then reports its own INTERNAL instead of the server's status.
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call.read()
            await call.read()
        return err.value


async def test_agent_stream_refuses_wrong_or_missing_token(system):
    reg = await system.register("real")
    cases = [
        [],
        [("x-agent-id", reg.agent_id)],
        [("x-agent-id", reg.agent_id), ("authorization", "Bearer wrong")],
        [("x-agent-id", "00000000-0000-4000-8000-000000000000"), ("authorization", f"Bearer {reg.api_token}")],
        [("x-agent-id", "not-a-uuid"), ("authorization", f"Bearer {reg.api_token}")],
    ]
    for metadata in cases:
        err = await _connect(system, metadata)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, (metadata, err)
    online = await system.agents_api.ListAgents(registry_pb2.ListAgentsRequest(status="online"))
    assert not online.agents


async def test_agent_stream_accepts_the_right_token(system):
    reg = await system.register("real")
    async with grpc.aio.insecure_channel(system.scheduler_addr) as channel:
        call = scheduler_pb2_grpc.AgentStreamServiceStub(channel).Connect(
            metadata=[("x-agent-id", reg.agent_id), ("authorization", f"Bearer {reg.api_token}")])
        await call.write(scheduler_pb2.ConnectRequest(hello=scheduler_pb2.AgentHello(version="t")))
        welcome = await call.read()
        assert welcome.welcome.agent_id == reg.agent_id
        call.cancel()


async def test_token_is_stored_hashed(system):
    reg = await system.register("hashed")
    if system.database_url.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(system.database_url.removeprefix("sqlite:///"), timeout=30)) as conn:
            stored = conn.execute("SELECT api_token_hash FROM agents").fetchone()[0]
    else:
        with psycopg.connect(system.database_url) as conn:
            stored = conn.execute("SELECT api_token_hash FROM agents").fetchone()[0]
    assert reg.api_token not in stored and len(stored) == 64
