"""http prober against curl and openssl on the same local servers (issue 14): the whole body and its timings,
regular expressions over the whole body and the headers, TLS assertions, HTTP versions, the Host override,
certificates of unverified chains, connection resets, and the first check after an agent starts."""

from __future__ import annotations

import asyncio
import datetime
import json
import math
import os
import re
import shutil
import sys
import time

import pytest

from hostcheck.agent.probers import http
from hostcheck.agent.probers.http import BODY_CAP
from hostcheck.v1 import http_pb2
from tests.helpers import ROOT
from tests.probers.conftest import probe_request, run

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")

MIB = 1024 * 1024
# The slow body: 1 MiB in 16 pieces, 20 ms apart (the server's pace; ~300 ms of transfer).
PIECES, PAUSE = 16, 0.02
NEEDLE_AT = 50 * 1024


def opts(**fields) -> http_pb2.HttpOptions:
    return http_pb2.HttpOptions(**fields)


async def _reference_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()
        return
    lines = head.decode("latin-1").split("\r\n")
    path = lines[0].split(" ")[1]
    try:
        if path == "/slow-mib":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: %d\r\n\r\n" % MIB)
            piece = b"s" * (MIB // PIECES)
            for _ in range(PIECES):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(PAUSE)  # a slow peer, not synchronisation
        elif path == "/needle":
            body = b"." * NEEDLE_AT + b"NEEDLE-42" + b"." * 14 * 1024
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
        elif path == "/headers":
            writer.write(b"HTTP/1.1 200 OK\r\nx-version: 2.5.1\r\nserver: test/1\r\ncontent-length: 0\r\n\r\n")
        else:  # the request's header lines, as received
            echoed = "\n".join(lines[1:]).strip().encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(echoed) + echoed)
        await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


@pytest.fixture(scope="module")
async def peer():
    server = await asyncio.start_server(_reference_peer, "127.0.0.1", 0, backlog=64)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


async def _curl(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec("curl", "-sS", "-o", "/dev/null", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    return out.decode()


# ---------------------------------------------------------------------------------------------- the whole body


@needs_curl
async def test_slow_mib_body_size_and_timings_agree_with_curl(peer):
    ours = await run(http.probe, probe_request(f"{peer}/slow-mib", opts(), timeout=10))
    assert ours.success, ours
    curl = json.loads(await _curl("-w", '{"size": %{size_download}, "ttfb": %{time_starttransfer}, '
                                        '"total": %{time_total}}', f"{peer}/slow-mib"))
    data = ours.data
    assert data.body_size == curl["size"] == MIB
    assert data.body_truncated and len(data.body) == BODY_CAP and not data.body_over_limit
    # The transfer is the server's pace (15 pauses of 20 ms at least) for both; they agree within 150 ms.
    download = data.timings.download_ms / 1000
    assert download >= (PIECES - 1) * PAUSE
    assert abs(download - (curl["total"] - curl["ttfb"])) < 0.15, (data.timings, curl)
    assert abs(data.timings.total_ms / 1000 - curl["total"]) < 0.15, (data.timings, curl)


async def test_body_over_the_limit_stops_there(peer, monkeypatch):
    monkeypatch.setattr(http, "MAX_BODY_BYTES", 100 * 1024)
    result = await run(http.probe, probe_request(f"{peer}/slow-mib", opts(), timeout=10))
    assert result.success, result
    assert result.data.body_over_limit and result.data.body_size == 100 * 1024


async def test_gzip_bomb_is_read_up_to_the_limit_only(monkeypatch):
    """1 MiB of zeros gzipped is ~1 KiB: the body is the limit's size and says it stopped there."""
    import gzip

    monkeypatch.setattr(http, "MAX_BODY_BYTES", 64 * 1024)
    packed = gzip.compress(bytes(MIB))

    async def bomb(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n" % len(packed) + packed)
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(bomb, "127.0.0.1", 0)
    try:
        result = await run(http.probe, probe_request(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/", opts()))
    finally:
        server.close()
    assert result.success, result
    assert result.data.body_over_limit and result.data.body_size == 64 * 1024


def test_a_body_is_kept_whole_only_for_a_regexp():
    """Counted in full, held in full only when matched: an agent holds 10 KiB per check, not up to 10 MB."""
    sampled, kept = http.Body(keep=False), http.Body(keep=True)
    for body in (sampled, kept):
        for _ in range(100):
            assert body.add(b"x" * 10_000)
    assert sampled.size == kept.size == 1_000_000
    assert sampled.sample == kept.sample == b"x" * BODY_CAP and len(kept.whole) == 1_000_000
    assert len(sampled._data) == BODY_CAP


async def test_body_regexp_finds_a_match_past_the_sample(peer):
    found = await run(http.probe, probe_request(f"{peer}/needle", opts(body_regexp=r"NEEDLE-\d+")))
    assert found.success, found
    assert "NEEDLE" not in found.data.body and found.data.body_size > NEEDLE_AT
    missed = await run(http.probe, probe_request(f"{peer}/needle", opts(body_regexp="NEEDLE-43")))
    assert (missed.success, missed.error_code) == (False, "body_mismatch")
    assert missed.error == "the body does not match 'NEEDLE-43'"


# ---------------------------------------------------------------------------------------------- assertions


@pytest.mark.parametrize(("rule", "success", "error"), [
    (dict(header="X-Version", regexp=r"^2\.\d"), True, ""),
    (dict(header="x-VERSION", regexp="^3"), False, "x-VERSION: '2.5.1' does not match '^3'"),  # any case
    (dict(header="Server", regexp="test", fail_if_matches=True), False, "Server: 'test/1' matches 'test'"),
    (dict(header="X-Missing", regexp="a"), False, "no X-Missing header (header_regexp)"),
    (dict(header="X-Missing", regexp="a", allow_missing=True), True, ""),
])
async def test_header_regexp(peer, rule, success, error):
    result = await run(http.probe, probe_request(f"{peer}/headers", opts(header_regexp=[http_pb2.HeaderRegexp(**rule)])))
    assert (result.success, result.error) == (success, error)
    if not success:
        assert result.error_code == "header_mismatch"


async def test_fail_if_ssl_and_not_ssl(peer, trust_test_ca, https_server):
    plain = await run(http.probe, probe_request(f"{peer}/headers", opts(fail_if_not_ssl=True)))
    assert (plain.success, plain.error_code) == (False, "no_tls")
    assert (await run(http.probe, probe_request(f"{peer}/headers", opts(fail_if_ssl=True)))).success
    secure = f"https://127.0.0.1:{https_server.port}/"
    tls = await run(http.probe, probe_request(secure, opts(fail_if_ssl=True)))
    assert (tls.success, tls.error_code) == (False, "unexpected_tls")
    assert (await run(http.probe, probe_request(secure, opts(fail_if_not_ssl=True)))).success


async def test_valid_http_versions(peer, trust_test_ca, https_server):
    wrong = await run(http.probe, probe_request(f"{peer}/headers", opts(valid_http_versions=["HTTP/2"])))
    assert (wrong.success, wrong.error_code, wrong.error) == (False, "unexpected_http_version",
                                                              "HTTP/1.1, expected HTTP/2")
    assert (await run(http.probe, probe_request(f"{peer}/headers",
                                                opts(valid_http_versions=["HTTP/1.0", "HTTP/1.1"])))).success
    h2 = await run(http.probe, probe_request(f"https://127.0.0.1:{https_server.port}/",
                                             opts(http2=True, valid_http_versions=["HTTP/2.0"])))
    assert h2.success, h2


@needs_curl
async def test_lower_case_host_header_replaces_the_default_as_curl_does(peer):
    result = await run(http.probe, probe_request(f"{peer}/echo", opts(headers={"host": "www.t.test"})))
    assert result.success, result
    sent = result.data.body.lower()
    assert sent.count("host:") == 1 and "host: www.t.test" in sent
    proc = await asyncio.create_subprocess_exec("curl", "-sS", "-H", "host: www.t.test", f"{peer}/echo",
                                                stdout=asyncio.subprocess.PIPE)
    curl_sent, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert curl_sent.decode().lower().count("host:") == 1 and "host: www.t.test" in curl_sent.decode().lower()


def test_headers_of_both_paths_override_host_and_user_agent_in_any_case():
    """HTTP/1.1 and HTTP/2 (httpx: Host becomes :authority) build their headers here."""
    assert http.request_headers("127.0.0.1:80", {"host": "www.t.test", "user-agent": "probe/1", "X-A": "b"}) == {
        "host": "www.t.test", "user-agent": "probe/1", "X-A": "b"}
    assert http.request_headers("127.0.0.1:80", {}) == {"Host": "127.0.0.1:80", "User-Agent": http.USER_AGENT}


# ---------------------------------------------------------------------------------------------- certificates


@needs_openssl
async def test_unverified_certificate_fields_equal_openssls(trust_test_ca, rogue_https_server):
    result = await run(http.probe, probe_request(f"https://127.0.0.1:{rogue_https_server.port}/",
                                                 opts(insecure_tls=True)))
    assert result.success, result
    cert = result.data.tls.certificate
    proc = await asyncio.create_subprocess_exec(
        "openssl", "x509", "-in", str(trust_test_ca.rogue_cert), "-noout", "-subject", "-issuer", "-serial",
        "-enddate", "-nameopt", "sep_comma_plus_space", "-ext", "subjectAltName", stdout=asyncio.subprocess.PIPE)
    out = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
    assert f"subject={cert.subject}\n" in out and f"issuer={cert.issuer}\n" in out
    assert f"serial={cert.serial}\n" in out
    not_after = datetime.datetime.strptime(re.search(r"notAfter=(.+)", out).group(1).strip(), "%b %d %H:%M:%S %Y %Z")
    assert cert.not_after == not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    seconds_left = not_after.replace(tzinfo=datetime.UTC).timestamp() - time.time()
    assert cert.days_left == math.floor(seconds_left / 86400)
    assert re.search(r"Subject Alternative Name:\s*\n\s*(.+)", out).group(1).replace("DNS:", "") == ", ".join(cert.sans)
    assert (cert.key_type, cert.key_bits) == ("EC", 256)
    assert result.data.tls.verified is False and len(result.data.tls.chain) == 1


# ---------------------------------------------------------------------------------------------- failures


async def _resets(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    import socket
    import struct

    await reader.readuntil(b"\r\n\r\n")
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 1000)
    await writer.drain()
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def test_connection_reset_is_always_connection_reset():
    """Issue 14: a reset flipped between protocol_error and http_error, with an empty message."""
    server = await asyncio.start_server(_resets, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    try:
        results = [await run(http.probe, probe_request(url, opts())) for _ in range(20)]
    finally:
        server.close()
    assert {(r.success, r.error_code) for r in results} == {(False, "connection_reset")}
    assert all(r.error.endswith(": connection reset by the peer") for r in results)


# ---------------------------------------------------------------------------------------------- the first check


_FIRST_CHECK = """
import asyncio, json, sys, time
from hostcheck.agent.probers import http, warm_up
from hostcheck.agent.probers.base import ProbeRequest
from hostcheck.core.targets import TargetGuard, parse_target
from hostcheck.v1 import http_pb2

warm = sys.argv[2] == "warm"
if warm:
    warm_up({"http": http.probe})

async def check():
    request = ProbeRequest(target=parse_target(sys.argv[1]), options=http_pb2.HttpOptions(), timeout=5, ip_version=0,
                           guard=TargetGuard.from_cidrs(["127.0.0.0/8"]))
    result = await http.probe(request)
    t = result.data.timings
    return result.data.total_ms - (t.dns_ms + t.tcp_ms + t.tls_ms + t.first_byte_ms + t.download_ms)

before = set(sys.modules)
misses = http.ssl_context.cache_info().misses
outside = [asyncio.run(check()) for _ in range(3)]
print(json.dumps({"outside": outside, "imported": sorted(set(sys.modules) - before),
                  "contexts_built": http.ssl_context.cache_info().misses - misses}))
"""


async def test_first_check_after_warm_up_loads_and_builds_nothing_in_its_timings(trust_test_ca, https_server):
    """Issue 14: the first check after an agent started had 77 ms in no phase, the HTTP stack loading lazily. After
    the agent's warm-up (agent start) the first https check imports only the certificate parser and builds only
    its SSL context, both before its clock starts (issue 17: an idle agent does not carry them; that they are
    outside every timing is tests/probers/test_first_check_loads.py)."""
    async def first(mode: str) -> dict:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _FIRST_CHECK, f"https://127.0.0.1:{https_server.port}/", mode, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "SSL_CERT_FILE": str(trust_test_ca.ca)})
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        return json.loads(out)

    cold, warm = await first("cold"), await first("warm")
    assert cold["contexts_built"] == 1
    assert warm["contexts_built"] == 1, warm  # not at the warm-up: the first https check builds it
    # Of the agent's own modules, only the certificate parser (and with it cryptography and what that imports).
    assert [m for m in warm["imported"] if m.startswith("hostcheck")] == ["hostcheck.agent.probers._x509"], warm
    print(f"ms outside any phase, 3 checks: cold {cold['outside']}, warm {warm['outside']}")
