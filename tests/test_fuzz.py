"""Property-based bad input against every public RPC (hypothesis): never INTERNAL, never a hang,
never a partial write; and valid create requests (options only for the types asked) that are
accepted.

Not derandomized: each run draws from a new seed, printed with every test's output (a failure
shows it); `HOSTCHECK_TEST_FUZZ_SEED=N` repeats a run.
"""

from __future__ import annotations

import os
import random

import grpc
import psycopg
import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from hostcheck.core.checks import validate_create
from hostcheck.core.checktypes import ping as ping_spec
from hostcheck.core.checktypes import traceroute as traceroute_spec
from hostcheck.core.geo import CONTINENT_NAMES
from hostcheck.core.targets import TargetGuard
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
from tests.conftest import ADMIN, REGISTRATION_TOKEN

SEED = int(os.environ.get("HOSTCHECK_TEST_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def FUZZ(test):  # noqa: N802 - used as a decorator like hypothesis' own
    return seed(SEED)(_SETTINGS(test))


@pytest.fixture(autouse=True)
def _print_seed():
    print(f"fuzz seed {SEED}: repeat with HOSTCHECK_TEST_FUZZ_SEED={SEED}")
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
                     labels=st.dictionaries(short, short, max_size=3), asns=st.lists(u32, max_size=3),
                     continents=st.lists(short, max_size=3), magic=st.lists(short, max_size=3), same_as=ids,
                     exclude_labels=st.dictionaries(short, short, max_size=3),
                     locations=st.lists(st.builds(checks_pb2.AgentLocation, countries=st.lists(short, max_size=2),
                                                  magic=st.lists(short, max_size=2), limit=u32), max_size=3)),
)

ports = st.integers(min_value=1, max_value=65535)
# Each type's options within its rules; a request carries options only for the types it asks for.
VALID_OPTIONS = {
    "tcp": st.builds(tcp_pb2.TcpOptions, port=st.one_of(st.just(0), ports)),
    "http": st.builds(http_pb2.HttpOptions, method=st.sampled_from(["GET", "HEAD", "POST"]),
                      path=st.from_regex(r"/[a-z0-9/._-]{0,30}", fullmatch=True),
                      expected_status=st.lists(st.integers(min_value=100, max_value=599), max_size=3),
                      port=st.one_of(st.just(0), ports)),
    "ping": st.builds(ping_pb2.PingOptions, count=st.integers(min_value=0, max_value=3),
                      interval_ms=st.one_of(st.just(0), st.integers(min_value=ping_spec.MIN_INTERVAL_MS,
                                                                    max_value=300))),
    "udp": st.builds(udp_pb2.UdpOptions, port=ports,
                     payload=st.text(st.characters(codec="ascii", exclude_characters="\x00"), max_size=64)),
    "traceroute": st.builds(traceroute_pb2.TracerouteOptions, max_hops=st.integers(min_value=0, max_value=3),
                            probes_per_hop=st.integers(min_value=0, max_value=traceroute_spec.MAX_PROBES)),
}
LOOPBACK = TargetGuard.from_cidrs(("127.0.0.0/8", "::1/128"))


# The fuzz system has one agent, in no country: a selector it matches.
small_selectors = st.builds(checks_pb2.AgentSelector, limit=st.integers(min_value=0, max_value=3))


@st.composite
def valid_create_requests(draw, selectors=small_selectors):
    chosen = draw(st.lists(st.sampled_from(sorted(VALID_OPTIONS)), min_size=1, max_size=3, unique=True))
    request = scheduler_pb2.CreateCheckRequest(target=f"127.0.0.1:{draw(ports)}", checks=chosen,
                                               timeout_ms=draw(st.sampled_from([0, 2000, 3000])),
                                               agents=draw(selectors))
    for name in chosen:
        if draw(st.booleans()):
            getattr(request, name).CopyFrom(draw(VALID_OPTIONS[name]))
    return request


# Selectors that pass validation (whether any agent matches is the scheduler's question).
valid_selectors = st.builds(
    checks_pb2.AgentSelector, limit=st.integers(min_value=0, max_value=20),
    continents=st.lists(st.sampled_from(sorted(CONTINENT_NAMES)), max_size=3),
    countries=st.lists(st.sampled_from(["DE", "us", "JP", "FR"]), max_size=3),
    asns=st.lists(st.integers(min_value=1, max_value=2**32 - 1), max_size=3),
    magic=st.lists(st.from_regex(r"[A-Za-z0-9]{1,8}(\+[A-Za-z0-9]{1,8}){0,2}", fullmatch=True), max_size=3),
    same_as=st.one_of(st.just(""), uuids),
    locations=st.lists(st.builds(checks_pb2.AgentLocation, limit=st.integers(min_value=0, max_value=10),
                                 continents=st.lists(st.sampled_from(sorted(CONTINENT_NAMES)), max_size=2)),
                       max_size=3))


@FUZZ
@given(request=valid_create_requests(selectors=valid_selectors))
def test_valid_create_requests_pass_validation(request):
    validate_create(request, LOOPBACK)


def counts(url: str) -> tuple[int, ...]:
    # Rows a request writes when it is accepted. Not check_results: results of checks created
    # by earlier examples keep arriving while a refused request is in flight.
    with psycopg.connect(url) as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                     for t in ("agents", "checks", "check_tasks"))


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
@given(request=valid_create_requests())
async def test_valid_create_check_is_created(fuzz_system, request):
    ok, code = await call(fuzz_system, fuzz_system.create.CreateCheck, request)
    assert ok, (code, request)


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
                         labels=st.dictionaries(texts, texts, max_size=40), latitude=st.floats(),
                         longitude=st.floats()),
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
    await call(s, s.agents_api.RevokeAgent, registry_pb2.RevokeAgentRequest(agent_id=agent_id), metadata=ADMIN)
