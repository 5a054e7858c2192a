"""tcp's dialogue (send, expect, STARTTLS) against real servers on loopback; a timeout keeps what was measured."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from hostcheck.agent.probers import _certs, http, tcp
from hostcheck.agent.runner import run_task
from hostcheck.core.targets import TargetGuard
from hostcheck.v1 import checks_pb2, scheduler_pb2, tcp_pb2
from tests.helpers import TIMER_SLACK_S, within
from tests.probers.conftest import probe_request, run
from tests.probers.tlslab import StartTlsServer, make_lab, server_context


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    made = make_lab(tmp_path_factory.mktemp("tcplab"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSL_CERT_FILE", str(made.ca))
        _certs.client_context.cache_clear()
        http.ssl_context.cache_clear()
        yield made
    _certs.client_context.cache_clear()
    http.ssl_context.cache_clear()


@pytest.fixture(scope="module")
async def banner_server():
    """Greets with a banner, then answers each line with `you said: <line>`; `SILENT` gets no answer."""
    async def handle(reader, writer):
        writer.write(b"220 banner.t.test ready\r\n")
        try:
            while line := await reader.readline():
                if line.strip() != b"SILENT":
                    writer.write(b"you said: " + line)
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


def opts(**fields) -> tcp_pb2.TcpOptions:
    return tcp_pb2.TcpOptions(**fields)


async def test_expect_matches_the_banner(banner_server):
    result = await run(tcp.probe, probe_request(f"127.0.0.1:{banner_server}", opts(expect=r"^220 \S+ ready")))
    assert result.success, result
    assert result.data.received == "220 banner.t.test ready\r\n" and result.data.response_ms > 0


async def test_send_then_expect(banner_server):
    result = await run(tcp.probe, probe_request(f"127.0.0.1:{banner_server}",
                                                opts(send="PING 42\r\n", expect=r"you said: PING (\d+)")))
    assert result.success, result
    assert "you said: PING 42" in result.data.received


async def test_expect_not_matched_before_the_server_closes():
    async def closes(reader, writer):
        writer.write(b"hello and goodbye\r\n")
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(closes, "127.0.0.1", 0)
    try:
        result = await run(tcp.probe, probe_request(f"127.0.0.1:{server.sockets[0].getsockname()[1]}",
                                                    opts(expect="^220")))
    finally:
        server.close()
    assert (result.success, result.error_code) == (False, "expect_mismatch"), result
    assert "closed the connection after 19 bytes without a match for '^220'" in result.error
    assert result.data.received == "hello and goodbye\r\n"


async def test_expect_waiting_times_out_keeping_what_was_measured(banner_server):
    started = time.perf_counter()
    result = await run(tcp.probe, probe_request(f"127.0.0.1:{banner_server}", opts(send="SILENT\r\n",
                                                                                   expect="you said"), timeout=0.5))
    elapsed = time.perf_counter() - started
    assert (result.success, result.error_code, result.data.phase) == (False, "timeout", "expect"), result
    assert result.data.connect_ms > 0 and result.data.received.startswith("220 banner")
    waited = float(re.search(r"after ([\d.]+) ms", result.error).group(1))
    assert -0.001 <= elapsed - waited / 1000 < TIMER_SLACK_S and elapsed < within(0.5)


@pytest.mark.parametrize("protocol", ["smtp", "imap", "pop3", "ftp"])
async def test_starttls_then_expect(lab, protocol):
    server = await StartTlsServer(protocol, server_context(lab.valid)).start()
    try:
        result = await run(tcp.probe, probe_request(f"127.0.0.1:{server.port}",
                                                    opts(starttls=protocol, send="over tls\r\n", expect="over tls")))
    finally:
        await server.stop()
    assert result.success, result
    data = result.data
    assert data.starttls_ms > 0 and data.tls_ms > 0 and data.tls.verified
    assert data.tls.certificate.subject.endswith("CN=www.t.test") and len(data.tls.chain) == 1
    assert data.received.startswith("secure hello")


async def test_starttls_to_an_untrusted_certificate(lab):
    server = await StartTlsServer("smtp", server_context(lab.self_signed)).start()
    try:
        refused = await run(tcp.probe, probe_request(f"127.0.0.1:{server.port}", opts(starttls="smtp")))
        inspected = await run(tcp.probe, probe_request(f"127.0.0.1:{server.port}",
                                                       opts(starttls="smtp", insecure_tls=True)))
    finally:
        await server.stop()
    assert (refused.success, refused.error_code, refused.data.phase) == (False, "tls_error", "tls"), refused
    assert "self-signed certificate" in refused.error and refused.data.starttls_ms > 0
    assert inspected.success, inspected
    assert inspected.data.tls.verified is False
    assert inspected.data.tls.certificate.subject == "O=Self Signed, CN=self.t.test"


async def test_timeout_through_the_runner_keeps_address_port_and_dns_time():
    """Issue 14: a tcp timeout returned `data {}`: the runner's deadline fired before the prober's."""
    async def silent(reader, writer):
        await reader.read()
        writer.close()
    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    task = scheduler_pb2.Task(task_id="t1", check_id="c1", check_type="tcp", target=f"127.0.0.1:{port}",
                              timeout_ms=400, options=checks_pb2.CheckOptions(tcp=opts(expect="never")))
    try:
        result = await run_task(task, TargetGuard.from_cidrs(["127.0.0.0/8"]))
    finally:
        server.close()
    assert (result.success, result.error_code) == (False, "timeout"), result
    data = result.data.tcp
    assert (data.address, data.port, data.phase) == ("127.0.0.1", port, "expect")
    assert data.connect_ms > 0
    assert "timed out in expect after" in result.error
