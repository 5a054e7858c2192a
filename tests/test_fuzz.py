"""Property-based bad input against every public RPC (hypothesis): never INTERNAL, never a hang,
never a partial write."""

from __future__ import annotations

import grpc
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hostcheck.v1 import (
    checks_pb2,
    dns_pb2,
    http_pb2,
    ping_pb2,
    registry_pb2,
    results_pb2,
    scheduler_pb2,
    tcp_pb2,
    traceroute_pb2,
    udp_pb2,
)
from tests.conftest import REGISTRATION_TOKEN

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                derandomize=True)
BAD_CODES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.UNIMPLEMENTED}

texts = st.text(max_size=300)
short = st.text(max_size=40)
u32 = st.integers(min_value=0, max_value=2**32 - 1)
uuids = st.uuids().map(str)
ids = st.one_of(texts, uuids)
types = st.lists(st.one_of(st.sampled_from(["http", "tcp", "ping", "dns", "udp", "traceroute"]), short), max_size=8)
targets = st.one_of(texts, st.sampled_from(["127.0.0.1:1", "127.0.0.1", "[::1]:80", "http://127.0.0.1:1/x",
                                            "localhost", "10.0.0.1", "exa_mple.com", "a" * 254]))

create_requests = st.builds(
    scheduler_pb2.CreateCheckRequest,
    target=targets, checks=types, timeout_ms=u32, ip_version=u32,
    http=st.builds(http_pb2.HttpOptions, method=short, path=texts, body=texts, expected_status=st.lists(u32),
                   body_regexp=short, port=u32, scheme=short, headers=st.dictionaries(short, short, max_size=3)),
    tcp=st.builds(tcp_pb2.TcpOptions, port=u32),
    ping=st.builds(ping_pb2.PingOptions, count=u32, interval_ms=u32, size=u32),
    dns=st.builds(dns_pb2.DnsOptions, record_type=short, resolver=short),
    udp=st.builds(udp_pb2.UdpOptions, port=u32, payload=texts, payload_hex=short),
    traceroute=st.builds(traceroute_pb2.TracerouteOptions, max_hops=u32, probes_per_hop=u32),
    agents=st.builds(checks_pb2.AgentSelector, regions=st.lists(short, max_size=3),
                     countries=st.lists(short, max_size=3), agent_ids=st.lists(ids, max_size=3), limit=u32,
                     labels=st.dictionaries(short, short, max_size=3)),
)


def counts(url: str) -> tuple[int, ...]:
    with psycopg.connect(url) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("agents", "checks", "check_tasks", "check_results"))


async def call(system, rpc, request, **kw):
    """Calls and returns (ok, code); a hang shows as DEADLINE_EXCEEDED."""
    before = counts(system.database_url)
    try:
        await rpc(request, timeout=10, **kw)
    except grpc.aio.AioRpcError as err:
        assert err.code() not in BAD_CODES, (request, err.code(), err.details())
        assert counts(system.database_url) == before, f"partial write on {err.code()}: {request}"
        return False, err.code()
    return True, grpc.StatusCode.OK


@pytest.fixture
async def fuzz_system(pg_system, tmp_path):
    await pg_system.start_agent(tmp_path, "fuzz")
    return pg_system


@FUZZ
@given(request=create_requests)
async def test_create_check(fuzz_system, request):
    await call(fuzz_system, fuzz_system.create.CreateCheck, request)


@FUZZ
@given(check_id=ids, page_size=u32, page_token=texts, status=short, target=texts)
async def test_results_rpcs(fuzz_system, check_id, page_size, page_token, status, target):
    s = fuzz_system
    await call(s, s.checks.GetCheck, results_pb2.GetCheckRequest(check_id=check_id))
    await call(s, s.checks.DeleteCheck, results_pb2.DeleteCheckRequest(check_id=check_id))
    await call(s, s.checks.ListChecks, results_pb2.ListChecksRequest(
        page_size=page_size, page_token=page_token, status=status, target=target))
    stream = s.checks.WatchCheck(results_pb2.WatchCheckRequest(check_id=check_id), timeout=10)
    try:
        await stream.read()
    except grpc.aio.AioRpcError as err:
        assert err.code() not in BAD_CODES, (check_id, err.code(), err.details())
    finally:
        stream.cancel()


@FUZZ
@given(request=st.builds(registry_pb2.RegisterAgentRequest, name=texts, location=texts, region=texts, country=short,
                         city=texts, asn=u32, version=texts, capabilities=types,
                         labels=st.dictionaries(texts, texts, max_size=40)),
       token=st.one_of(st.just(REGISTRATION_TOKEN), short))
async def test_register_agent(fuzz_system, request, token):
    await call(fuzz_system, fuzz_system.agents_api.RegisterAgent, request,
               metadata=[("x-registration-token", token)] if token.isprintable() and token.isascii() else [])


@FUZZ
@given(agent_id=ids, status=short, region=texts, country=short)
async def test_registry_reads_and_revoke(fuzz_system, agent_id, status, region, country):
    s = fuzz_system
    await call(s, s.agents_api.GetAgent, registry_pb2.GetAgentRequest(agent_id=agent_id))
    await call(s, s.agents_api.GetAgentStats, registry_pb2.GetAgentStatsRequest(agent_id=agent_id))
    await call(s, s.agents_api.ListAgents, registry_pb2.ListAgentsRequest(status=status, region=region,
                                                                         country=country))
    await call(s, s.agents_api.RevokeAgent, registry_pb2.RevokeAgentRequest(agent_id=agent_id),
               metadata=[("x-registration-token", REGISTRATION_TOKEN)])
