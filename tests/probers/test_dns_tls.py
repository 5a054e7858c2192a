"""DNS over TLS against unbound on loopback (its certificate from the test CA), compared with `dig +tls`."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time

import pytest

from hostcheck.agent.probers import dns
from hostcheck.agent.probers.base import ProbeSettings
from hostcheck.v1 import dns_pb2
from tests.helpers import assert_eventually, free_port, within
from tests.probers.conftest import probe_request, run

UNBOUND_CONF = """server:
  interface: 127.0.0.1@{port}
  tls-port: {port}
  tls-service-key: "{key}"
  tls-service-pem: "{cert}"
  do-daemonize: no
  username: ""
  chroot: ""
  directory: "{directory}"
  pidfile: ""
  use-syslog: no
  logfile: ""
  log-queries: yes
  do-ip6: no
  module-config: "iterator"
  local-zone: "t.test." static
  local-data: "www.t.test. 300 IN A 127.0.0.10"
  local-data: 't.test. 300 IN TXT "part one" "part two"'
remote-control:
  control-enable: no
"""


@pytest.fixture(scope="module")
async def unbound(tmp_path_factory, certs):
    """unbound answering t.test over TLS only, at 127.0.0.1:<free port>; yields that resolver."""
    if shutil.which("unbound") is None:
        pytest.skip("unbound is not installed (scripts/setup-system.sh installs it)")
    directory = tmp_path_factory.mktemp("unbound")
    port = free_port()
    conf = directory / "unbound.conf"
    conf.write_text(UNBOUND_CONF.format(port=port, key=certs.key, cert=certs.cert, directory=directory))
    log = directory / "unbound.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(["unbound", "-d", "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    resolver = f"127.0.0.1:{port}"
    try:
        async def answering() -> bool:
            assert proc.poll() is None, f"unbound exited: {log.read_text()}"
            result = await run(dns.probe, probe_request(
                "www.t.test", dns_pb2.DnsOptions(resolver=resolver, protocol="tls"), timeout=0.5))
            return result.success or result.error_code == "tls_error"
        await assert_eventually(answering, timeout=10, message="unbound answers over TLS")
        yield resolver
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, 15)
            proc.wait(10)


@pytest.fixture
def trusting(certs, monkeypatch):
    """The agent trusts the test CA the way an operator makes it trust a private one: SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))
    dns._tls_context.cache_clear()
    yield
    dns._tls_context.cache_clear()


def tls(resolver: str, record_type: str = "A", **extra) -> dns_pb2.DnsOptions:
    return dns_pb2.DnsOptions(resolver=resolver, protocol="tls", record_type=record_type, **extra)


async def test_dns_over_tls(unbound, trusting):
    result = await run(dns.probe, probe_request("www.t.test", tls(unbound)))
    assert result.success, result
    data = result.data
    assert (data.protocol, data.resolver, data.rcode) == ("tls", unbound, "NOERROR")
    assert [(a.name, a.type, a.ttl, a.value) for a in data.answers] == [("www.t.test", "A", 300, "127.0.0.10")]
    assert data.query_ms > 0


@pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (scripts/setup-system.sh: dnsutils)")
async def test_agrees_with_dig_over_tls(unbound, trusting):
    host, port = unbound.rsplit(":", 1)
    done = await asyncio.to_thread(subprocess.run, ["dig", f"@{host}", "-p", port, "+tls", "+noall", "+answer",
                                                    "+tries=1", "+time=2", "t.test", "TXT"],
                                   capture_output=True, text=True, timeout=10, check=True)
    owner, ttl, _cls, kind, rdata = done.stdout.strip().split(None, 4)
    result = await run(dns.probe, probe_request("t.test", tls(unbound, "TXT")))
    assert result.success, result
    assert [(a.name, a.type, a.ttl, a.value) for a in result.data.answers] == [
        (owner.rstrip("."), kind, int(ttl), rdata)]
    assert rdata == '"part one" "part two"'


async def test_the_certificate_name_can_be_given(unbound, trusting):
    result = await run(dns.probe, probe_request("www.t.test", tls(unbound, tls_server_name="www.t.test")))
    assert result.success, result


async def test_a_certificate_for_another_name_is_refused(unbound, trusting):
    result = await run(dns.probe, probe_request("www.t.test", tls(unbound, tls_server_name="dns.example")))
    assert (result.success, result.error_code) == (False, "tls_error"), result
    assert "certificate not trusted" in result.error and "dns.example" in result.error
    assert result.data.protocol == "tls" and result.data.resolver == unbound


async def test_an_untrusted_certificate_is_refused(unbound, monkeypatch, tmp_path):
    # No trust roots at all: the test CA is not among them.
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    dns._tls_context.cache_clear()
    try:
        result = await run(dns.probe, probe_request("www.t.test", tls(unbound)))
    finally:
        dns._tls_context.cache_clear()
    assert (result.success, result.error_code) == (False, "tls_error"), result
    assert "unable to get local issuer certificate" in result.error


async def test_tls_defaults_to_port_853_of_the_default_resolver():
    # Nothing listens on 127.0.0.1:853 here: the refusal names the port the check used.
    settings = ProbeSettings(dns_resolver="127.0.0.1")
    started = time.perf_counter()
    result = await run(dns.probe, probe_request("www.t.test", dns_pb2.DnsOptions(protocol="tls"), settings=settings))
    assert (result.success, result.error_code) == (False, "refused"), result
    assert result.data.resolver == "127.0.0.1:853" and "127.0.0.1:853" in result.error
    assert time.perf_counter() - started < 1


async def test_plain_dns_to_a_tls_port_times_out_within_the_check(unbound):
    started = time.perf_counter()
    result = await run(dns.probe, probe_request("www.t.test", dns_pb2.DnsOptions(resolver=unbound, protocol="tcp"),
                                                timeout=0.6))
    assert not result.success and result.error_code in ("timeout", "connection_error"), result
    assert time.perf_counter() - started < within(0.6)
