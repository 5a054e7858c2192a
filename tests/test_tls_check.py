"""The tls check type end to end, as a user runs it: `hostcheck dev` (its local agent trusting a private CA
through SSL_CERT_FILE), then `hostcheck check <local TLS server> --type tls`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest

from tests.helpers import Proc, assert_eventually, free_port, hostcheck_cmd
from tests.probers.tlslab import StartTlsServer, TlsServer, make_lab, server_context


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return make_lab(tmp_path_factory.mktemp("tlslab"))


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}, **extra}


@pytest.fixture
async def dev(tmp_path, lab):
    port = free_port()
    proc = Proc(hostcheck_cmd("dev", "--port", str(port), "--data-dir", str(tmp_path / "data"),
                              "--allow-target", "127.0.0.0/8"), env=_env(SSL_CERT_FILE=str(lab.ca)),
                log_path=tmp_path / "dev.log")

    def running() -> bool:
        if not proc.alive():
            raise AssertionError(f"hostcheck dev exited:\n{proc.output()[-3000:]}")
        return "Host Checker is running" in proc.output()
    try:
        await assert_eventually(running, timeout=60, interval=0.1, message="dev system running")
        yield port
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]


async def check(port: int, *args: str) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(subprocess.run, hostcheck_cmd("check", *args, "--server", f"127.0.0.1:{port}"),
                                   capture_output=True, text=True, timeout=60, env=_env())


async def test_tls_check_of_a_local_server_through_the_dev_system(dev, lab):
    valid = await TlsServer(server_context(lab.valid)).start()
    expired = await TlsServer(server_context(lab.expired)).start()
    smtp = await StartTlsServer("smtp", server_context(lab.valid)).start()
    try:
        out = await check(dev, f"127.0.0.1:{valid.port}", "--type", "tls", "-o", "tls.server_name=www.t.test")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "1 of 1 probe succeeded" in out.stdout and "verified" in out.stdout

        detail = await check(dev, f"127.0.0.1:{valid.port}", "--type", "tls", "--json")
        assert detail.returncode == 0, detail.stderr
        result = json.loads(detail.stdout)["results"][0]
        tls = result["data"]["tls"]
        assert result["success"] and tls["verified"] and tls["days_left"] == 20
        assert tls["chain"][0]["subject"] == "O=Hostcheck TLS Lab, CN=www.t.test"

        failed = await check(dev, f"127.0.0.1:{expired.port}", "--type", "tls")
        assert failed.returncode == 4, failed.stdout + failed.stderr
        assert "certificate_invalid" in failed.stdout and "certificate has expired" in failed.stdout

        mail = await check(dev, f"127.0.0.1:{smtp.port}", "--type", "tls", "-o", "tls.starttls=smtp")
        assert mail.returncode == 0, mail.stdout + mail.stderr
    finally:
        for server in (valid, expired, smtp):
            await server.stop()
