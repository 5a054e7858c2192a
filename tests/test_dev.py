"""The embedded default, as a user runs it: `hostcheck dev`, then `hostcheck check` and grpcurl."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest

from tests.helpers import VENV_BIN, Proc, assert_eventually, free_port, health_status, hostcheck_cmd


@pytest.fixture
async def dev(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    proc = Proc(hostcheck_cmd("dev", "--port", str(port), "--data-dir", str(tmp_path / "data"),
                              "--allow-target", "127.0.0.0/8"), env=env, log_path=tmp_path / "dev.log")
    try:
        await assert_eventually(lambda: _running(proc), timeout=60, interval=0.1, message="dev system running")
        yield port, proc
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]


def _running(proc: Proc) -> bool:
    if not proc.alive():
        raise AssertionError(f"hostcheck dev exited:\n{proc.output()[-3000:]}")
    return "Host Checker is running" in proc.output()


async def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    return await asyncio.to_thread(subprocess.run, list(args), capture_output=True, text=True, timeout=timeout, env=env)


async def test_check_through_dev_system(dev):
    port, proc = dev
    out = await run(*hostcheck_cmd("check", f"127.0.0.1:{port}", "--type", "tcp", "--type", "http",
                                   "--server", f"127.0.0.1:{port}", "--json"))
    assert out.returncode == 0, out.stderr
    check = json.loads(out.stdout)
    assert check["status"] == "completed"
    assert check["check_types"] == ["tcp", "http"]
    assert {t["agent_name"] for t in check["tasks"]} == {"local-0"}
    assert len(check["results"]) == 2
    tcp = next(r for r in check["results"] if r["check_type"] == "tcp")
    assert tcp["success"] is True and tcp["data"]["tcp"]["port"] == port and isinstance(tcp["duration_ms"], float | int)


async def test_check_progress_lines_and_exit_codes(dev):
    port, _ = dev
    out = await run(*hostcheck_cmd("check", f"127.0.0.1:{port}", "--type", "tcp", "--server", f"127.0.0.1:{port}"))
    assert out.returncode == 0, out.stderr
    assert "local-0" in out.stdout and "completed" in out.stdout

    bad = await run(*hostcheck_cmd("check", "10.1.2.3:80", "--type", "tcp", "--server", f"127.0.0.1:{port}"))
    assert bad.returncode == 3
    assert "target" in bad.stderr and "special-purpose" in bad.stderr

    closed = free_port()
    failed_probe = await run(*hostcheck_cmd("check", f"127.0.0.1:{closed}", "--type", "tcp", "--strict",
                                            "--server", f"127.0.0.1:{port}"))
    assert failed_probe.returncode == 1, failed_probe.stdout + failed_probe.stderr
    assert "refused" in failed_probe.stdout


async def test_grpcurl_lists_services_and_health_serving(dev):
    port, _ = dev
    out = await run(str(VENV_BIN / "grpcurl"), "-plaintext", f"127.0.0.1:{port}", "list")
    assert out.returncode == 0, out.stderr
    services = set(out.stdout.split())
    assert {"hostcheck.v1.SchedulerService", "hostcheck.v1.ResultsService", "hostcheck.v1.RegistryService",
            "hostcheck.v1.AgentStreamService", "grpc.health.v1.Health"} <= services
    assert await health_status(f"127.0.0.1:{port}") == 1  # SERVING


async def test_dev_refuses_a_port_in_use(dev, tmp_path):
    port, _ = dev
    out = await run(*hostcheck_cmd("dev", "--port", str(port), "--data-dir", str(tmp_path / "other")))
    assert out.returncode != 0
    assert f"127.0.0.1:{port}" in out.stderr and "--port" in out.stderr
