"""What an agent loads at its first check of a kind, it loads outside that check's timings (issues 14, 17).

An idle agent does not carry what only some checks need (docs/benchmarks.md, "Idle agent RSS"): the
certificate parser (cryptography, ~10 MB of RSS) and the SSL contexts, dnspython (~3-4 MB) and RE2 are
loaded by the first check that needs them. Issue 14 found 77 ms of a first http check in no phase, the
HTTP stack loading inside the timed request; so these loads must happen before the check's clock starts
(or after its timings are taken), never inside a phase.

Checked without timing anything: each case runs in a fresh agent process (after the agent's warm-up)
whose `time.perf_counter` is frozen and jumps 5 s whenever one of those loads happens (a lazy import,
a shared SSL context built). Every timing the check reports is then exactly 0 unless a load happened
inside it, when it is >= 5,000 ms.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from hostcheck.v1 import dns_pb2, http_pb2, tcp_pb2, tls_pb2
from tests.helpers import ROOT

_FIRST_CHECK = r"""
import asyncio, importlib.abc, json, sys, time
from google.protobuf import json_format
from hostcheck.agent.probers import PROBERS, _certs, http, prepare, warm_up
from hostcheck.agent.probers.base import ProbeError, ProbeRequest
from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.core.targets import TargetGuard, parse_target

check_type, target, options_json, mode = sys.argv[1:5]
spec = CHECK_TYPES[check_type]
options = json_format.Parse(options_json, spec.options())
warm_up()
lazy = ("cryptography", "dns", "re2")
carried = sorted({m.split(".")[0] for m in sys.modules} & set(lazy))

JUMP = 5.0  # a load takes the check's time budget (30 s) as a real one would, so a few must fit in it
clock = [0.0]
loads = []
time.perf_counter = lambda: clock[0]


def jump(what):
    clock[0] += JUMP
    loads.append(what)


class Loads(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in lazy:  # the package, once: its first import
            jump(name)
        return None


sys.meta_path.insert(0, Loads())
for owner, name in ((http, "ssl_context"), (_certs, "client_context")):
    built = getattr(owner, name)

    def counting(*args, _built=built, _name=name):
        misses = _built.cache_info().misses
        out = _built(*args)
        if _built.cache_info().misses != misses:
            jump(f"{_name}{args}")
        return out

    counting.cache_info = built.cache_info
    setattr(owner, name, counting)


async def check():
    request = ProbeRequest(target=parse_target(target), options=options, timeout=30, ip_version=0,
                           guard=TargetGuard.from_cidrs(["127.0.0.0/8"]))
    if mode == "prepare":  # as the runner does before it starts the task's clock
        prepared = await prepare(check_type, request)
        prepare_loads[:] = loads
        loads.clear()
        assert prepared == bool(prepare_loads), (prepared, prepare_loads)
    if mode == "runner":  # the agent's own path: the runner prepares, then starts the task's clock
        from hostcheck.agent.probers.base import ProbeSettings, no_progress
        from hostcheck.agent.runner import _probe
        from hostcheck.v1 import scheduler_pb2
        task = scheduler_pb2.Task(task_id="t", check_id="c", check_type=check_type, target=target, timeout_ms=30000)
        getattr(task.options, check_type).CopyFrom(options)
        result = await _probe(task, request.guard, PROBERS, ProbeSettings(), no_progress)
        duration_ms.append(result.duration_ms)
        return result.success, result.error, getattr(result.data, spec.name)
    try:
        result = await PROBERS[check_type](request)
        return result.success, result.error, result.data
    except ProbeError as exc:
        return False, exc.message, exc.partial(spec.result)

prepare_loads = []
duration_ms = []
success, error, data = asyncio.run(check())
print(json.dumps({"duration_ms": duration_ms, "carried": carried, "loads": loads, "prepare_loads": prepare_loads, "success": success, "error": error,
                  "data": json_format.MessageToDict(data, preserving_proto_field_name=True,
                                                  always_print_fields_with_no_presence=True)}))
"""


def _timings(data: dict, path: str = "") -> dict[str, float]:
    """Every `*_ms` field of a result (nested ones too), by its path."""
    out: dict[str, float] = {}
    for key, value in data.items():
        where = f"{path}{key}"
        if isinstance(value, dict):
            out.update(_timings(value, where + "."))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    out.update(_timings(item, f"{where}[{i}]."))
        elif key.endswith("_ms"):
            out[where] = value
    return out


async def first_check(check_type: str, target: str, options, env: dict[str, str] | None = None, *,
                      mode: str = "probe") -> dict:
    from google.protobuf import json_format

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _FIRST_CHECK, check_type, target, json_format.MessageToJson(options), mode, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


def assert_loaded_outside_timings(outcome: dict, *, loaded: str) -> None:
    assert outcome["carried"] == [], f"the idle agent carries {outcome['carried']}"
    assert any(load.startswith(loaded) for load in outcome["loads"]), outcome  # the check did load it
    timings = _timings(outcome["data"])
    assert timings, outcome
    inside = {where: value for where, value in timings.items() if value != 0}
    assert not inside, f"timings that include a load ({outcome['loads']}): {inside}"


async def test_first_https_check_loads_the_certificate_parser_outside_its_timings(trust_test_ca, https_server):
    outcome = await first_check("http", f"https://127.0.0.1:{https_server.port}/", http_pb2.HttpOptions(),
                                {"SSL_CERT_FILE": str(trust_test_ca.ca)})
    assert outcome["success"], outcome
    assert outcome["data"]["tls"]["certificate"]["subject"], outcome  # parsed, by what it loaded
    assert_loaded_outside_timings(outcome, loaded="cryptography")
    assert any(load.startswith("ssl_context") for load in outcome["loads"]), outcome


async def test_first_tls_check_loads_the_certificate_parser_outside_its_timings(trust_test_ca, https_server):
    outcome = await first_check("tls", f"127.0.0.1:{https_server.port}", tls_pb2.TlsOptions(),
                                {"SSL_CERT_FILE": str(trust_test_ca.ca)})
    assert outcome["data"]["chain"][0]["subject"], outcome
    assert_loaded_outside_timings(outcome, loaded="cryptography")


@pytest.fixture
async def banner_port():
    async def handle(reader, writer):
        writer.write(b"220 banner.t.test ready\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()


async def test_first_tcp_expect_check_loads_re2_outside_its_timings(banner_port):
    outcome = await first_check("tcp", f"127.0.0.1:{banner_port}", tcp_pb2.TcpOptions(expect=r"^220 \S+ ready"))
    assert outcome["success"], outcome
    assert_loaded_outside_timings(outcome, loaded="re2")


async def test_first_dns_tcp_check_loads_dnspython_outside_its_timings(dnsmasq):
    outcome = await first_check("dns", "www.t.test", dns_pb2.DnsOptions(resolver=dnsmasq.resolver, protocol="tcp"))
    assert outcome["success"], outcome
    assert_loaded_outside_timings(outcome, loaded="dns")


async def test_prepare_loads_what_the_first_check_would_load(trust_test_ca, https_server, banner_port, dnsmasq):
    """`probers.prepare` (which the runner may await before it starts a task's clock, so that `duration_ms`
    excludes a one-time load too) loads all that the check would: the check itself then loads nothing."""
    env = {"SSL_CERT_FILE": str(trust_test_ca.ca)}
    cases = [("http", f"https://127.0.0.1:{https_server.port}/", http_pb2.HttpOptions(body_regexp="."), "cryptography"),
             ("tls", f"127.0.0.1:{https_server.port}", tls_pb2.TlsOptions(), "cryptography"),
             ("tcp", f"127.0.0.1:{banner_port}", tcp_pb2.TcpOptions(expect=r"^220 \S+ ready"), "re2"),
             ("dns", "www.t.test", dns_pb2.DnsOptions(resolver=dnsmasq.resolver, protocol="tcp"), "dns")]
    for check_type, target, options, loaded in cases:
        outcome = await first_check(check_type, target, options, env, mode="prepare")
        assert any(load.startswith(loaded) for load in outcome["prepare_loads"]), outcome
        assert outcome["loads"] == [], outcome
        assert not [v for v in _timings(outcome["data"]).values() if v != 0], outcome
    # A check that needs nothing more loads nothing (c-ares's udp lookup of an A record).
    outcome = await first_check("dns", "www.t.test", dns_pb2.DnsOptions(resolver=dnsmasq.resolver), mode="prepare")
    assert outcome["success"] and outcome["prepare_loads"] == outcome["loads"] == [], outcome


async def test_the_runner_starts_a_tasks_clock_after_the_first_checks_loads(trust_test_ca, https_server):
    """`duration_ms` of the first https task excludes loading the certificate parser and SSL context,
    as the check's own timings do (the runner awaits `probers.prepare` before it starts the clock)."""
    outcome = await first_check("http", f"https://127.0.0.1:{https_server.port}/", http_pb2.HttpOptions(),
                                mode="runner")
    assert_loaded_outside_timings(outcome, loaded="cryptography")
    assert outcome["duration_ms"] == [0.0], outcome
