"""Ingestion isolates every item (issue 12): one bad result never blocks, fails or loses the others.

The agent makes results storable (agent/sanitize.py); the results service judges each result
again (services/results/ingest.py) and quarantines or dead-letters what it cannot store; the
store falls back to one savepoint per result when the database refuses a batch; the scheduler's
forwarder retries transient errors with backoff and isolates a batch's permanent error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import json_format, timestamp_pb2

from hostcheck.agent.sanitize import TRUNCATED_MARK, make_storable
from hostcheck.core.storable import MAX_ERROR_CHARS, MAX_RESULT_JSON_BYTES, escape, json_size
from hostcheck.services.results.ingest import Rejected, judge
from hostcheck.services.results.store import (
    QUARANTINED,
    AgentSnapshot,
    IncomingResult,
    PlannedTask,
    ResultsStore,
)
from hostcheck.services.scheduler.forwarder import PERMANENT_TRIES, ResultForwarder
from hostcheck.services.scheduler.sessions import AgentSession
from hostcheck.services.storage import db
from hostcheck.services.storage.livestate import MemoryLiveState
from hostcheck.v1 import agents_pb2, http_pb2, results_pb2, results_pb2_grpc, scheduler_pb2
from tests.conftest import fresh_postgres_db
from tests.ingestion import RawAgent, good_result, now_ts, stored_results

# ---- the agent's sanitiser -----------------------------------------------------------------------


def test_sanitiser_escapes_nul_everywhere_and_keeps_the_rest():
    r = scheduler_pb2.TaskResult(task_id="t", error="bad \x00 banner", error_code="x\x00")
    r.data.http.body = "<html>\x00\x01é</html>"
    r.data.http.headers["x-nul\x00"] = "v\x00"
    r.data.http.headers["plain"] = "ok"
    r.data.http.tls.certificate.sans.extend(["a\x00.example", "b.example"])
    make_storable(r)
    assert r.error == "bad \\x00 banner" and r.error_code == "x\\x00"
    assert r.data.http.body == "<html>\\x00\x01é</html>"
    assert dict(r.data.http.headers) == {"x-nul\\x00": "v\\x00", "plain": "ok"}
    assert list(r.data.http.tls.certificate.sans) == ["a\\x00.example", "b.example"]


def test_escape_turns_bytes_that_are_not_utf8_into_text():
    raw = b"ok \xff\xfe \x00 end"
    assert escape(raw.decode("utf-8", "surrogateescape")) == "ok \\xff\\xfe \\x00 end"
    assert escape("plain") == "plain"


def test_sanitiser_caps_data_and_error_to_the_limits():
    r = scheduler_pb2.TaskResult(task_id="t", error="e" * (MAX_ERROR_CHARS * 2))
    r.data.http.body = "\ufffd" * 10_240  # a binary body decoded with replacements: 3 bytes a character
    r.data.http.reason = "OK"
    make_storable(r)
    assert len(r.error) == MAX_ERROR_CHARS and r.error.endswith(TRUNCATED_MARK)
    size = json_size(json_format.MessageToDict(r.data, preserving_proto_field_name=True))
    assert MAX_RESULT_JSON_BYTES * 0.9 < size <= MAX_RESULT_JSON_BYTES  # cut to fit, not emptied
    assert r.data.http.body.endswith(TRUNCATED_MARK) and r.data.http.reason == "OK"


def test_sanitiser_leaves_out_data_that_cannot_fit():
    r = scheduler_pb2.TaskResult(task_id="t", success=True)
    for i in range(4000):
        r.data.http.headers[f"h{i}"] = "1"
    make_storable(r)
    assert r.data.WhichOneof("result") == "http" and not r.data.http.headers
    assert "left out" in r.error and r.success


async def test_the_runner_sends_storable_results_whatever_the_prober_reports():
    """A prober quoting a banner that is not UTF-8 (surrogateescape) or holds NUL: the runner escapes
    it; protobuf would refuse the text, and the result would never leave the agent."""
    from hostcheck.agent.probers import ProbeError, ProbeResult
    from hostcheck.agent.runner import run_task
    from hostcheck.core.targets import TargetGuard
    from hostcheck.v1 import tcp_pb2

    async def banner(request):
        raise ProbeError("unexpected", "server said " + b"\xff\x00hi".decode("utf-8", "surrogateescape"),
                         tcp_pb2.TcpResult(address="127.0.0.1\x00"))

    async def huge(request):
        return ProbeResult(True, tcp_pb2.TcpResult(address="a" * 100_000))

    task = scheduler_pb2.Task(task_id="t1", check_id="c1", check_type="tcp", target="127.0.0.1:9", timeout_ms=1000)
    guard = TargetGuard.from_cidrs(["127.0.0.0/8"])
    failed = await run_task(task, guard, {"tcp": banner})
    assert (failed.error_code, failed.error) == ("unexpected", "server said \\xff\\x00hi")
    assert failed.data.tcp.address == "127.0.0.1\\x00"
    big = await run_task(task, guard, {"tcp": huge})
    assert big.success and big.data.tcp.address.endswith(TRUNCATED_MARK)
    assert json_size(json_format.MessageToDict(big.data, preserving_proto_field_name=True)) <= MAX_RESULT_JSON_BYTES


# ---- the results service's verdict on one item ---------------------------------------------------

TASK = str(uuid.uuid4())
AGENT = str(uuid.uuid4())


def item(**fields) -> results_pb2.AgentResult:
    agent_id = fields.pop("agent_id", AGENT)
    fields.setdefault("task_id", TASK)
    fields.setdefault("check_type", "tcp")
    fields.setdefault("started_at", now_ts())
    return results_pb2.AgentResult(agent_id=agent_id, result=scheduler_pb2.TaskResult(**fields))


def ts(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def http_data(**fields):
    from hostcheck.v1 import checks_pb2

    return checks_pb2.ResultData(http=http_pb2.HttpResult(**fields))


JUDGE_CASES = [
    # (item, quarantine kind, words of the error)
    (item(error="refused\x00"), "text", "error holds a NUL"),
    (item(error_code="x" * 65), "size", "error_code is 65 characters"),
    (item(data=http_data(body="a\x00b")), "text", "data.http.body holds a NUL"),
    (item(data=http_data(headers={"k\x00": "v"})), "text", "data.http.headers (a key)"),
    (item(data=http_data(body="x" * (MAX_RESULT_JSON_BYTES + 1))), "size", "bytes as JSON"),
    (item(started_at=ts(2**40)), "started_at", "not a valid time"),
    (item(started_at=ts(5, -1)), "started_at", "not a valid time"),
    (item(started_at=ts(86_400)), "started_at", "is not between 2000-01-01"),
    (item(started_at=ts(int((datetime.now(UTC) + timedelta(days=3)).timestamp()))), "started_at", "not between"),
    (item(duration_ms=float("nan")), "duration_ms", "nan"),
    (item(duration_ms=-1.0), "duration_ms", "-1.0"),
    (item(duration_ms=1e12), "duration_ms", "1000000000000.0 is not within 0-86400000"),
]


@pytest.mark.parametrize(("bad", "kind", "words"), JUDGE_CASES, ids=[c[1] + str(i) for i, c in enumerate(JUDGE_CASES)])
def test_judge_quarantines_what_cannot_be_stored(bad, kind, words):
    verdict = judge(bad, 0, datetime.now(UTC))
    assert isinstance(verdict, IncomingResult)
    assert verdict.quarantine == kind and verdict.error_code == QUARANTINED and not verdict.success
    assert words in verdict.error and verdict.data == {}
    assert "\x00" not in verdict.error


@pytest.mark.parametrize(("bad", "kind"), [
    (item(task_id="not-a-uuid"), "task_id"), (item(task_id="x" * 100_000), "task_id"),
    (item(agent_id="agent"), "agent_id")])
def test_judge_rejects_what_is_tied_to_no_task(bad, kind):
    verdict = judge(bad, 3, datetime.now(UTC))
    assert isinstance(verdict, Rejected) and verdict.kind == kind and "results[3]" in verdict.message


def test_judge_takes_a_good_result_as_sent():
    # A page's script may well spell the escape out: the text \u0000 is not a NUL.
    body = 'ok é; s = "\\u0000", t = "\\\\u0000"'
    good = item(success=True, duration_ms=2.5, data=http_data(body=body, status_code=200))
    verdict = judge(good, 0, datetime.now(UTC))
    assert isinstance(verdict, IncomingResult) and not verdict.quarantine, verdict.error
    assert verdict.success and verdict.data == {"http": {"body": body, "status_code": 200}}
    assert verdict.started_at is not None and verdict.duration_ms == 2.5


# ---- the store: a batch the database refuses is stored item by item -------------------------------

@pytest.fixture
async def pg_store():
    with fresh_postgres_db() as url:
        db.migrate(url)
        engine = db.create_engine(url)
        yield ResultsStore(db.sessionmaker(engine))
        await engine.dispose()


async def test_store_isolates_a_result_the_database_refuses(pg_store, caplog):
    agent = uuid.uuid4()
    tasks = [PlannedTask(task_id=uuid.uuid4(), agent_id=agent, check_type="tcp",
                         deadline=datetime.now(UTC) + timedelta(minutes=1), agent=AgentSnapshot(name="a"))
             for _ in range(4)]
    check_id = uuid.uuid4()
    await pg_store.open_check(check_id=check_id, target="example.com", check_types=["tcp"], request={},
                              tasks=tasks, deadline=datetime.now(UTC) + timedelta(minutes=1), client_ip="")

    def result(task: PlannedTask, data: dict) -> IncomingResult:
        return IncomingResult(agent_id=agent, task_id=task.task_id, success=True, data=data, error="",
                              error_code="", duration_ms=1.0, started_at=datetime.now(UTC), check_type="tcp")
    # Straight to the store, past the service's checks: Postgres JSONB refuses \u0000.
    batch = [result(tasks[0], {"tcp": {"address": "127.0.0.1"}}), result(tasks[1], {"tcp": {"address": "a\x00b"}}),
             result(tasks[2], {"http": {"body": "other type"}}), result(tasks[3], {})]
    with caplog.at_level(logging.WARNING):
        changes = await pg_store.record_results(batch)
    assert any("storing each on its own" in r.getMessage() for r in caplog.records)
    assert sorted(changes.stored) == sorted([str(tasks[0].task_id), str(tasks[3].task_id)])
    assert sorted(changes.quarantined) == sorted([str(tasks[1].task_id), str(tasks[2].task_id)])
    assert sorted(changes.quarantine_kinds) == ["data_type", "storage"]
    assert check_id in changes.finished_checks
    row = await pg_store.get_check(check_id)
    by_id = {t.id: t for t in row.tasks}
    refused = by_id[tasks[1].task_id]
    assert (refused.status, refused.reason, refused.result.error_code) == ("failed", QUARANTINED, QUARANTINED)
    assert "the database refused it" in refused.result.error and refused.result.data == {}
    assert "a http result for a tcp task" in by_id[tasks[2].task_id].result.error
    assert by_id[tasks[0].task_id].result.data == {"tcp": {"address": "127.0.0.1"}}
    # Idempotent: the same batch again stores nothing new and answers every item stored.
    again = await pg_store.record_results(batch)
    assert sorted(again.stored) == sorted(str(t.task_id) for t in tasks) and not again.quarantined


# ---- through the whole pipeline --------------------------------------------------------------------

@contextlib.asynccontextmanager
async def nul_page():
    """An HTTP server on loopback whose page holds NUL and bytes that are not UTF-8."""
    body = b"<html>before\x00after \xff\xfe end</html>"

    async def handle(reader, writer):
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def test_a_page_with_nul_is_stored_through_the_pipeline(system, tmp_path):
    await system.start_agent(tmp_path, "a1")
    async with nul_page() as port:
        created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
            target=f"127.0.0.1:{port}", checks=["http"], http=http_pb2.HttpOptions(port=port)))
        async for event in system.checks.WatchCheck(results_pb2.WatchCheckRequest(check_id=created.check_id),
                                                    timeout=30):
            if event.event == "done":
                break
    check = (await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=created.check_id))).check
    (task,) = check.tasks
    assert task.status == "completed", task
    assert task.result.success and task.result.error_code != QUARANTINED
    assert task.result.data.http.body == "<html>before\\x00after \ufffd\ufffd end</html>"


async def test_a_poisoned_batch_stores_the_good_and_quarantines_the_bad(system):
    async with RawAgent(system, "raw") as raw:
        good, nul, early, other_type, good2 = [await raw.task_for() for _ in range(5)]
        poisoned_nul = good_result(nul)
        poisoned_nul.data.tcp.address = "127.0.0.1\x00"
        poisoned_early = good_result(early)
        poisoned_early.started_at.CopyFrom(ts(2**40))
        poisoned_type = good_result(other_type)
        poisoned_type.data.http.body = "not a tcp result"
        poisoned_type.check_type = "tcp"
        not_uuid = scheduler_pb2.TaskResult(task_id="not-a-uuid", success=True)
        unknown = scheduler_pb2.TaskResult(task_id=str(uuid.uuid4()), success=True)
        batch = [good_result(good), poisoned_nul, not_uuid, poisoned_early, unknown, poisoned_type]
        await raw.send(batch)
        sent = {r.task_id for r in batch}
        await raw.wait(lambda: sent <= raw.acked, what="every item acknowledged")

        stored = stored_results(system, [good.task_id, nul.task_id, early.task_id, other_type.task_id])
        assert stored[good.task_id][:2] == (True, "")
        for task, words in ((nul, "data.tcp.address holds a NUL"), (early, "started_at"),
                            (other_type, "a http result for a tcp task")):
            success, code, error, status = stored[task.task_id]
            assert (success, code, status) == (False, QUARANTINED, "failed"), stored[task.task_id]
            assert words in error

        # The forwarder keeps flowing: a later result is stored and acknowledged.
        await raw.send([good_result(good2)])
        await raw.wait(lambda: good2.task_id in raw.acked, what="the later result acknowledged")
        assert stored_results(system, [good2.task_id])[good2.task_id][:2] == (True, "")
    assert system.scheduler.forwarder.dropped == 0


async def test_record_results_answers_for_every_item(system):
    """Straight to the results service: one call, items of two agents, each in exactly one list."""
    async with RawAgent(system, "a") as a, RawAgent(system, "b") as b:
        ta, tb, tb2 = await a.task_for(), await b.task_for(), await b.task_for()
        bad = good_result(tb)
        bad.error = "x\x00"
        stolen = good_result(tb2)  # b's task, sent as a's: not a's to report
        reply = await system.ingest.RecordResults(results_pb2.RecordResultsRequest(results=[
            results_pb2.AgentResult(agent_id=a.agent_id, result=good_result(ta)),
            results_pb2.AgentResult(agent_id=b.agent_id, result=bad),
            results_pb2.AgentResult(agent_id=a.agent_id, result=stolen),
            results_pb2.AgentResult(agent_id="nope", result=good_result(ta)),
            results_pb2.AgentResult(agent_id=a.agent_id, result=scheduler_pb2.TaskResult(task_id="zz")),
        ]), timeout=10)
    assert list(reply.stored_task_ids) == [ta.task_id]
    assert list(reply.quarantined_task_ids) == [tb.task_id]
    assert list(reply.unknown_task_ids) == [tb2.task_id]
    assert list(reply.rejected_task_ids) == [ta.task_id, "zz"]


# ---- the forwarder against a results service that fails --------------------------------------------

class FlakyResults(results_pb2_grpc.ResultsIngestServiceServicer):
    """A results service on a real port: UNAVAILABLE for the first `outages` calls, then INTERNAL
    for any batch holding the task id `poison`, else every result stored."""

    def __init__(self, *, outages: int = 0, poison: str = "") -> None:
        self.outages = outages
        self.poison = poison
        self.calls: list[int] = []  # batch sizes, in order
        self.stored: set[str] = set()

    async def RecordResults(self, request, context):
        self.calls.append(len(request.results))
        if self.outages:
            self.outages -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "down for a moment")
        ids = [r.result.task_id for r in request.results]
        if self.poison in ids:
            await context.abort(grpc.StatusCode.INTERNAL, "internal error")
        self.stored.update(ids)
        return results_pb2.RecordResultsResponse(stored_task_ids=ids)


@contextlib.asynccontextmanager
async def forwarding(servicer: FlakyResults):
    server = grpc.aio.server()
    results_pb2_grpc.add_ResultsIngestServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    forwarder = ResultForwarder(results_pb2_grpc.ResultsIngestServiceStub(channel), MemoryLiveState(),
                                max_in_flight=1)
    runner = asyncio.create_task(forwarder.run())
    try:
        yield forwarder
    finally:
        runner.cancel()
        with contextlib.suppress(BaseException):
            await runner
        await channel.close()
        await server.stop(0)


async def acks(session: AgentSession, expected: set[str], timeout: float = 10.0) -> set[str]:
    got: set[str] = set()
    async with asyncio.timeout(timeout):
        while not expected <= got:
            message = await session.outbox.get()
            got.update(message.ack.task_ids)
    return got


def results(n: int) -> list[scheduler_pb2.TaskResult]:
    return [scheduler_pb2.TaskResult(task_id=str(uuid.uuid4()), success=True) for _ in range(n)]


async def test_forwarder_waits_out_an_outage_and_loses_nothing():
    service = FlakyResults(outages=3)
    session = AgentSession(agent_id=str(uuid.uuid4()), agent=agents_pb2.Agent())
    async with forwarding(service) as forwarder:
        batch = results(20)
        forwarder.submit(session.agent_id, batch, session)
        assert await acks(session, {r.task_id for r in batch}) == {r.task_id for r in batch}
    assert service.stored == {r.task_id for r in batch}
    assert service.calls[:4] == [20, 20, 20, 20]  # the same batch, retried: an outage is not the batch's fault
    assert forwarder.dropped == 0


async def test_forwarder_isolates_a_result_the_service_keeps_refusing(caplog):
    batch = results(16)
    poison = batch[5].task_id
    service = FlakyResults(poison=poison)
    session = AgentSession(agent_id=str(uuid.uuid4()), agent=agents_pb2.Agent())
    async with forwarding(service) as forwarder:
        forwarder.submit(session.agent_id, batch, session)
        got = await acks(session, {r.task_id for r in batch})
        # And it keeps flowing.
        later = results(3)
        forwarder.submit(session.agent_id, later, session)
        await acks(session, {r.task_id for r in later})
    assert got == {r.task_id for r in batch}  # the poison too: acknowledged, so the agent stops resending it
    assert service.stored == {r.task_id for r in batch + later} - {poison}
    assert forwarder.dropped == 1
    # Halved down to the poison alone (16 -> 8 -> 4 -> 2 -> 1), which was tried PERMANENT_TRIES times.
    assert service.calls.count(1) >= PERMANENT_TRIES and len(service.calls) < 30
    assert any("acknowledged and dropped" in r.getMessage() for r in caplog.records)


async def test_text_that_is_not_utf8_ends_only_its_senders_stream(pg_system):
    """Protobuf refuses a string that is not UTF-8 when parsing: the scheduler cannot decode such a
    message, so it ends that agent's stream with a client error; every other agent's results flow."""
    async with RawAgent(pg_system, "ok") as ok:
        reg = await pg_system.register("bad")
        async with grpc.aio.insecure_channel(pg_system.scheduler_addr) as channel:
            call = channel.stream_stream(
                "/hostcheck.v1.AgentStreamService/Connect", request_serializer=lambda raw: raw,
                response_deserializer=scheduler_pb2.ConnectResponse.FromString,
            )(metadata=[("x-agent-id", reg.agent_id), ("authorization", f"Bearer {reg.api_token}")])
            await call.write(scheduler_pb2.ConnectRequest(hello=scheduler_pb2.AgentHello(
                version="raw", capabilities=["tcp"])).SerializeToString())
            assert (await call.read()).WhichOneof("message") == "welcome"
            result = scheduler_pb2.TaskResult(task_id=str(uuid.uuid4()), error="AAAA")
            await call.write(scheduler_pb2.ConnectRequest(results=scheduler_pb2.ResultBatch(results=[result]))
                             .SerializeToString().replace(b"AAAA", b"\xff\xfe\xfd\xfc"))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async with asyncio.timeout(10):
                    while await call.read() is not grpc.aio.EOF:
                        pass
            assert err.value.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), err.value
        task = await ok.task_for()
        await ok.send([good_result(task)])
        await ok.wait(lambda: task.task_id in ok.acked, what="the other agent's result acknowledged")
