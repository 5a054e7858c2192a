"""Revoking an agent: its stream closes at once and its token stops working."""

from __future__ import annotations

import grpc
import pytest

from hostcheck.v1 import registry_pb2
from tests.conftest import REGISTRATION_TOKEN
from tests.helpers import assert_eventually


async def test_revoked_agent_is_disconnected_and_refused(system, tmp_path):
    agent = await system.start_agent(tmp_path, "rogue")
    agent_id = agent.identity.agent_id
    reply = await system.agents_api.RevokeAgent(registry_pb2.RevokeAgentRequest(agent_id=agent_id),
                                                metadata=[("x-registration-token", REGISTRATION_TOKEN)])
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


@pytest.mark.parametrize("token", [None, "wrong"])
async def test_revoke_needs_the_registration_token(system, token):
    reg = await system.register("victim")
    metadata = [] if token is None else [("x-registration-token", token)]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.agents_api.RevokeAgent(registry_pb2.RevokeAgentRequest(agent_id=reg.agent_id), metadata=metadata)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    got = (await system.agents_api.GetAgent(registry_pb2.GetAgentRequest(agent_id=reg.agent_id))).agent
    assert got.status == "offline"


async def test_revoke_unknown_agent_is_not_found(system):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.agents_api.RevokeAgent(
            registry_pb2.RevokeAgentRequest(agent_id="00000000-0000-4000-8000-000000000000"),
            metadata=[("x-registration-token", REGISTRATION_TOKEN)])
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
