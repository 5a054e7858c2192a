"""One job per token, on the agent's side: the registration token registers and is then dropped;
the running agent holds only its own api token (the DaemonSet registers in an init container)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
from pathlib import Path

from hostcheck.v1 import registry_pb2
from tests.conftest import REGISTRATION_TOKEN
from tests.helpers import Proc, assert_eventually, hostcheck_cmd


def agent_env(system, state: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    return {**env, "HOSTCHECK_REGISTRY_ADDR": system.registry_addr, "HOSTCHECK_SCHEDULER_ADDR": system.scheduler_addr,
            "HOSTCHECK_STATE_FILE": str(state), "HOSTCHECK_NAME": "node-1",
            "HOSTCHECK_ALLOW_TARGETS": "127.0.0.0/8", **extra}


async def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return await asyncio.to_thread(subprocess.run, args, capture_output=True, text=True, timeout=60, env=env)


async def test_register_only_then_the_agent_runs_without_the_registration_token(system, tmp_path):
    state = tmp_path / "state" / "agent.json"
    registered = await run(hostcheck_cmd("agent", "--register-only"),
                           agent_env(system, state, HOSTCHECK_REGISTRATION_TOKEN=REGISTRATION_TOKEN))
    assert registered.returncode == 0, registered.stderr
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    identity = json.loads(state.read_text())
    # Again (a restarted pod's init container): the state file is kept, no second agent, no token needed.
    again = await run(hostcheck_cmd("agent", "--register-only"), agent_env(system, state))
    assert again.returncode == 0, again.stderr
    assert json.loads(state.read_text()) == identity
    assert (await system.agents_api.ListAgents(registry_pb2.ListAgentsRequest())).total == 1

    proc = Proc(hostcheck_cmd("agent"), env=agent_env(system, state), log_path=tmp_path / "agent.log")
    try:
        async def online() -> bool:
            if not proc.alive():
                raise AssertionError(proc.output()[-2000:])
            reply = await system.agents_api.ListAgents(registry_pb2.ListAgentsRequest(status="online"))
            return [a.agent_id for a in reply.agents] == [identity["agent_id"]]
        await assert_eventually(online, timeout=20, message="agent online without the registration token")
        assert b"HOSTCHECK_REGISTRATION_TOKEN" not in Path(f"/proc/{proc.pid}/environ").read_bytes()
    finally:
        assert proc.stop() == 0, proc.output()[-2000:]


async def test_without_a_state_file_or_token_register_only_says_what_is_missing(system, tmp_path):
    out = await run(hostcheck_cmd("agent", "--register-only"), agent_env(system, tmp_path / "none.json"))
    assert out.returncode == 1
    assert "no registration token (HOSTCHECK_REGISTRATION_TOKEN" in out.stderr


async def test_an_agent_forgets_the_registration_token_once_registered(system, tmp_path):
    agent = await system.start_agent(tmp_path, "forgetful")
    assert agent.identity.api_token
    assert agent.config.registration_token == ""
