"""Dispatch: the check is stored first (OpenCheck), then every agent gets its share, wherever it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from hostcheck.core.checks import validate_create
from hostcheck.core.errors import Unavailable
from hostcheck.core.metrics import SchedulerMetrics
from hostcheck.core.targets import TargetGuard
from hostcheck.services.scheduler.dispatch import Dispatcher
from hostcheck.services.scheduler.planning import plan_tasks
from hostcheck.v1 import checks_pb2, results_pb2, scheduler_pb2
from tests.helpers import assert_eventually
from tests.scheduler.conftest import make_agent, rpc_error


class ResultsIngest:
    """The results service's OpenCheck: records what it is asked, answers as told."""

    def __init__(self, *, error: grpc.aio.AioRpcError | None = None, before_reply=lambda request: None) -> None:
        self.error = error
        self.before_reply = before_reply
        self.opened: list[results_pb2.OpenCheckRequest] = []

    async def OpenCheck(self, request, timeout=None, metadata=None):
        self.opened.append(request)
        self.before_reply(request)
        if self.error is not None:
            raise self.error
        return results_pb2.OpenCheckResponse(check=checks_pb2.Check(check_id=request.check_id, status="in_progress"))


def metrics() -> SchedulerMetrics:
    return SchedulerMetrics(connected_agents=lambda: 0, forwarder_queue=lambda: 0)


async def planned(live, agents):
    """A plan of one check on these agents, picked from their live presences."""
    valid = validate_create(scheduler_pb2.CreateCheckRequest(target="127.0.0.1:8080", checks=["tcp"]),
                            TargetGuard.from_cidrs(("127.0.0.0/8",)))
    found = await live.get_presence([a.agent_id for a in agents])
    return plan_tasks(valid, [(found[a.agent_id], ["tcp"]) for a in agents], client_ip="192.0.2.1",
                      now=datetime.now(UTC), grace=timedelta(seconds=1))


async def test_the_check_is_stored_then_each_agent_gets_its_tasks(replicas, live):
    a, b = replicas
    here, there = make_agent("here", country="DE"), make_agent("there", city="Paris", country="FR")
    here_stream, there_stream = await a.connect(here), await b.connect(there)
    plan = await planned(live, [here, there])

    def nothing_sent_yet(request):
        assert here_stream.down.empty() and there_stream.down.empty(), "tasks sent before the check was stored"
    ingest = ResultsIngest(before_reply=nothing_sent_yet)
    counted = metrics()
    opened = await Dispatcher(ingest, live, a.router, counted).dispatch(plan)

    assert opened.check.check_id == plan.check_id
    [request] = ingest.opened
    assert (request.check_id, request.client_ip, request.request.target) == (plan.check_id, "192.0.2.1",
                                                                              "127.0.0.1:8080")
    assert request.deadline.ToDatetime(tzinfo=UTC) == plan.deadline
    # Where each task runs travels with it, so the results service needs no agents table.
    assert sorted((t.agent_name, t.location, t.country, t.city) for t in request.tasks) == [
        ("here", "here rack", "DE", "Frankfurt"), ("there", "there rack", "FR", "Paris")]
    got_here = (await here_stream.receive("tasks")).tasks.tasks
    got_there = (await there_stream.receive("tasks")).tasks.tasks
    assert [t.task_id for t in got_here] == [t.task_id for t in plan.by_agent[here.agent_id].tasks]
    assert [t.task_id for t in got_there] == [t.task_id for t in plan.by_agent[there.agent_id].tasks]
    assert await live.inflight(here.agent_id) == {t.task_id: float(t.deadline.seconds) for t in got_here}
    assert counted.registry.get_sample_value("hostcheck_checks_created_total") == 1
    assert counted.registry.get_sample_value("hostcheck_tasks_dispatched_total", {"check_type": "tcp"}) == 2


async def test_an_agent_that_moved_since_it_was_picked_still_gets_its_tasks(replicas, live):
    a, b = replicas
    agent = make_agent()
    stream = await b.connect(agent)
    plan = await planned(live, [agent])
    plan.by_agent[agent.agent_id].holder = "s-gone"  # the snapshot it was picked from was older
    await Dispatcher(ResultsIngest(), live, a.router, metrics()).dispatch(plan)
    assert len((await stream.receive("tasks")).tasks.tasks) == 1


async def test_nothing_is_sent_when_the_check_cannot_be_stored(replicas, live):
    a, _ = replicas
    agent = make_agent()
    stream = await a.connect(agent)
    plan = await planned(live, [agent])
    counted = metrics()
    ingest = ResultsIngest(error=rpc_error(grpc.StatusCode.UNAVAILABLE, "connection refused"))
    with pytest.raises(Unavailable, match="cannot store the check: results service UNAVAILABLE: connection refused"):
        await Dispatcher(ingest, live, a.router, counted).dispatch(plan)
    # Tasks are recorded in flight before they are sent: none were.
    assert await live.inflight(agent.agent_id) == {}
    assert stream.down.empty()
    assert counted.registry.get_sample_value("hostcheck_checks_created_total") == 0


async def test_the_in_flight_record_is_written_while_the_check_is_being_stored(replicas, live):
    """What sending needs besides the stored check is done while OpenCheck is out, not after it
    returns (issue 17); the tasks still go only once the check is stored."""
    a, _ = replicas
    agent = make_agent()
    stream = await a.connect(agent)
    plan = await planned(live, [agent])
    task_ids = {t.task_id for t in plan.by_agent[agent.agent_id].tasks}

    class Storing(ResultsIngest):
        async def OpenCheck(self, request, timeout=None, metadata=None):
            await assert_eventually(lambda: _inflight_ids(live, agent.agent_id, task_ids), timeout=5,
                                    message="in flight recorded while the check is being stored")
            assert stream.down.empty(), "tasks sent before the check was stored"
            return await super().OpenCheck(request, timeout, metadata)

    await Dispatcher(Storing(), live, a.router, metrics()).dispatch(plan)
    assert {t.task_id for t in (await stream.receive("tasks")).tasks.tasks} == task_ids


async def _inflight_ids(live, agent_id: str, expected: set[str]) -> bool:
    return set(await live.inflight(agent_id)) == expected
