"""Routing between replicas: tasks reach an agent wherever its stream is; cancels and revocations
reach the replica that holds the agent."""

from __future__ import annotations

import asyncio
import json

from hostcheck.services.storage.livestate import CANCELS_CHANNEL, REVOCATIONS_CHANNEL
from hostcheck.v1 import scheduler_pb2
from tests.scheduler.conftest import make_agent


def batch(*task_ids: str) -> scheduler_pb2.TaskBatch:
    return scheduler_pb2.TaskBatch(tasks=[scheduler_pb2.Task(task_id=t) for t in task_ids])


async def test_tasks_go_down_the_local_stream_or_through_the_replica_holding_the_agent(replicas):
    a, b = replicas
    here, there = make_agent("here"), make_agent("there")
    here_stream, there_stream = await a.connect(here), await b.connect(there)
    # The hint is what the agent's presence said when it was picked; "there" has since moved to s-b.
    holders = await a.router.holders({here.agent_id: "s-old", there.agent_id: "s-old"})
    assert holders == {here.agent_id: "s-a", there.agent_id: "s-b"}
    await a.router.send(here.agent_id, batch("t1"), holders[here.agent_id])
    await a.router.send(there.agent_id, batch("t2"), holders[there.agent_id])
    assert [t.task_id for t in (await here_stream.receive("tasks")).tasks.tasks] == ["t1"]
    assert [t.task_id for t in (await there_stream.receive("tasks")).tasks.tasks] == ["t2"]


async def test_an_agent_without_presence_keeps_its_hint(replicas):
    a, _ = replicas
    assert await a.router.holders({"gone": "s-b"}) == {"gone": "s-b"}
    assert await a.router.holders({}) == {}


async def test_cancels_reach_the_replicas_holding_the_agents(replicas, live_pair):
    a, b = replicas
    on_a, on_b = make_agent("on-a"), make_agent("on-b")
    stream_a, stream_b = await a.connect(on_a), await b.connect(on_b)
    await live_pair[0].publish(CANCELS_CHANNEL, json.dumps({"reason": "check deleted", "tasks": [
        [on_a.agent_id, "t1"], [on_b.agent_id, "t2"], [on_a.agent_id, "t3"], ["nowhere", "t4"]]}).encode())
    cancel_a = (await stream_a.receive("cancel")).cancel
    cancel_b = (await stream_b.receive("cancel")).cancel
    assert (list(cancel_a.task_ids), cancel_a.reason) == (["t1", "t3"], "check deleted")
    assert (list(cancel_b.task_ids), cancel_b.reason) == (["t2"], "check deleted")


async def test_a_revocation_closes_the_stream_wherever_it_is(replicas, live_pair):
    _, b = replicas
    agent = make_agent()
    await b.connect(agent)
    await live_pair[0].publish(REVOCATIONS_CHANNEL, agent.agent_id.encode())
    await asyncio.wait_for(b.serving[agent.agent_id], 5)
    assert agent.agent_id not in b.sessions


async def test_a_bad_message_does_not_stop_routing(replicas, live_pair):
    a, _ = replicas
    agent = make_agent()
    stream = await a.connect(agent)
    await live_pair[1].publish(CANCELS_CHANNEL, b"not json")
    await live_pair[1].publish(a.router.channel, b"\xff not a message")
    await live_pair[1].publish(a.router.channel, scheduler_pb2.RoutedTasks(
        agent_id=agent.agent_id, batch=batch("t1")).SerializeToString())
    assert [t.task_id for t in (await stream.receive("tasks")).tasks.tasks] == ["t1"]
