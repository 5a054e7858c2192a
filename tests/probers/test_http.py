"""http prober against real HTTP/1.1 and HTTP/2 servers on loopback, with TLS from a test CA."""

from __future__ import annotations

import time

import pytest

from hostcheck.agent.probers import http
from hostcheck.agent.probers.http import BODY_CAP
from hostcheck.v1 import http_pb2
from tests.helpers import free_port
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
    assert tls.verified is True and len(cert.sha256) == 64
    assert data.timings.tls_ms > 0


async def test_https_http2(trust_test_ca, https_server):
    result = await run(http.probe, probe_request(f"https://127.0.0.1:{https_server.port}/", opts(http2=True)))
    assert result.success, result
    assert result.data.http_version == "HTTP/2"
    assert result.data.tls.alpn == "h2"
    assert result.data.body == "hello from the test server\n"
    assert result.data.timings.first_byte_ms > 0


async def test_http2_large_body_is_capped(trust_test_ca, https_server):
    result = await run(http.probe, probe_request(f"https://[::1]:{https_server.port}/big", opts(http2=True)))
    assert result.success, result
    assert result.data.http_version == "HTTP/2"
    assert result.data.body_truncated is True
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


async def test_body_is_capped_with_a_flag(http_server):
    result = await run(http.probe, probe_request(f"http://127.0.0.1:{http_server.port}/big", opts()))
    assert result.success
    assert result.data.body_truncated is True
    assert result.data.body_size == BODY_CAP and len(result.data.body) == BODY_CAP


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
    assert time.perf_counter() - started < 0.6


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
