"""TLS and mutual TLS on the agent-facing ports (registry and scheduler), certificates made here."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from hostcheck.agent.client import Agent
from hostcheck.core.config import ConfigError
from hostcheck.v1 import registry_pb2, results_pb2, scheduler_pb2
from tests.conftest import REGISTRATION_TOKEN, System, fresh_postgres_db
from tests.helpers import assert_eventually, free_port
from tests.probers.servers import _openssl, make_certs


def client_cert(directory: Path, name: str, ca: str) -> tuple[Path, Path]:
    (directory / f"{name}.ext").write_text("extendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=directory)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-set_serial", "7",
             "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext", cwd=directory)
    return directory / f"{name}.pem", directory / f"{name}.key"


@pytest.fixture
async def tls_system(tmp_path, live_prefix):
    certs = make_certs(tmp_path)
    tls = {"tls_cert_file": str(certs.cert), "tls_key_file": str(certs.key), "tls_client_ca_file": str(certs.ca)}
    sched_tls, reg_tls = free_port(), free_port()
    from tests.conftest import REDIS_URL
    with fresh_postgres_db() as url:
        system = System(url, REDIS_URL, live_prefix,
                        scheduler_overrides={"tls_listen": f"127.0.0.1:{sched_tls}", **tls},
                        registry_overrides={"tls_listen": f"127.0.0.1:{reg_tls}", **tls})
        try:
            await system.start()
            yield system, certs, sched_tls, reg_tls
        finally:
            await system.stop()


def agent_config(system, tmp_path, name, sched_tls, reg_tls, **tls):
    return system.agent_config(tmp_path, name).__class__(**{
        **system.agent_config(tmp_path, name).__dict__, "scheduler_addr": f"127.0.0.1:{sched_tls}",
        "registry_addr": f"127.0.0.1:{reg_tls}", **tls})


async def test_agent_over_mutual_tls_registers_connects_and_checks(tls_system, tmp_path, tcp_target):
    system, certs, sched_tls, reg_tls = tls_system
    cert, key = client_cert(tmp_path, "agent-client", "ca")
    agent = Agent(agent_config(system, tmp_path, "secure", sched_tls, reg_tls, tls_ca_file=str(certs.ca),
                               tls_cert_file=str(cert), tls_key_file=str(key)))
    task = asyncio.create_task(agent.run())
    try:
        await assert_eventually(agent.ready.is_set, timeout=15, message="agent connected over mTLS")
        created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
            target=f"127.0.0.1:{tcp_target}", checks=["tcp"]))

        async def done():
            check = (await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=created.check_id))).check
            return check.status == "completed"
        await assert_eventually(done, timeout=15, message="check over the TLS stream completed")
    finally:
        await agent.stop(drain_timeout_s=0.2)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 5)


@pytest.mark.parametrize("who", ["no client certificate", "certificate from another CA", "untrusted server"])
async def test_tls_refuses_the_wrong_party(tls_system, tmp_path, who):
    system, certs, sched_tls, reg_tls = tls_system
    reg = await system.register("pretender")
    base = {"agent_id": reg.agent_id, "api_token": reg.api_token}
    if who == "no client certificate":
        tls = {"tls_ca_file": str(certs.ca)}
    elif who == "certificate from another CA":
        cert, key = client_cert(tmp_path, "rogue-client", "rogue-ca")
        tls = {"tls_ca_file": str(certs.ca), "tls_cert_file": str(cert), "tls_key_file": str(key)}
    else:  # the agent trusts only the rogue CA, so the real scheduler is not believed
        cert, key = client_cert(tmp_path, "agent-client", "ca")
        tls = {"tls_ca_file": str(tmp_path / "rogue-ca.pem"), "tls_cert_file": str(cert), "tls_key_file": str(key)}
    agent = Agent(agent_config(system, tmp_path, "pretender", sched_tls, reg_tls, **base, **tls))
    task = asyncio.create_task(agent.run())
    try:
        # Two failed attempts: the handshake is refused every time (the agent backs off and retries).
        await assert_eventually(lambda: agent.failed_attempts >= 2, timeout=10, message="attempts refused")
        assert not task.done()
        online = await system.agents_api.ListAgents(registry_pb2.ListAgentsRequest(status="online"))
        assert not online.agents
        assert agent.connects == 0
    finally:
        await agent.stop(drain_timeout_s=0.1)
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, 5)


def test_unreadable_tls_files_fail_at_start(tmp_path):
    from hostcheck.core.config import AgentConfig
    with pytest.raises(ConfigError, match="TLS_CA_FILE"):
        Agent(AgentConfig(tls_ca_file=str(tmp_path / "missing.pem"), registration_token=REGISTRATION_TOKEN))
    with pytest.raises(ConfigError, match="go together"):
        Agent(AgentConfig(tls=True, tls_cert_file="x.pem"))
