"""Agent sessions: hello, welcome, presence (batched heartbeats), one stream per agent, revocation."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from hostcheck.core.errors import Unauthenticated, Unavailable
from hostcheck.services.scheduler.sessions import authenticate
from hostcheck.v1 import agents_pb2, registry_pb2, scheduler_pb2
from tests.helpers import assert_eventually
from tests.scheduler.conftest import AgentStream, Replica, make_agent, rpc_error


@pytest.fixture
async def replica(live):
    made = await Replica(live, "s-1").start()
    yield made
    await made.stop()


async def test_hello_gets_a_welcome_and_a_presence_with_the_agents_location(replica, live):
    agent = make_agent("fra-1", labels={"tier": "edge"})
    stream = AgentStream()
    stream.say(hello=scheduler_pb2.AgentHello(version="2.0", capabilities=["tcp", "dns"]))
    replica.serve(agent, stream)
    welcome = (await stream.receive("welcome")).welcome
    assert (welcome.scheduler_id, welcome.agent_id, welcome.heartbeat_interval_s) == ("s-1", agent.agent_id, 10)
    presence = (await live.get_presence([agent.agent_id]))[agent.agent_id]
    assert presence.scheduler_id == "s-1"
    assert (presence.name, presence.location, presence.region, presence.country, presence.city) == (
        "fra-1", "fra-1 rack", "eu-central", "DE", "Frankfurt")
    assert presence.labels == {"tier": "edge"}
    # What the agent says it runs wins over what it registered with.
    assert (presence.version, presence.capabilities) == ("2.0", ["tcp", "dns"])
    assert len(replica.sessions) == 1 and replica.opened == 1


async def test_heartbeats_refresh_presence_in_one_batched_write(replica, live):
    agents = [make_agent(f"a{i}") for i in range(3)]
    streams = [await replica.connect(a) for a in agents]
    writes: list[int] = []
    set_presences = live.set_presences

    async def counted(presences, ttl_s):
        writes.append(len(presences))
        await set_presences(presences, ttl_s)
    live.set_presences = counted  # observes the real write; the state is still written
    for i, stream in enumerate(streams):
        stream.say(heartbeat=scheduler_pb2.AgentHeartbeat(tasks_in_flight=i + 1))

    async def refreshed():
        got = await live.get_presence([a.agent_id for a in agents])
        return [got[a.agent_id].tasks_in_flight for a in agents] == [1, 2, 3]
    await assert_eventually(refreshed, timeout=5, message="heartbeats written")
    assert writes == [3], "three heartbeats, one round trip"


async def test_results_go_to_the_sink_with_their_agent(replica):
    agent = make_agent()
    stream = await replica.connect(agent)
    stream.say(results=scheduler_pb2.ResultBatch(results=[
        scheduler_pb2.TaskResult(task_id="t1", success=True), scheduler_pb2.TaskResult(task_id="t2")]))
    await assert_eventually(lambda: replica.results, timeout=5, message="results handed on")
    [(agent_id, results)] = replica.results
    assert agent_id == agent.agent_id and [r.task_id for r in results] == ["t1", "t2"]


async def test_the_first_message_must_be_hello(replica, live):
    agent = make_agent()
    stream = AgentStream()
    stream.say(heartbeat=scheduler_pb2.AgentHeartbeat())
    with pytest.raises(Unauthenticated, match="first message on the stream must be hello"):
        await replica.serve(agent, stream)
    assert agent.agent_id not in replica.sessions
    assert await live.get_presence([agent.agent_id]) == {}


async def test_no_hello_in_time_is_refused(live):
    replica = await Replica(live, "s-1", hello_timeout_s=0.2).start()
    try:
        with pytest.raises(Unauthenticated, match="no hello within 0.2 s"):
            await replica.serve(make_agent(), AgentStream())
    finally:
        await replica.stop()


async def test_a_stream_that_ends_leaves_no_session_nor_presence(replica, live):
    agent = make_agent()
    stream = await replica.connect(agent)
    stream.hang_up()
    await asyncio.wait_for(replica.serving[agent.agent_id], 5)
    assert agent.agent_id not in replica.sessions
    assert await live.get_presence([agent.agent_id]) == {}
    await asyncio.wait_for(replica.sessions.wait_empty(), 5)


async def test_a_newer_stream_replaces_the_older_and_keeps_the_presence(replica, live):
    agent = make_agent()
    await replica.connect(agent)
    first = replica.serving[agent.agent_id]
    newer = await replica.connect(agent)
    await asyncio.wait_for(first, 5)  # the older stream ended...
    # ...without clearing the presence the newer one holds.
    assert agent.agent_id in await live.get_presence([agent.agent_id])
    assert replica.sessions.deliver(agent.agent_id, scheduler_pb2.TaskBatch(tasks=[scheduler_pb2.Task(task_id="t")]))
    assert (await newer.receive("tasks")).tasks.tasks[0].task_id == "t"


async def test_revoke_closes_the_local_stream(replica, live):
    agent = make_agent()
    await replica.connect(agent)
    replica.sessions.revoke("not-held-here")  # harmless
    replica.sessions.revoke(agent.agent_id)
    await asyncio.wait_for(replica.serving[agent.agent_id], 5)
    assert agent.agent_id not in replica.sessions
    assert await live.get_presence([agent.agent_id]) == {}


async def test_deliver_cancel_and_drain_reach_only_streams_held_here(replica):
    agent = make_agent()
    stream = await replica.connect(agent)
    assert replica.sessions.deliver("elsewhere", scheduler_pb2.TaskBatch()) is False
    assert replica.sessions.deliver(agent.agent_id, scheduler_pb2.TaskBatch(tasks=[scheduler_pb2.Task(task_id="t1")]))
    assert [t.task_id for t in (await stream.receive("tasks")).tasks.tasks] == ["t1"]
    replica.sessions.cancel({"elsewhere": ["x"], agent.agent_id: ["t1"]}, "check deleted")
    cancel = (await stream.receive("cancel")).cancel
    assert (list(cancel.task_ids), cancel.reason) == (["t1"], "check deleted")
    replica.sessions.drain("shutting down")
    assert (await stream.receive("drain")).drain.reason == "shutting down"


async def test_tasks_sent_down_a_stream_here_are_told_to_the_forwarder(live_pair):
    """on_deliver (the result forwarder's `expect`) hears of every task batch that goes down a stream
    held here, also when another replica routed it, and of none that does not."""
    told: list[list[str]] = []
    here = await Replica(live_pair[0], "s-here", on_deliver=lambda batch: told.append(
        [t.task_id for t in batch.tasks])).start()
    there = await Replica(live_pair[1], "s-there").start()
    try:
        agent = make_agent()
        stream = await here.connect(agent)
        assert here.sessions.deliver("elsewhere", scheduler_pb2.TaskBatch(tasks=[scheduler_pb2.Task(task_id="x")])) \
            is False
        here.sessions.deliver(agent.agent_id, scheduler_pb2.TaskBatch(tasks=[scheduler_pb2.Task(task_id="t1")]))
        await there.router.send(agent.agent_id, scheduler_pb2.TaskBatch(tasks=[scheduler_pb2.Task(task_id="t2")]),
                                "s-here")
        assert [t.task_id for t in (await stream.receive("tasks")).tasks.tasks] == ["t1"]
        assert [t.task_id for t in (await stream.receive("tasks")).tasks.tasks] == ["t2"]
        assert told == [["t1"], ["t2"]]
    finally:
        await here.stop()
        await there.stop()


class AgentAuth:
    """The registry's token check, answering as told."""

    def __init__(self, *, agent: agents_pb2.Agent | None = None, error=None) -> None:
        self.agent = agent
        self.error = error
        self.asked: list[registry_pb2.VerifyAgentTokenRequest] = []

    async def VerifyAgentToken(self, request, timeout=None):
        self.asked.append(request)
        if self.error is not None:
            raise self.error
        return registry_pb2.VerifyAgentTokenResponse(agent=self.agent)


async def test_authenticate_asks_the_registry_with_the_streams_credentials():
    agent = make_agent()
    auth = AgentAuth(agent=agent)
    got = await authenticate(auth, [("x-agent-id", agent.agent_id), ("authorization", "Bearer  tok ")])
    assert got == agent
    assert [(r.agent_id, r.api_token) for r in auth.asked] == [(agent.agent_id, "tok")]


@pytest.mark.parametrize("metadata", [[], [("x-agent-id", "a")], [("x-agent-id", "a"), ("authorization", "Basic x")]])
async def test_authenticate_needs_both_headers(metadata):
    auth = AgentAuth(agent=make_agent())
    with pytest.raises(Unauthenticated, match="needs x-agent-id and authorization"):
        await authenticate(auth, metadata)
    assert auth.asked == []


async def test_authenticate_tells_a_wrong_token_from_a_registry_outage():
    md = [("x-agent-id", "a"), ("authorization", "Bearer t")]
    with pytest.raises(Unauthenticated, match="wrong token"):
        await authenticate(AgentAuth(error=rpc_error(grpc.StatusCode.UNAUTHENTICATED, "wrong token")), md)
    with pytest.raises(Unavailable, match="registry unavailable: UNAVAILABLE"):
        await authenticate(AgentAuth(error=rpc_error(grpc.StatusCode.UNAVAILABLE)), md)
