"""Revoking and deleting an agent (admin token only): its stream closes at once and its token stops working."""

from __future__ import annotations

import grpc
import pytest

from hostcheck.v1 import keys_pb2, keys_pb2_grpc, registry_pb2, results_pb2, scheduler_pb2
from tests.conftest import ADMIN, REGISTRATION_TOKEN
from tests.helpers import assert_eventually


async def test_revoked_agent_is_disconnected_and_refused(system, tmp_path):
    agent = await system.start_agent(tmp_path, "rogue")
    agent_id = agent.identity.agent_id
    reply = await system.agents_api.RevokeAgent(registry_pb2.RevokeAgentRequest(agent_id=agent_id), metadata=ADMIN)
    assert reply.agent.status == "revoked"
    await assert_eventually(lambda: not agent.ready.is_set(), timeout=10, message="stream closed")

    async def refused_and_listed():
        got = (await system.agents_api.GetAgent(registry_pb2.GetAgentRequest(agent_id=agent_id))).agent
        return got.status == "revoked"
    await assert_eventually(refused_and_listed, timeout=10, message="agent listed as revoked")
    # It tries again and is refused: never online again.
    connects = agent.connects
    await assert_eventually(lambda: agent.refusals >= 1, timeout=15, message="reconnect refused")
    online = await system.agents_api.ListAgents(registry_pb2.ListAgentsRequest(status="online"))
    assert not online.agents
    assert agent.connects == connects


async def create_key(system) -> str:
    reply = await keys_pb2_grpc.KeysServiceStub(system.results_channel).CreateKey(
        keys_pb2.CreateKeyRequest(name="someone"), metadata=ADMIN)
    return reply.api_key


@pytest.mark.parametrize(("credential", "code"), [
    (None, grpc.StatusCode.UNAUTHENTICATED),
    ([("authorization", "Bearer wrong")], grpc.StatusCode.UNAUTHENTICATED),
    # The registration token only registers.
    ([("x-registration-token", REGISTRATION_TOKEN)], grpc.StatusCode.UNAUTHENTICATED),
    ([("authorization", f"Bearer {REGISTRATION_TOKEN}")], grpc.StatusCode.UNAUTHENTICATED),
    ("key", grpc.StatusCode.PERMISSION_DENIED),
])
async def test_revoke_and_delete_need_the_admin_token(system, credential, code):
    reg = await system.register("victim")
    metadata = [] if credential is None else credential
    if credential == "key":
        metadata = [("authorization", f"Bearer {await create_key(system)}")]
    for call, req in ((system.agents_api.RevokeAgent, registry_pb2.RevokeAgentRequest(agent_id=reg.agent_id)),
                      (system.agents_api.DeleteAgent, registry_pb2.DeleteAgentRequest(agent_id=reg.agent_id))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call(req, metadata=metadata)
        assert err.value.code() == code, err.value.details()
    got = (await system.agents_api.GetAgent(registry_pb2.GetAgentRequest(agent_id=reg.agent_id))).agent
    assert got.status == "offline"


async def test_deleted_agent_is_disconnected_and_its_results_stay_readable(system, tmp_path, tcp_target):
    agent = await system.start_agent(tmp_path, "leaving")
    agent_id = agent.identity.agent_id
    created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target=f"127.0.0.1:{tcp_target}", checks=["tcp"]))

    async def done():
        check = (await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=created.check_id))).check
        return check if check.status == "completed" else None
    await assert_eventually(done, timeout=10, message="check completed")

    reply = await system.agents_api.DeleteAgent(registry_pb2.DeleteAgentRequest(agent_id=agent_id), metadata=ADMIN)
    assert reply.agent_id == agent_id
    await assert_eventually(lambda: not agent.ready.is_set(), timeout=10, message="stream closed")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.agents_api.GetAgent(registry_pb2.GetAgentRequest(agent_id=agent_id))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    check = (await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=created.check_id))).check
    assert [(r.agent_id, r.success) for r in check.results] == [(agent_id, True)]
    assert check.tasks[0].agent_name == "leaving"
    await assert_eventually(lambda: agent.refusals >= 1, timeout=15, message="reconnect refused")


async def test_registration_is_rate_limited_per_client_ip(system):
    # The fixture's registry allows 100 an hour per IP; attempts with a wrong token count too.
    for i in range(99):
        await system.register(f"a{i}")
    with pytest.raises(grpc.aio.AioRpcError) as wrong:
        await system.agents_api.RegisterAgent(registry_pb2.RegisterAgentRequest(name="x"),
                                              metadata=[("x-registration-token", "guess")])
    assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.register("one-too-many")
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "100 registrations per 3600 s" in err.value.details()
    assert dict(err.value.trailing_metadata())["retry-after"].isdigit()


async def test_revoke_unknown_agent_is_not_found(system):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.agents_api.RevokeAgent(
            registry_pb2.RevokeAgentRequest(agent_id="00000000-0000-4000-8000-000000000000"),
            metadata=ADMIN)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
