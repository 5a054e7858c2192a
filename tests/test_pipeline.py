"""The pipeline on both storage backends: create -> dispatch -> agents -> results -> watch."""

from __future__ import annotations

import grpc
import pytest

from hostcheck.v1 import http_pb2, results_pb2, scheduler_pb2
from tests.conftest import ADMIN
from tests.helpers import assert_eventually


async def watch_until_done(system, check_id: str) -> list[results_pb2.WatchCheckResponse]:
    events = []
    async for event in system.checks.WatchCheck(results_pb2.WatchCheckRequest(check_id=check_id), timeout=30):
        events.append(event)
        if event.event == "done":
            break
    return events


async def test_check_runs_on_every_agent_and_completes(system, tmp_path, tcp_target, http_target):
    await system.start_agent(tmp_path, "a1")
    await system.start_agent(tmp_path, "a2")
    created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target=f"127.0.0.1:{tcp_target}", checks=["tcp", "http"],
        http=http_pb2.HttpOptions(port=http_target.port)))
    assert created.check.status == "in_progress"
    assert created.check.tasks_total == 4

    events = await watch_until_done(system, created.check_id)
    assert events[0].event == "snapshot"
    assert events[-1].event == "done"
    task_events = [e for e in events if e.event == "task"]
    assert {e.task.task_id for e in task_events} <= {t.task_id for t in created.check.tasks}

    check = (await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=created.check_id))).check
    assert check.status == "completed"
    assert check.tasks_done == check.tasks_total == 4
    pairs = sorted((t.agent_name, t.check_type, t.status) for t in check.tasks)
    assert pairs == [("a1", "http", "completed"), ("a1", "tcp", "completed"),
                     ("a2", "http", "completed"), ("a2", "tcp", "completed")]
    assert len(check.results) == 4
    for r in check.results:
        assert r.success, r.error
        assert r.duration_ms > 0
    http_data = next(r.data for r in check.results if r.check_type == "http")
    assert http_data.WhichOneof("result") == "http" and http_data.http.status_code == 200
    assert http_data.http.timings.first_byte_ms > 0 and http_data.http.headers
    tcp_data = next(r.data for r in check.results if r.check_type == "tcp")
    assert tcp_data.tcp.address == "127.0.0.1" and tcp_data.tcp.port == tcp_target


async def test_seed_body_works_as_written(system, tmp_path):
    """The seed's {"target": ..., "checks": [...]} with only those two fields creates a check."""
    await system.start_agent(tmp_path, "a1")
    created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(target="127.0.0.1", checks=["http"]))
    assert created.check_id and created.check.check_types == ["http"]


async def test_failed_probe_is_a_result_and_check_still_completes(system, tmp_path):
    await system.start_agent(tmp_path, "a1")
    from tests.helpers import free_port
    closed = free_port()
    created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target=f"127.0.0.1:{closed}", checks=["tcp"]))
    events = await watch_until_done(system, created.check_id)
    check = events[-1].check
    assert check.status == "completed"
    (task,) = check.tasks
    assert task.status == "failed"
    assert task.result.error_code == "refused"
    assert "refused" in task.result.error


async def test_no_agent_online_is_failed_precondition(system):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(target="127.0.0.1:80", checks=["tcp"]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no online agent" in err.value.details()


async def test_list_and_delete(system, tmp_path, tcp_target):
    await system.start_agent(tmp_path, "a1")
    ids = []
    for _ in range(3):
        created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
            target=f"127.0.0.1:{tcp_target}", checks=["tcp"]))
        ids.append(created.check_id)
    page1 = await system.checks.ListChecks(results_pb2.ListChecksRequest(page_size=2))
    assert [c.check_id for c in page1.checks] == ids[::-1][:2]
    assert page1.next_page_token
    page2 = await system.checks.ListChecks(results_pb2.ListChecksRequest(page_size=2, page_token=page1.next_page_token))
    assert [c.check_id for c in page2.checks] == ids[:1]
    assert not page2.next_page_token

    await assert_eventually(lambda: _status(system, ids[0]), message="first check done")
    await system.checks.DeleteCheck(results_pb2.DeleteCheckRequest(check_id=ids[0]), metadata=ADMIN)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=ids[0]))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def _status(system, check_id: str) -> bool:
    check = (await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=check_id))).check
    return check.status == "completed"
