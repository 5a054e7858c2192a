"""Production shape: each service its own process on Postgres + Redis, an agent process, and
Envoy configured by `hostcheck gateway render` from HOSTCHECK_GATEWAY_* settings."""

from __future__ import annotations

import asyncio
import os

import grpc
import httpx
import pytest

from hostcheck.gateway import envoy
from hostcheck.v1 import results_pb2, results_pb2_grpc
from tests.conftest import REDIS_URL, fresh_postgres_db
from tests.gateway.conftest import Gateway, start_envoy, wait_envoy_ready
from tests.helpers import assert_eventually, free_port, hostcheck_cmd, with_loopback_dns
from tests.procs import ProcSystem


async def run(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(*args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode, out.decode()


def clean_env(**settings: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}, **settings}


async def test_services_as_processes_behind_envoy(tmp_path, live_prefix, tcp_target):
    with fresh_postgres_db() as url:
        system = ProcSystem(url, REDIS_URL, live_prefix, tmp_path)
        gw = None
        try:
            await system.start()
            system.start_agent("prod-agent")
            port, admin_port = free_port(), free_port()
            config = tmp_path / "envoy.yaml"
            code, out = await run([*hostcheck_cmd("gateway", "render", "--output", str(config))], clean_env(
                HOSTCHECK_GATEWAY_LISTEN_ADDRESS="127.0.0.1", HOSTCHECK_GATEWAY_LISTEN_PORT=str(port),
                HOSTCHECK_GATEWAY_ADMIN_PORT=str(admin_port),
                HOSTCHECK_GATEWAY_SCHEDULER_ADDR=f"localhost:{system.ports['scheduler']}",  # a DNS name
                HOSTCHECK_GATEWAY_RESULTS_ADDR=system.addr("results"),
                HOSTCHECK_GATEWAY_REGISTRY_ADDR=system.addr("registry")))
            assert code == 0, out
            gw = Gateway(start_envoy(config, tmp_path), port, admin_port)
            await wait_envoy_ready(gw)

            async with httpx.AsyncClient(base_url=gw.url, timeout=10) as rest:
                async def agent_online():
                    health = (await rest.get("/health")).json()
                    assert health["database"] == "ok" and health["redis"] == "ok", health
                    assert (health["live_state"], health["live_state_kind"]) == ("ok", "redis"), health
                    return health["active_agents"] == 1 and health["status"] == "ok"
                await assert_eventually(agent_online, timeout=20, message="agent online in /health")

                created = await rest.post("/api/checks", json={"target": f"127.0.0.1:{tcp_target}", "checks": ["tcp"]})
                assert created.status_code == 200, created.text
                check_id = created.json()["check_id"]

                # Plain gRPC (h2c) on the same port.
                async with grpc.aio.insecure_channel(gw.addr) as channel:
                    stub = results_pb2_grpc.ResultsServiceStub(channel)

                    async def done():
                        check = (await stub.GetCheck(results_pb2.GetCheckRequest(check_id=check_id))).check
                        return check if check.status == "completed" else None
                    check = await assert_eventually(done, timeout=15, message="check completed")
                assert check.results[0].success

                lines = [line async for line in _lines(rest, f"/api/checks/{check_id}/watch")]
                assert lines[0].startswith('{"event":"snapshot"') and lines[-1].startswith('{"event":"done"')
        except BaseException:
            print(system.logs(), gw.proc.output() if gw else "")
            raise
        finally:
            if gw is not None:
                gw.proc.stop()
            system.stop()


async def _lines(rest: httpx.AsyncClient, path: str):
    async with rest.stream("GET", path) as reply:
        async for line in reply.aiter_lines():
            if line.strip():
                yield line


async def test_default_render_is_a_valid_envoy_config(tmp_path):
    """What `hostcheck gateway render` prints with no settings (Kubernetes service names) loads in Envoy."""
    config = tmp_path / "envoy.yaml"
    rendered = envoy.render_from_env({})
    assert "address: scheduler, port_value: 50052" in rendered
    config.write_text(with_loopback_dns(rendered))
    code, out = await run([envoy.envoy_binary(), "--mode", "validate", "-c", str(config)], clean_env())
    assert code == 0, out


@pytest.mark.parametrize(("env", "error"), [
    ({"HOSTCHECK_GATEWAY_LISTEN_PORT": "http"}, "HOSTCHECK_GATEWAY_LISTEN_PORT='http': expected a port (1-65535)"),
    ({"HOSTCHECK_GATEWAY_ADMIN_PORT": "70000"}, "HOSTCHECK_GATEWAY_ADMIN_PORT='70000': expected a port (1-65535)"),
    ({"HOSTCHECK_GATEWAY_SCHEDULER_ADDR": "scheduler"}, "upstream address 'scheduler' is not host:port"),
    ({"HOSTCHECK_GATEWAY_REGISTRY": "registry:50051"}, "unknown gateway setting(s): HOSTCHECK_GATEWAY_REGISTRY"),
])
def test_render_rejects_bad_settings(env, error):
    with pytest.raises(ValueError) as excinfo:
        envoy.render_from_env(env)
    assert str(excinfo.value) == error


async def test_render_command_fails_loudly():
    code, out = await run(hostcheck_cmd("gateway", "render"), clean_env(HOSTCHECK_GATEWAY_LISTEN_PORT="http"))
    assert code == 1
    assert "configuration: HOSTCHECK_GATEWAY_LISTEN_PORT='http': expected a port (1-65535)" in out


