"""http and tcp probers against blackbox_exporter (Debian's prometheus-blackbox-exporter) on the same local
servers: the same verdict for each body, header, TLS and version assertion and each tcp dialogue, and the
same body size and transfer time for a slow 1 MiB body (issue 14)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import urllib.request

import pytest

from hostcheck.agent.probers import _certs, http, tcp
from hostcheck.v1 import http_pb2, tcp_pb2
from tests.helpers import assert_eventually, free_port
from tests.probers.conftest import probe_request, run
from tests.probers.test_http_reference import MIB, _reference_peer
from tests.probers.tlslab import StartTlsServer, make_lab, server_context

BLACKBOX = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
pytestmark = pytest.mark.skipif(BLACKBOX is None, reason="blackbox_exporter is not installed "
                                                         "(apt-get install prometheus-blackbox-exporter)")

# module -> (its blackbox config, our options for the same assertion)
HTTP_CASES = {
    "body_found": ("fail_if_body_not_matches_regexp: ['NEEDLE-42']", dict(body_regexp="NEEDLE-42")),
    "body_missing": ("fail_if_body_not_matches_regexp: ['NEEDLE-43']", dict(body_regexp="NEEDLE-43")),
    "header_matches": ("fail_if_header_not_matches: [{header: X-Version, regexp: '^2\\.\\d'}]",
                       dict(header_regexp=[http_pb2.HeaderRegexp(header="X-Version", regexp=r"^2\.\d")])),
    "header_differs": ("fail_if_header_not_matches: [{header: X-Version, regexp: '^3'}]",
                       dict(header_regexp=[http_pb2.HeaderRegexp(header="X-Version", regexp="^3")])),
    "header_forbidden": ("fail_if_header_matches: [{header: Server, regexp: 'test'}]",
                         dict(header_regexp=[http_pb2.HeaderRegexp(header="Server", regexp="test",
                                                                   fail_if_matches=True)])),
    "header_missing_allowed": ("fail_if_header_not_matches: [{header: X-Missing, regexp: 'a', allow_missing: true}]",
                               dict(header_regexp=[http_pb2.HeaderRegexp(header="X-Missing", regexp="a",
                                                                         allow_missing=True)])),
    "not_ssl": ("fail_if_not_ssl: true", dict(fail_if_not_ssl=True)),
    "ssl": ("fail_if_ssl: true", dict(fail_if_ssl=True)),
    "http2_only": ("valid_http_versions: ['HTTP/2.0']", dict(valid_http_versions=["HTTP/2.0"])),
    "http11": ("valid_http_versions: ['HTTP/1.1']", dict(valid_http_versions=["HTTP/1.1"])),
    "plain": ("{}", {}),
}
# path of the reference peer each http case probes
HTTP_PATHS = {"body_found": "/needle", "body_missing": "/needle"}

TCP_CASES = {
    "banner": ("[{expect: '^220 \\S+ ready'}]", dict(expect=r"^220 \S+ ready")),
    "banner_differs": ("[{expect: '^554'}]", dict(expect="^554")),
    "send_expect": ("[{expect: '^220'}, {send: 'PING 42'}, {expect: 'you said: PING 42'}]",
                    dict(send="PING 42\n", expect="you said: PING 42")),
}


def _config(lab) -> str:
    lines = ["modules:"]
    for name, (rule, _) in HTTP_CASES.items():
        lines += [f"  {name}:", "    prober: http", "    timeout: 5s", "    http:",
                  "      preferred_ip_protocol: ip4", f"      {rule.split(':', 1)[0]}:{rule.split(':', 1)[1]}"
                  if rule != "{}" else "      method: GET"]
    for name, (steps, _) in TCP_CASES.items():
        lines += [f"  {name}:", "    prober: tcp", "    timeout: 5s", "    tcp:", "      preferred_ip_protocol: ip4",
                  f"      query_response: {steps}"]
    lines += ["  smtp_starttls:", "    prober: tcp", "    timeout: 5s", "    tcp:", "      preferred_ip_protocol: ip4",
              "      query_response: [{expect: '^220'}, {send: 'EHLO x'}, {expect: '^250 STARTTLS'}, "
              "{send: 'STARTTLS'}, {expect: '^220'}, {starttls: true}, {expect: 'secure hello'}]",
              "      tls_config: {ca_file: '" + str(lab.ca) + "', server_name: www.t.test}"]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    made = make_lab(tmp_path_factory.mktemp("bblab"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSL_CERT_FILE", str(made.ca))
        _certs.client_context.cache_clear()
        http.ssl_context.cache_clear()
        yield made
    _certs.client_context.cache_clear()
    http.ssl_context.cache_clear()


@pytest.fixture(scope="module")
async def blackbox(lab, tmp_path_factory):
    directory = tmp_path_factory.mktemp("blackbox")
    config = directory / "blackbox.yml"
    config.write_text(_config(lab))
    check = await asyncio.to_thread(subprocess.run, [BLACKBOX, f"--config.file={config}", "--config.check"],
                                    capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr + config.read_text()
    port = free_port()
    log = open(directory / "blackbox.log", "wb")  # noqa: SIM115 - closed below, after the process
    proc = subprocess.Popen([BLACKBOX, f"--config.file={config}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy() -> bool:
            assert proc.poll() is None, (directory / "blackbox.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/-/healthy", timeout=1) as reply:
                    return reply.status == 200
            except OSError:
                return False
        await assert_eventually(lambda: asyncio.to_thread(healthy), timeout=20, message="blackbox_exporter up")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


async def _probe(blackbox: str, module: str, target: str) -> dict[str, float]:
    """The probe's metrics without labels, plus `phase:<name>` for probe_http_duration_seconds."""
    def fetch() -> str:
        with urllib.request.urlopen(f"{blackbox}/probe?module={module}&target={target}", timeout=15) as reply:
            return reply.read().decode()
    metrics: dict[str, float] = {}
    for line in (await asyncio.to_thread(fetch)).splitlines():
        if line.startswith("#") or not line:
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith('probe_http_duration_seconds{phase="'):
            name = "phase:" + name.split('"')[1]
        metrics[name] = float(value)
    return metrics


@pytest.fixture(scope="module")
async def peer():
    server = await asyncio.start_server(_reference_peer, "127.0.0.1", 0, backlog=64)
    yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    server.close()


@pytest.mark.parametrize("module", sorted(HTTP_CASES))
async def test_http_assertions_agree_with_blackbox(blackbox, peer, module):
    url = peer + HTTP_PATHS.get(module, "/headers")
    theirs = await _probe(blackbox, module, url)
    ours = await run(http.probe, probe_request(url, http_pb2.HttpOptions(**HTTP_CASES[module][1])))
    assert ours.success == bool(theirs["probe_success"]), (module, ours.error, theirs)


async def test_slow_mib_body_agrees_with_blackbox(blackbox, peer):
    theirs = await _probe(blackbox, "plain", f"{peer}/slow-mib")
    ours = await run(http.probe, probe_request(f"{peer}/slow-mib", http_pb2.HttpOptions(), timeout=10))
    assert ours.success and theirs["probe_success"] == 1
    assert ours.data.body_size == theirs["probe_http_uncompressed_body_length"] == MIB
    # The transfer is the server's pace (~300 ms); blackbox's "transfer" phase and our download agree.
    assert abs(ours.data.timings.download_ms / 1000 - theirs["phase:transfer"]) < 0.15, (ours.data.timings, theirs)


@pytest.fixture(scope="module")
async def banner_server():
    async def handle(reader, writer):
        writer.write(b"220 banner.t.test ready\r\n")
        try:
            while line := await reader.readline():
                writer.write(b"you said: " + line)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


@pytest.mark.parametrize("module", sorted(TCP_CASES))
async def test_tcp_dialogue_agrees_with_blackbox(blackbox, banner_server, module):
    target = f"127.0.0.1:{banner_server}"
    theirs = await _probe(blackbox, module, target)
    ours = await run(tcp.probe, probe_request(target, tcp_pb2.TcpOptions(**TCP_CASES[module][1])))
    assert ours.success == bool(theirs["probe_success"]), (module, ours.error, theirs)


async def test_smtp_starttls_agrees_with_blackbox(blackbox, lab):
    server = await StartTlsServer("smtp", server_context(lab.valid)).start()
    target = f"127.0.0.1:{server.port}"
    try:
        theirs = await _probe(blackbox, "smtp_starttls", target)
        ours = await run(tcp.probe, probe_request(target, tcp_pb2.TcpOptions(starttls="smtp", expect="secure hello")))
    finally:
        await server.stop()
    assert ours.success and theirs["probe_success"] == 1, (ours, theirs)
    # blackbox reports the leaf's expiry as a timestamp; ours as the certificate's not_after
    expiry = theirs["probe_ssl_earliest_cert_expiry"]
    assert ours.data.tls.certificate.not_after == lab.valid_not_after.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert expiry == lab.valid_not_after.timestamp()
