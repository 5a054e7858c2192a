"""http prober against real HTTP/1.1 and HTTP/2 servers on loopback, with TLS from a test CA."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import socket
import struct
import sys
import time

import pytest

from hostcheck.agent.probers import http
from hostcheck.agent.probers.http import BODY_CAP
from hostcheck.v1 import http_pb2
from tests.helpers import ROOT, free_port, within
from tests.probers.conftest import probe_request, run
from tests.probers.servers import BIG_BODY


def opts(**fields) -> http_pb2.HttpOptions:
    return http_pb2.HttpOptions(**fields)


async def test_plain_http_reports_status_headers_body_address_and_timings(http_server):
    result = await run(http.probe, probe_request(f"http://127.0.0.1:{http_server.port}/", opts()))
    assert result.success, result
    data = result.data
    assert data.status_code == 200
    assert data.address == "127.0.0.1" and data.ip_version == 4
    assert data.http_version == "HTTP/1.1"
    assert data.headers["x-test"] == "yes"
    assert data.body == "hello from the test server\n"
    assert data.body_truncated is False and not data.redirects
    timings = data.timings
    assert timings.tcp_ms > 0 and timings.first_byte_ms > 0
    assert timings.tls_ms == 0 and not data.HasField("tls")  # plain http: no TLS phase
    assert 0 < timings.total_ms <= data.total_ms


async def test_ipv6_literal_target(http_server):
    result = await run(http.probe, probe_request(f"http://[::1]:{http_server.port}/", opts()))
    assert result.success, result
    assert result.data.address == "::1" and result.data.ip_version == 6


async def test_https_http11_reports_tls_and_certificate(trust_test_ca, https_server):
    result = await run(http.probe, probe_request(f"https://127.0.0.1:{https_server.port}/", opts()))
    assert result.success, result
    data = result.data
    assert data.http_version == "HTTP/1.1"
    tls = data.tls
    assert tls.version in ("TLSv1.2", "TLSv1.3") and tls.cipher
    assert tls.alpn == "http/1.1"
    cert = tls.certificate
    assert cert.subject == "O=Hostcheck Tests, CN=www.t.test"
    assert cert.issuer == "CN=Hostcheck Test ca"
    assert list(cert.sans) == ["www.t.test", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"]
    assert cert.serial == "1234ABCD"
    assert cert.days_left in (19, 20)
    assert cert.not_after.endswith("Z")
    assert (cert.key_type, cert.key_bits, cert.signature_algorithm, cert.is_ca) == ("EC", 256, "ecdsa-with-SHA256",
                                                                                     False)
    assert tls.verified is True and len(cert.sha256) == 64
    assert list(tls.chain) == [cert]  # the server sends its leaf alone
    assert data.timings.tls_ms > 0


async def test_https_http2(trust_test_ca, https_server):
    result = await run(http.probe, probe_request(f"https://127.0.0.1:{https_server.port}/", opts(http2=True)))
    assert result.success, result
    assert result.data.http_version == "HTTP/2"
    assert result.data.tls.alpn == "h2"
    assert result.data.body == "hello from the test server\n"
    assert result.data.timings.first_byte_ms > 0


async def test_http2_large_body_is_read_whole_and_sampled(trust_test_ca, https_server):
    result = await run(http.probe, probe_request(f"https://[::1]:{https_server.port}/big", opts(http2=True)))
    assert result.success, result
    assert result.data.http_version == "HTTP/2"
    assert result.data.body_truncated is True and result.data.body_size == len(BIG_BODY)
    assert result.data.body == BIG_BODY[:BODY_CAP].decode()


async def test_untrusted_certificate_is_a_tls_error(trust_test_ca, rogue_https_server):
    result = await run(http.probe, probe_request(f"https://127.0.0.1:{rogue_https_server.port}/", opts()))
    assert not result.success
    assert result.error_code == "tls_error"
    assert "certificate verify failed" in result.error
    assert result.data.address == "127.0.0.1" and result.data.phase == "tls"


async def test_insecure_tls_inspects_an_untrusted_certificate(trust_test_ca, rogue_https_server):
    result = await run(http.probe, probe_request(f"https://127.0.0.1:{rogue_https_server.port}/",
                                                 opts(insecure_tls=True)))
    assert result.success, result
    tls = result.data.tls
    assert tls.verified is False
    assert len(tls.certificate.sha256) == 64
    # Parsed all the same: the fields the option exists to inspect.
    cert = tls.certificate
    assert (cert.subject, cert.issuer) == ("O=Hostcheck Tests, CN=www.t.test", "CN=Hostcheck Test rogue-ca")
    assert "www.t.test" in cert.sans and cert.days_left in (19, 20) and cert.not_after.endswith("Z")


async def test_https_to_a_plain_http_server_times_out_in_the_tls_phase(trust_test_ca, http_server):
    # The plain server waits for a request line that the client's ClientHello never completes.
    result = await run(http.probe, probe_request(f"https://127.0.0.1:{http_server.port}/", opts(), timeout=0.5))
    assert (result.success, result.error_code, result.data.phase) == (False, "timeout", "tls"), result


async def test_redirects_are_followed_and_recorded(http_server):
    port = http_server.port
    result = await run(http.probe, probe_request(f"http://127.0.0.1:{port}/redirect", opts()))
    assert result.success, result
    assert result.data.url == f"http://127.0.0.1:{port}/final"
    assert result.data.body == "final destination\n"
    chain = result.data.redirects
    assert [(hop.status_code, hop.location) for hop in chain] == [(302, "/step"), (301, "/final")]
    assert chain[0].url == f"http://127.0.0.1:{port}/redirect" and chain[0].address == "127.0.0.1"
    # Every hop connects anew: the final hop's timings include its own connect.
    assert result.data.timings.tcp_ms > 0


async def test_https_redirects_each_hop_has_its_own_handshake(trust_test_ca, https_server):
    result = await run(http.probe, probe_request(f"https://127.0.0.1:{https_server.port}/redirect",
                                                 opts(http2=True)))
    assert result.success, result
    assert len(result.data.redirects) == 2 and result.data.http_version == "HTTP/2"
    assert result.data.timings.tls_ms > 0 and result.data.timings.tcp_ms > 0


async def test_redirect_from_http_to_https_on_another_port(trust_test_ca, http_server, https_server):
    to = f"https://127.0.0.1:{https_server.port}/final"
    result = await run(http.probe, probe_request(f"http://127.0.0.1:{http_server.port}/step?to={to}", opts()))
    assert result.success, result
    assert result.data.url == to
    assert result.data.tls.certificate.subject.endswith("CN=www.t.test")


async def test_not_following_redirects(http_server):
    result = await run(http.probe, probe_request(f"http://127.0.0.1:{http_server.port}/redirect",
                                                 opts(follow_redirects=False)))
    assert result.success, result
    assert result.data.status_code == 302 and result.data.headers["location"] == "/step"
    assert not result.data.redirects


async def test_redirect_to_a_refused_address_is_refused_by_the_guard(http_server):
    result = await run(http.probe, probe_request(
        f"http://127.0.0.1:{http_server.port}/step?to=http://10.1.2.3/", opts()))
    assert (result.success, result.error_code) == (False, "target_refused"), result
    assert "10.1.2.3" in result.error and "10.0.0.0/8" in result.error
    assert len(result.data.redirects) == 1


async def test_redirect_loop_stops(http_server):
    result = await run(http.probe, probe_request(f"http://127.0.0.1:{http_server.port}/loop", opts()))
    assert (result.success, result.error_code) == (False, "too_many_redirects")
    assert len(result.data.redirects) == http.MAX_REDIRECTS + 1


async def test_body_is_read_whole_and_sampled_with_a_flag(http_server):
    result = await run(http.probe, probe_request(f"http://127.0.0.1:{http_server.port}/big", opts()))
    assert result.success
    assert result.data.body_truncated is True and result.data.body_over_limit is False
    assert result.data.body_size == len(BIG_BODY) and len(result.data.body) == BODY_CAP


@pytest.mark.parametrize(("code", "expected", "success", "error_code"), [
    (404, [], False, "unexpected_status"),
    (404, [404], True, ""),
    (200, [201, 204], False, "unexpected_status"),
    (500, [], False, "unexpected_status"),
    (204, [], True, ""),
])
async def test_expected_status(http_server, code, expected, success, error_code):
    result = await run(http.probe, probe_request(f"http://127.0.0.1:{http_server.port}/status?code={code}",
                                                 opts(expected_status=expected)))
    assert (result.success, result.error_code, result.data.status_code) == (success, error_code, code)


async def test_body_regexp(http_server):
    url = f"http://127.0.0.1:{http_server.port}/"
    matched = await run(http.probe, probe_request(url, opts(body_regexp=r"hello from \w+")))
    assert matched.success
    missed = await run(http.probe, probe_request(url, opts(body_regexp=r"^goodbye")))
    assert (missed.success, missed.error_code) == (False, "body_mismatch")
    assert "'^goodbye'" in missed.error


async def test_post_body_and_head(http_server):
    url = f"http://127.0.0.1:{http_server.port}/echo"
    posted = await run(http.probe, probe_request(url, opts(method="POST", body="ping=1", headers={"x-a": "b"})))
    assert posted.success and posted.data.body == "POST /echo ping=1"
    head = await run(http.probe, probe_request(url, opts(method="HEAD")))
    assert head.success and head.data.body == "" and head.data.method == "HEAD"


async def test_slow_server_within_the_timeout_shows_in_first_byte(http_server):
    result = await run(http.probe, probe_request(f"http://127.0.0.1:{http_server.port}/slow?s=0.3", opts(),
                                                 timeout=3))
    assert result.success, result
    assert result.data.timings.first_byte_ms >= 250


@pytest.mark.parametrize("path", ["/slow?s=30", "/hang"])
async def test_slow_or_hung_server_times_out_in_time(http_server, path):
    started = time.perf_counter()
    result = await run(http.probe, probe_request(f"http://127.0.0.1:{http_server.port}{path}", opts(),
                                                 timeout=0.5))
    assert (result.success, result.error_code) == (False, "timeout"), result
    assert result.data.phase == "first_byte"
    # The prober's own deadline fired (it names the phase), a little before the check's timeout.
    assert time.perf_counter() - started < within(0.5)


async def test_hung_http2_server_times_out(trust_test_ca, https_server):
    result = await run(http.probe, probe_request(f"https://127.0.0.1:{https_server.port}/hang", opts(http2=True),
                                                 timeout=0.5))
    assert (result.success, result.error_code, result.data.phase) == (False, "timeout", "first_byte"), result


async def test_refused_connection():
    result = await run(http.probe, probe_request(f"http://127.0.0.1:{free_port()}/", opts()))
    assert (result.success, result.error_code) == (False, "refused"), result
    assert result.data.phase == "connect" and result.data.address == "127.0.0.1"


async def test_loopback_refused_unless_allowed(http_server):
    result = await run(http.probe, probe_request(f"http://127.0.0.1:{http_server.port}/", opts(), allow=()))
    assert (result.success, result.error_code) == (False, "target_refused")


# ---------------------------------------------------------------------------------------------- raw HTTP/1.1 peers
# Servers that answer with exactly the bytes a test needs (framings, failures), which the shared test server
# (servers.py) does not produce.


def _reset(writer: asyncio.StreamWriter) -> None:
    """Ends the connection with a TCP reset (SO_LINGER 0), not a FIN."""
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _raw_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
        return
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    path = target.partition("?")[0]
    write = writer.write
    if path == "/chunked":
        write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n"
              b"6\r\nhello \r\n7\r\nchunked\r\n0\r\n\r\n")
    elif path == "/until-close":  # no Content-Length, no chunks: the body ends when the server closes
        write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nread until the server closes")
    elif path in ("/reset-mid-body", "/hang-mid-body"):
        write(b"HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\n" + b"x" * 100)
        await writer.drain()
        if path == "/hang-mid-body":  # until the client gives up
            with contextlib.suppress(ConnectionError):
                await reader.read()
            writer.close()
            return
        await asyncio.sleep(0.05)  # the first bytes reach the client before the reset
        _reset(writer)
        return
    elif path == "/no-response":
        pass  # closes having read the request
    elif path == "/gzip":
        packed = gzip.compress(b"a gzipped body\n")
        write(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(packed) + packed)
    elif path == "/latin-1":
        write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=ISO-8859-1\r\ncontent-length: 5\r\n\r\ncaf\xe9!")
    elif path == "/repeated":
        write(b"HTTP/1.1 200 OK\r\nx-twice: a\r\nX-Twice: b\r\ncontent-length: 0\r\n\r\n")
    elif path == "/continue":  # an interim response before the response
        write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok")
    elif path == "/http10":
        write(b"HTTP/1.0 200 Fine\r\ncontent-length: 3\r\n\r\nold")
    elif path == "/garbage":
        write(b"this is not HTTP\r\n\r\n")
    else:  # /echo: the request as the server received it
        echoed = head + body
        write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n" % len(echoed)
              + (b"" if method == "HEAD" else echoed))
    await writer.drain()
    writer.close()


async def _closes_in_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)  # the ClientHello
    writer.close()


async def _resets_in_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)
    _reset(writer)


@pytest.fixture(scope="module")
async def raw_server():
    servers = [await asyncio.start_server(handler, "127.0.0.1", 0)
               for handler in (_raw_peer, _closes_in_handshake, _resets_in_handshake)]
    yield [server.sockets[0].getsockname()[1] for server in servers]
    for server in servers:
        server.close()


async def raw(raw_server, path: str, options=None, **kwargs):
    return await run(http.probe, probe_request(f"http://127.0.0.1:{raw_server[0]}{path}", options or opts(),
                                               **kwargs))


async def test_chunked_response(raw_server):
    result = await raw(raw_server, "/chunked")
    assert result.success, result
    assert result.data.body == "hello chunked" and result.data.body_size == 13
    assert result.data.headers["transfer-encoding"] == "chunked" and not result.data.body_truncated


async def test_response_without_length_is_read_until_the_server_closes(raw_server):
    result = await raw(raw_server, "/until-close")
    assert result.success, result
    assert result.data.body == "read until the server closes"


async def test_reset_mid_body_is_a_connection_reset_with_a_message(raw_server):
    result = await raw(raw_server, "/reset-mid-body")
    assert (result.success, result.error_code, result.data.phase) == (False, "connection_reset", "download"), result
    assert result.error.endswith(": connection reset by the peer"), result.error
    assert result.data.address == "127.0.0.1" and result.data.url.endswith("/reset-mid-body")


async def test_hung_mid_body_times_out_in_download(raw_server):
    started = time.perf_counter()
    result = await raw(raw_server, "/hang-mid-body", timeout=0.5)
    assert (result.success, result.error_code, result.data.phase) == (False, "timeout", "download"), result
    assert "timed out in download" in result.error
    assert time.perf_counter() - started < within(0.5)


async def test_server_closing_without_a_response_is_a_protocol_error(raw_server):
    result = await raw(raw_server, "/no-response")
    assert (result.success, result.error_code, result.data.phase) == (False, "protocol_error", "first_byte"), result
    assert result.error.endswith("Server disconnected without sending a response.")


async def test_garbage_response_is_a_protocol_error(raw_server):
    result = await raw(raw_server, "/garbage")
    assert (result.success, result.error_code, result.data.phase) == (False, "protocol_error", "first_byte"), result


async def test_gzip_body_is_decoded(raw_server):
    result = await raw(raw_server, "/gzip")
    assert result.success, result
    assert result.data.body == "a gzipped body\n" and result.data.headers["content-encoding"] == "gzip"


async def test_body_is_decoded_with_the_response_charset(raw_server):
    result = await raw(raw_server, "/latin-1")
    assert result.success, result
    assert result.data.body == "café!" and result.data.body_size == 5


async def test_repeated_headers_are_joined(raw_server):
    result = await raw(raw_server, "/repeated")
    assert result.data.headers["x-twice"] == "a, b"


async def test_interim_response_is_skipped_and_reason_and_version_are_the_servers(raw_server):
    result = await raw(raw_server, "/continue")
    assert (result.data.status_code, result.data.reason, result.data.body) == (201, "Created", "ok")
    old = await raw(raw_server, "/http10")
    assert (old.data.http_version, old.data.reason, old.data.body) == ("HTTP/1.0", "Fine", "old")


async def test_request_carries_method_path_headers_and_body(raw_server):
    result = await raw(raw_server, "/", opts(method="POST", path="/echo/a b?q=1", body="ping=1",
                                             headers={"X-Custom": "42"}))
    assert result.success, result
    request_line, *header_lines = result.data.body.split("\r\n\r\n")[0].split("\r\n")
    assert request_line == "POST /echo/a%20b?q=1 HTTP/1.1"
    sent = dict(line.split(": ", 1) for line in header_lines)
    assert sent["Host"] == f"127.0.0.1:{raw_server[0]}"
    assert sent["User-Agent"] == http.USER_AGENT
    assert sent["X-Custom"] == "42" and sent["Content-Length"] == "6"
    assert sent["Connection"] == "close"  # one request per connection
    assert result.data.body.endswith("\r\n\r\nping=1")


async def test_check_headers_override_the_defaults(raw_server):
    result = await raw(raw_server, "/echo", opts(headers={"User-Agent": "probe/1", "Host": "www.t.test",
                                                          "accept-encoding": "identity"}))
    sent = result.data.body
    assert "User-Agent: probe/1\r\n" in sent and "Host: www.t.test\r\n" in sent
    assert "accept-encoding: identity\r\n" in sent
    assert sent.count("User-Agent:") == 1 and sent.count("Host:") == 1 and "Accept-Encoding" not in sent


async def test_head_reads_no_body(raw_server):
    result = await raw(raw_server, "/echo", opts(method="HEAD"))
    assert result.success, result
    assert (result.data.method, result.data.body, result.data.body_size) == ("HEAD", "", 0)
    assert int(result.data.headers["content-length"]) > 0


async def test_header_that_cannot_be_sent_is_a_bad_option(raw_server):
    result = await raw(raw_server, "/echo", opts(headers={"X-Name": "café"}))
    assert (result.success, result.error_code) == (False, "bad_options"), result


async def test_tls_peer_closing_in_the_handshake_is_a_tls_error(trust_test_ca, raw_server):
    result = await run(http.probe, probe_request(f"https://127.0.0.1:{raw_server[1]}/", opts()))
    assert (result.success, result.error_code, result.data.phase) == (False, "tls_error", "tls"), result
    assert result.error.endswith("TLS: UNEXPECTED_EOF_WHILE_READING")


async def test_tls_peer_resetting_in_the_handshake_is_a_connection_reset(trust_test_ca, raw_server):
    result = await run(http.probe, probe_request(f"https://127.0.0.1:{raw_server[2]}/", opts()))
    assert (result.success, result.error_code, result.data.phase) == (False, "connection_reset", "tls"), result
    assert result.error.endswith("connection reset by the peer")


_LEAN_AGENT = """
import asyncio, json, sys
import hostcheck.cli.main, hostcheck.agent.client
from hostcheck.agent.probers import http
from hostcheck.agent.probers.base import ProbeRequest
from hostcheck.core.targets import TargetGuard, parse_target
from hostcheck.v1 import http_pb2

async def check(url):
    request = ProbeRequest(target=parse_target(url), options=http_pb2.HttpOptions(), timeout=5, ip_version=0,
                           guard=TargetGuard.from_cidrs(["127.0.0.0/8"]))
    result = await http.probe(request)
    return [result.success, result.data.http_version, result.data.HasField("tls")]

plain = asyncio.run(check(sys.argv[1]))
contexts_after_plain = http.ssl_context.cache_info().currsize
secure = asyncio.run(check(sys.argv[2]))
heavy = ("httpx", "httpcore", "anyio", "h2", "hpack", "hyperframe")
loaded = sorted(name for name, module in sys.modules.items() if module is not None and name.split(".")[0] in heavy)
print(json.dumps({"plain": plain, "secure": secure, "contexts_after_plain": contexts_after_plain, "loaded": loaded}))
"""


async def test_http11_checks_load_no_httpx_stack(trust_test_ca, http_server, https_server):
    """An agent that runs only HTTP/1.1 checks never imports httpx, httpcore, anyio or h2; plain http builds no
    TLS context. A fresh interpreter: this test process has them all loaded already."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _LEAN_AGENT, f"http://127.0.0.1:{http_server.port}/",
        f"https://127.0.0.1:{https_server.port}/", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, "SSL_CERT_FILE": str(trust_test_ca.ca)})
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert report["plain"] == [True, "HTTP/1.1", False]
    assert report["secure"] == [True, "HTTP/1.1", True]
    assert report["contexts_after_plain"] == 0
    assert report["loaded"] == []
