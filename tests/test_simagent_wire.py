"""The simulated agents (bench/simagent.py): results serialised by hand are byte for byte what protobuf
writes, and over either transport an agent keeps its results until acked and sends them again after a
lost or drained stream, as the agent does."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from bench.simagent import Fleet, result_entry, results_request, synthetic_result
from hostcheck.v1 import scheduler_pb2


def _task(i: int, check_type: str = "tcp") -> scheduler_pb2.Task:
    return scheduler_pb2.Task(task_id=f"00000000-0000-4000-8000-{i:012d}", check_id="c" * 36, check_type=check_type,
                              target="127.0.0.1:9")


def test_results_request_is_what_protobuf_writes():
    for n in (1, 2, 40, 100):  # one result, a few, the ingestion scenario's 40, a full batch
        results = [synthetic_result(_task(i, ("tcp", "http", "dns")[i % 3])) for i in range(n)]
        results[0].error = "x" * 300  # a result longer than 127 bytes: a two-byte length
        expected = scheduler_pb2.ConnectRequest(results=scheduler_pb2.ResultBatch(results=results))
        wire = results_request([result_entry(r) for r in results])
        assert wire == expected.SerializeToString()
        assert scheduler_pb2.ConnectRequest.FromString(wire) == expected


def test_a_batch_over_16_kib_has_a_three_byte_length():
    results = [synthetic_result(_task(i)) for i in range(100)]
    for r in results:
        r.error = "e" * 200
    wire = results_request([result_entry(r) for r in results])
    assert len(wire) > 16_384
    assert wire == scheduler_pb2.ConnectRequest(results=scheduler_pb2.ResultBatch(results=results)).SerializeToString()


# ---- the protocol against a scheduler stand-in: acks, a stream lost or drained, resending ----------

class _Scheduler:
    """A bare AgentStreamService: each agent's first stream gets tasks and ends (or drains) before any
    ack; the next stream must say how many results it holds and send them again, and gets its acks."""

    def __init__(self, tasks_per_agent: int, end: str) -> None:
        self.tasks_per_agent = tasks_per_agent
        self.end = end
        self.sessions: dict[str, list[dict]] = {}

    async def connect(self, requests, context):
        agent_id = dict(context.invocation_metadata())["x-agent-id"]
        sessions = self.sessions.setdefault(agent_id, [])
        session: dict = {"unacked_results": None, "results": []}
        sessions.append(session)
        hello = await requests.__anext__()
        session["unacked_results"] = hello.hello.unacked_results
        yield scheduler_pb2.ConnectResponse(welcome=scheduler_pb2.Welcome(heartbeat_interval_s=30))
        if len(sessions) == 1:
            # Long task ids: the results are bigger than the 64 KiB flow-control windows and a
            # batch bigger than a 16 KiB frame.
            yield scheduler_pb2.ConnectResponse(tasks=scheduler_pb2.TaskBatch(tasks=[
                scheduler_pb2.Task(task_id=f"{agent_id}-{i}-" + "t" * 1000, check_id="c", check_type="tcp",
                                   target="127.0.0.1:9") for i in range(self.tasks_per_agent)]))
        async for request in requests:
            if request.WhichOneof("message") != "results":
                continue
            session["results"].extend(r.task_id for r in request.results.results)
            if len(session["results"]) < self.tasks_per_agent:
                continue
            if len(sessions) == 1:  # every result came: now lose them
                if self.end == "drain":
                    yield scheduler_pb2.ConnectResponse(drain=scheduler_pb2.Drain(reason="test"))
                    await asyncio.sleep(3600)  # the agent ends the stream
                await context.abort(grpc.StatusCode.UNAVAILABLE, "gone")
            yield scheduler_pb2.ConnectResponse(ack=scheduler_pb2.ResultAck(task_ids=session["results"]))


@pytest.mark.parametrize("transport", ["h2", "grpcio"])
@pytest.mark.parametrize("end", ["lost", "drain"])
async def test_results_are_kept_until_acked_and_sent_again_after_a_reconnect(transport, end):
    sched = _Scheduler(tasks_per_agent=250, end=end)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("hostcheck.v1.AgentStreamService", {
        "Connect": grpc.stream_stream_rpc_method_handler(
            sched.connect, request_deserializer=scheduler_pb2.ConnectRequest.FromString,
            response_serializer=scheduler_pb2.ConnectResponse.SerializeToString)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    fleet = Fleet(transport=transport)
    try:
        reply = await fleet.connect(f"127.0.0.1:{port}", [["a1", "t1"], ["a2", "t2"]], streams_per_channel=2,
                                    parallel=2)
        assert reply["connected"] == 2
        deadline = asyncio.get_running_loop().time() + 30
        while fleet.acked < 500:
            assert asyncio.get_running_loop().time() < deadline, fleet.stats()
            await asyncio.sleep(0.05)
        stats = fleet.stats()
        assert stats["acked"] == 500 and stats["unacked"] == 0 and stats["tasks_received"] == 500
        assert stats["disconnects"] == 2 and stats["reconnects"] == 2
        for agent_id in ("a1", "a2"):
            first, second = sched.sessions[agent_id]
            assert first["unacked_results"] == 0 and second["unacked_results"] == 250
            assert len(first["results"]) == 250 and sorted(second["results"]) == sorted(first["results"])
    finally:
        await fleet.handle({"cmd": "close"})
        await server.stop(None)
