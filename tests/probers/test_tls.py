"""tls prober against real TLS servers on loopback, with certificates of known truth made by the test
(tlslab.py), compared field by field with `openssl s_client` and `openssl x509` where openssl is installed."""

from __future__ import annotations

import asyncio
import datetime
import re
import shutil
import time

import pytest

from hostcheck.agent.probers import _certs, http, tls
from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.v1 import tls_pb2
from tests.helpers import TIMER_SLACK_S, free_port, within
from tests.probers.conftest import probe_request, run
from tests.probers.tlslab import StartTlsServer, TlsServer, make_lab, server_context

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """The lab's CA trusted the way an operator makes an agent trust a private CA: SSL_CERT_FILE."""
    made = make_lab(tmp_path_factory.mktemp("tlslab"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSL_CERT_FILE", str(made.ca))
        _certs.client_context.cache_clear()
        http.ssl_context.cache_clear()
        yield made
    _certs.client_context.cache_clear()
    http.ssl_context.cache_clear()


@pytest.fixture(scope="module")
async def servers(lab):
    started = {name: await TlsServer(server_context(pair)).start()
               for name, pair in (("valid", lab.valid), ("expired", lab.expired), ("self", lab.self_signed),
                                  ("chained", lab.chained))}
    yield {name: server.port for name, server in started.items()}
    for server in started.values():
        await server.stop()


def opts(**fields) -> tls_pb2.TlsOptions:
    return tls_pb2.TlsOptions(**fields)


async def _openssl(*args: str, stdin: bytes = b"") -> str:
    proc = await asyncio.create_subprocess_exec("openssl", *args, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(stdin), 30)
    return out.decode()


async def test_valid_certificate_verifies_with_sni_alpn_and_the_whole_chain(lab, servers):
    result = await run(tls.probe, probe_request(f"127.0.0.1:{servers['valid']}", opts(server_name="www.t.test")))
    assert result.success, result
    data = result.data
    assert (data.address, data.port, data.server_name) == ("127.0.0.1", servers["valid"], "www.t.test")
    assert data.verified and data.verify_error == ""
    assert data.version in ("TLSv1.2", "TLSv1.3") and data.cipher and data.cipher_bits >= 128
    assert data.alpn == "h2"  # the default offer is h2, http/1.1; the server prefers h2
    assert data.connect_ms > 0 and data.handshake_ms > 0 and data.starttls_ms == 0
    leaf = data.chain[0]
    assert (leaf.subject, leaf.issuer) == ("O=Hostcheck TLS Lab, CN=www.t.test", "O=Hostcheck TLS Lab, CN=Hostcheck TLS Lab CA")
    assert list(leaf.sans) == ["www.t.test", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1"]
    assert (leaf.key_type, leaf.key_bits, leaf.signature_algorithm, leaf.serial) == ("EC", 256, "ecdsa-with-SHA256",
                                                                                      "1001")
    # 20 days and 1 hour left: exactly 20 whole days (the off-by-one of issue 14 said 19).
    assert leaf.days_left == 20 == data.days_left
    assert leaf.not_after == lab.valid_not_after.strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_alpn_offer_is_the_checks(lab, servers):
    result = await run(tls.probe, probe_request(f"127.0.0.1:{servers['valid']}", opts(alpn=["http/1.1"])))
    assert result.success, result
    assert result.data.alpn == "http/1.1"
    assert result.data.server_name == ""  # an address target sends no SNI; the address is verified


async def test_intermediate_is_reported_in_the_chain(lab, servers):
    result = await run(tls.probe, probe_request(f"127.0.0.1:{servers['chained']}", opts()))
    assert result.success, result
    chain = result.data.chain
    assert [c.subject.rpartition("CN=")[2] for c in chain] == ["www.t.test", "Hostcheck TLS Lab Intermediate"]
    assert chain[1].is_ca and not chain[0].is_ca
    assert (chain[1].key_type, chain[1].key_bits) == ("EC", 384)
    assert result.data.days_left == min(c.days_left for c in chain) == 5


@pytest.mark.parametrize(("server", "reason", "subject", "days_left"), [
    ("expired", "certificate has expired", "O=Hostcheck TLS Lab, CN=expired.t.test", -3),
    ("self", "self-signed certificate", "O=Self Signed, CN=self.t.test", 10),
])
async def test_certificate_that_does_not_verify_is_reported_with_why(lab, servers, server, reason, subject,
                                                                     days_left):
    request = probe_request(f"127.0.0.1:{servers[server]}", opts())
    failed = await run(tls.probe, request)
    assert (failed.success, failed.error_code) == (False, "certificate_invalid"), failed
    assert reason in failed.error and failed.data.verify_error == reason
    assert failed.data.verified is False
    assert (failed.data.chain[0].subject, failed.data.chain[0].days_left) == (subject, days_left)
    assert failed.data.version and failed.data.handshake_ms > 0
    inspected = await run(tls.probe, probe_request(f"127.0.0.1:{servers[server]}", opts(insecure=True)))
    assert inspected.success, inspected
    assert (inspected.data.verified, inspected.data.verify_error) == (False, reason)


async def test_self_signed_rsa_key_is_reported(lab, servers):
    result = await run(tls.probe, probe_request(f"127.0.0.1:{servers['self']}", opts(insecure=True)))
    leaf = result.data.chain[0]
    assert (leaf.key_type, leaf.key_bits, leaf.signature_algorithm) == ("RSA", 2048, "sha256WithRSAEncryption")
    assert leaf.subject == leaf.issuer


async def test_name_mismatch_is_not_verified(lab, servers):
    result = await run(tls.probe, probe_request(f"127.0.0.1:{servers['valid']}", opts(server_name="other.t.test")))
    assert (result.success, result.error_code) == (False, "certificate_invalid"), result
    assert "other.t.test" in result.data.verify_error


async def test_min_days_left(lab, servers):
    result = await run(tls.probe, probe_request(f"127.0.0.1:{servers['valid']}", opts(min_days_left=21)))
    assert (result.success, result.error_code) == (False, "certificate_expiring"), result
    assert "20 days left, fewer than 21" in result.error
    assert (await run(tls.probe, probe_request(f"127.0.0.1:{servers['valid']}", opts(min_days_left=20)))).success


async def test_refused_keeps_what_was_measured():
    port = free_port()
    result = await run(tls.probe, probe_request(f"127.0.0.1:{port}", opts()))
    assert (result.success, result.error_code, result.data.phase) == (False, "refused", "connect"), result
    assert (result.data.address, result.data.port) == ("127.0.0.1", port)


async def test_silent_server_times_out_in_the_handshake_keeping_what_was_measured():
    async def silent(reader, writer):
        await reader.read()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.perf_counter()
        result = await run(tls.probe, probe_request(f"127.0.0.1:{port}", opts(), timeout=0.5))
        elapsed = time.perf_counter() - started
    finally:
        server.close()
    assert (result.success, result.error_code, result.data.phase) == (False, "timeout", "handshake"), result
    assert result.data.connect_ms > 0 and result.data.port == port
    # The message says the time it really waited.
    waited = float(re.search(r"after ([\d.]+) ms", result.error).group(1))
    assert -0.001 <= elapsed - waited / 1000 < TIMER_SLACK_S and elapsed < within(0.5)


@pytest.mark.parametrize("protocol", ["smtp", "imap", "pop3", "ftp"])
async def test_starttls(lab, protocol):
    server = await StartTlsServer(protocol, server_context(lab.valid)).start()
    try:
        result = await run(tls.probe, probe_request(f"127.0.0.1:{server.port}", opts(starttls=protocol)))
    finally:
        await server.stop()
    assert result.success, result
    assert result.data.verified and result.data.starttls_ms > 0 and result.data.handshake_ms > 0
    assert result.data.chain[0].subject.endswith("CN=www.t.test")


async def test_starttls_refused_by_the_server(lab):
    server = await StartTlsServer("smtp", server_context(lab.valid), refuse=True).start()
    try:
        result = await run(tls.probe, probe_request(f"127.0.0.1:{server.port}", opts(starttls="smtp")))
    finally:
        await server.stop()
    assert (result.success, result.error_code, result.data.phase) == (False, "starttls_error", "starttls"), result
    assert "454 4.7.0 TLS not available" in result.error


def test_summary_line():
    data = tls_pb2.TlsResult(address="127.0.0.1", port=443, version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256",
                             handshake_ms=2.0, alpn="h2", verified=True, days_left=20)
    data.chain.add(subject="CN=www.t.test", days_left=20)
    assert CHECK_TYPES["tls"].summary(data) == ("TLSv1.3 TLS_AES_128_GCM_SHA256 with 127.0.0.1 port 443 in 2 ms, "
                                                "ALPN h2, CN=www.t.test, 20 days left, verified")


# ---------------------------------------------------------------------------------------------- against openssl


@needs_openssl
@pytest.mark.parametrize("server", ["valid", "chained", "self"])
async def test_session_and_chain_agree_with_openssl_s_client(lab, servers, server):
    port = servers[server]
    ours = await run(tls.probe, probe_request(f"127.0.0.1:{port}", opts(server_name="www.t.test", insecure=True)))
    assert ours.success, ours
    out = await _openssl("s_client", "-connect", f"127.0.0.1:{port}", "-servername", "www.t.test", "-CAfile",
                         str(lab.ca), "-alpn", "h2,http/1.1", "-showcerts")
    protocol, cipher = re.search(r"New, (\S+), Cipher is (\S+)", out).groups()
    alpn = re.search(r"ALPN protocol: (\S+)", out).group(1)
    verify = re.search(r"Verify return code: (\d+) \(([^)]*)\)", out)
    assert (ours.data.version, ours.data.cipher, ours.data.alpn) == (protocol, cipher, alpn)
    # insecure: a chain that does not verify passes, but is still verified (and said so) as openssl does.
    assert verify.group(1) == ("0" if ours.data.verified else "18") and ours.data.verified == (server != "self")
    pems = re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", out, re.S)
    assert len(pems) == len(ours.data.chain)
    for pem, cert in zip(pems, ours.data.chain, strict=True):
        fields = await _openssl("x509", "-noout", "-subject", "-issuer", "-serial", "-enddate", "-startdate",
                                "-fingerprint", "-sha256", "-ext", "subjectAltName", "-nameopt", "sep_comma_plus_space",
                                stdin=pem.encode())
        assert f"subject={cert.subject}" in fields
        assert f"issuer={cert.issuer}" in fields
        assert int(re.search(r"serial=(\w+)", fields).group(1), 16) == int(cert.serial, 16)
        assert cert.sha256.upper() == re.search(r"Fingerprint=([\w:]+)", fields).group(1).replace(":", "")
        not_after = datetime.datetime.strptime(re.search(r"notAfter=(.+)", fields).group(1).strip(),
                                               "%b %d %H:%M:%S %Y %Z")
        assert cert.not_after == not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
        sans = re.search(r"X509v3 Subject Alternative Name:\s*\n\s*(.+)", fields)
        # DNS names bare (as the result has always given them), the rest as openssl writes them
        assert ", ".join(cert.sans) == (sans.group(1).strip().replace("DNS:", "") if sans else "")


@needs_openssl
@pytest.mark.parametrize(("server", "code"), [("expired", "10"), ("self", "18")])
async def test_verify_error_agrees_with_openssl(lab, servers, server, code):
    ours = await run(tls.probe, probe_request(f"127.0.0.1:{servers[server]}", opts(insecure=True)))
    out = await _openssl("s_client", "-connect", f"127.0.0.1:{servers[server]}", "-CAfile", str(lab.ca))
    verify = re.search(r"Verify return code: (\d+) \(([^)]*)\)", out)
    assert (verify.group(1), verify.group(2)) == (code, ours.data.verify_error)


@needs_openssl
async def test_starttls_smtp_agrees_with_openssl(lab):
    server = await StartTlsServer("smtp", server_context(lab.valid)).start()
    try:
        ours = await run(tls.probe, probe_request(f"127.0.0.1:{server.port}", opts(starttls="smtp")))
        out = await _openssl("s_client", "-connect", f"127.0.0.1:{server.port}", "-starttls", "smtp", "-CAfile",
                             str(lab.ca))
    finally:
        await server.stop()
    assert ours.success, ours
    assert "Verify return code: 0 (ok)" in out
    assert ours.data.version == re.search(r"New, (\S+), Cipher is", out).group(1)
