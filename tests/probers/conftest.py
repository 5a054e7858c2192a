"""Fixtures for prober tests: real servers on loopback (HTTP/1.1 + HTTP/2 over TLS from a test CA, dnsmasq)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from hostcheck.agent.probers import dns as dns_prober
from hostcheck.agent.probers import http as http_prober
from hostcheck.agent.probers.base import ProbeError, ProbeRequest, ProbeResult, ProbeSettings
from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.core.targets import TargetGuard, parse_target
from hostcheck.v1 import dns_pb2
from tests.helpers import assert_eventually, free_port
from tests.probers.servers import HttpServer, dnsmasq_args, make_certs, server_context

LOOPBACK = ("127.0.0.0/8", "::1/128")


def probe_request(target: str, options, *, timeout: float = 2.0, ip_version: int = 0,
                  allow: Iterable[str] = LOOPBACK, settings: ProbeSettings | None = None) -> ProbeRequest:
    return ProbeRequest(target=parse_target(target), options=options, timeout=timeout, ip_version=ip_version,
                        guard=TargetGuard.from_cidrs(allow), settings=settings or ProbeSettings())


async def run(prober, request: ProbeRequest) -> ProbeResult:
    """A prober's outcome as the runner reports it: a ProbeError becomes a failed result with its partial data."""
    result_type = CHECK_TYPES[prober.__module__.rpartition(".")[2]].result
    try:
        return await prober(request)
    except ProbeError as exc:
        return ProbeResult(False, exc.partial(result_type), exc.message, exc.code)


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed: cannot make test certificates")
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def trust_test_ca(certs):
    """The agent trusts the test CA the way an operator makes it trust a private one: SSL_CERT_FILE.

    Module scope: the variable is set only while the http tests run.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSL_CERT_FILE", str(certs.ca))
        http_prober.ssl_context.cache_clear()
        yield certs
    http_prober.ssl_context.cache_clear()


@pytest.fixture(scope="session")
async def http_server():
    server = await HttpServer().start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def https_server(certs):
    server = await HttpServer(server_context(certs.cert, certs.key)).start()
    yield server
    await server.stop()


@pytest.fixture(scope="session")
async def rogue_https_server(certs):
    """Serves a certificate from a CA the agent does not trust."""
    server = await HttpServer(server_context(certs.rogue_cert, certs.rogue_key)).start()
    yield server
    await server.stop()


@dataclass(frozen=True)
class DnsServer:
    # "127.0.0.1:port", as a dns check's resolver option.
    resolver: str
    # dnsmasq's log, one line per query.
    log: Path


@pytest.fixture(scope="session")
async def dnsmasq(tmp_path_factory):
    """dnsmasq on 127.0.0.1 at a free port serving the zone t.test (see servers.dnsmasq_args)."""
    if shutil.which("dnsmasq") is None:
        pytest.skip("dnsmasq is not installed (scripts/setup-system.sh installs dnsmasq-base)")
    port = free_port()
    log = tmp_path_factory.mktemp("dnsmasq") / "dnsmasq.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(dnsmasq_args(port=port), stdout=out, stderr=subprocess.STDOUT)
    resolver = f"127.0.0.1:{port}"
    try:
        async def answering() -> bool:
            assert proc.poll() is None, f"dnsmasq exited: {log.read_text()}"
            result = await run(dns_prober.probe, probe_request(
                "www.t.test", dns_pb2.DnsOptions(resolver=resolver), timeout=0.3))
            return result.success
        await assert_eventually(answering, timeout=10, message="dnsmasq answers")
        yield DnsServer(resolver, log)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, 15)
            proc.wait(10)
