"""WatchCheck bounds (issue 12): caps per check and per client IP, a client that stops reading is
dropped, and a reader keeps up with the largest burst one check can publish."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from hostcheck.core import limits
from hostcheck.services.storage.livestate import check_channel
from hostcheck.v1 import checks_pb2, http_pb2, results_pb2, results_pb2_grpc, scheduler_pb2
from tests.helpers import assert_eventually


async def open_check(system, tasks: int) -> tuple[str, list[results_pb2.PlannedTask]]:
    """A pending check stored as the scheduler stores one (no agent needed)."""
    check_id = str(uuid.uuid4())
    deadline = datetime.now(UTC) + timedelta(minutes=10)
    planned = [results_pb2.PlannedTask(task_id=str(uuid.uuid4()), agent_id=str(uuid.uuid4()), check_type="http",
                                       agent_name=f"agent-{i}") for i in range(tasks)]
    request = results_pb2.OpenCheckRequest(check_id=check_id, tasks=planned, request=scheduler_pb2.CreateCheckRequest(
        target="example.com", checks=["http"]))
    request.deadline.FromDatetime(deadline)
    for task in planned:
        task.deadline.FromDatetime(deadline)
    await system.ingest.OpenCheck(request)
    return check_id, planned


async def record(system, check_id: str, tasks: list[results_pb2.PlannedTask], body: str) -> None:
    for start in range(0, len(tasks), 100):
        batch = results_pb2.RecordResultsRequest(results=[results_pb2.AgentResult(
            agent_id=t.agent_id, result=scheduler_pb2.TaskResult(
                task_id=t.task_id, check_id=check_id, check_type="http", success=True, duration_ms=1.0,
                data=checks_pb2.ResultData(http=http_pb2.HttpResult(status_code=200, body=body))))
            for t in tasks[start:start + 100]])
        await system.ingest.RecordResults(batch)


async def watch(system, check_id: str, stub=None):
    """A started watch (its snapshot read), or the error that refused it."""
    call = (stub or system.checks).WatchCheck(results_pb2.WatchCheckRequest(check_id=check_id))
    first = await call.read()
    assert first.event == "snapshot", first
    return call


async def refused(system, check_id: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await watch(system, check_id)
    return err.value


@pytest.mark.system_config(results_overrides={"watchers_per_client_ip": 2})
async def test_watchers_per_client_ip_are_capped(system):
    check_a, _ = await open_check(system, 1)
    check_b, _ = await open_check(system, 1)
    first, second = await watch(system, check_a), await watch(system, check_b)
    err = await refused(system, check_a)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "watches 2 checks" in err.details()
    first.cancel()

    async def admitted():
        try:
            (await watch(system, check_a)).cancel()
            return True
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            return False
    await assert_eventually(admitted, timeout=10, message="a freed slot is reused")
    second.cancel()


@pytest.mark.system_config(results_overrides={"watchers_per_check": 2})
async def test_watchers_per_check_are_capped(system):
    check_a, _ = await open_check(system, 1)
    check_b, _ = await open_check(system, 1)
    calls = [await watch(system, check_a), await watch(system, check_a)]
    err = await refused(system, check_a)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "2 watchers" in err.details()
    calls.append(await watch(system, check_b))  # other checks are not affected
    for call in calls:
        call.cancel()


@pytest.mark.system_config(results_overrides={"watchers_per_check": 1})
async def test_a_watcher_that_stops_reading_is_dropped(system):
    if system.live_url != "memory://":
        # Redis delivers asynchronously, so when the backlog passes the bound is not observable from
        # here; the bound is in the fan-out both live states share (services/storage/livestate.py).
        pytest.skip("memory live state: publishing delivers at once")
    check_id, _ = await open_check(system, 1)
    # A client with a small receive window (no BDP growth): it buffers little of what it does not read.
    channel = grpc.aio.insecure_channel(system.results_addr, options=[("grpc.http2.bdp_probe", 0),
                                                                       ("grpc.http2.lookahead_bytes", 16384)])
    stalled = await watch(system, check_id, results_pb2_grpc.ResultsServiceStub(channel))  # then reads no more
    published = limits.MAX_TASKS_PER_CHECK * 3
    filler = "x" * 4000
    for _ in range(published):
        event = results_pb2.WatchCheckResponse(event="task", check_status="in_progress", task=checks_pb2.CheckTask(
            task_id=str(uuid.uuid4()), check_id=check_id, status="completed", reason=filler))
        await system.results.live.publish(check_channel(check_id), event.SerializeToString())
    # Reading it now: what was already in flight, then RESOURCE_EXHAUSTED, far from every event.
    received = 0
    with pytest.raises(grpc.aio.AioRpcError) as err:
        while await stalled.read() != grpc.aio.EOF:
            received += 1
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "watch again" in err.value.details()
    assert received < published - 500, received
    await channel.close()

    async def slot_freed():
        try:
            (await watch(system, check_id)).cancel()
            return True
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            return False
    await assert_eventually(slot_freed, timeout=10, message="the dropped watcher's slot is free")


async def test_a_reader_gets_every_event_of_the_largest_check(system):
    check_id, tasks = await open_check(system, limits.MAX_TASKS_PER_CHECK)
    call = await watch(system, check_id)
    seen: set[str] = set()
    done = asyncio.Event()

    async def read():
        while (event := await call.read()) != grpc.aio.EOF:
            if event.event == "task" and event.task.status == "completed":
                seen.add(event.task.task_id)
            if event.event == "done":
                done.set()
                return
    reader = asyncio.create_task(read())
    await record(system, check_id, tasks, "y" * 500)  # the done event (whole check) stays under 4 MiB
    await asyncio.wait_for(done.wait(), 60)
    await reader
    assert seen == {t.task_id for t in tasks}
