"""The agent's per-task shortcuts (issue 17) give what the long way gave: the sanitiser's skip of the
string walk when the data's wire form has no zero byte, the runner's parsed-target cache, its clock."""

from __future__ import annotations

import time

import pytest

from hostcheck.agent import runner, sanitize
from hostcheck.core.targets import TargetError, parse_target
from hostcheck.v1 import scheduler_pb2


def _walked(result: scheduler_pb2.TaskResult) -> scheduler_pb2.TaskResult:
    """`result` made storable the long way: every string escaped, then fitted."""
    out = scheduler_pb2.TaskResult()
    out.CopyFrom(result)
    out.error = sanitize.cap(out.error, sanitize.MAX_ERROR_CHARS)
    out.error_code = sanitize.cap(out.error_code, sanitize.MAX_ERROR_CODE_CHARS)
    sanitize._escape_strings(out.data)
    if out.data.ByteSize() * 12 > sanitize.MAX_RESULT_JSON_BYTES:
        sanitize._fit(out, sanitize.MAX_RESULT_JSON_BYTES)
    return out


def _dns(query_ms: float, value: str, ttl: int = 300) -> scheduler_pb2.TaskResult:
    result = scheduler_pb2.TaskResult(task_id="t", check_type="dns", success=True)
    data = result.data.dns
    data.query, data.record_type, data.rcode, data.query_ms = "www.t.test", "A", "NOERROR", query_ms
    data.answers.add(name="www.t.test", type="A", ttl=ttl, value=value)
    return result


def _http(key: str, body: str) -> scheduler_pb2.TaskResult:
    result = scheduler_pb2.TaskResult(task_id="t", check_type="http", success=True)
    result.data.http.headers[key] = "v"
    result.data.http.redirects.add(url="http://a.test/", status_code=301, duration_ms=12.5)  # 12.5: zero bytes
    result.data.http.body = body
    result.data.http.tls.certificate.sans.extend(["a.test", "b.test"])
    return result


@pytest.mark.parametrize("result", [
    _dns(0.851, "127.0.0.10"),  # no zero byte on the wire: the walk is skipped
    _dns(12.5, "127.0.0.10"),  # a zero byte in a number: walked, nothing to escape
    _dns(0.851, "a\x00b"),
    _dns(0.0, "\x00", ttl=0),
    _http("x-nul\x00", "ok"),
    _http("plain", "<html>\x00</html>"),
    _http("plain", "x" * 200_000),  # fitted to the size limit
], ids=["clean", "zero-in-number", "nul", "nul-only", "nul-in-map-key", "nul-in-body", "too-big"])
def test_make_storable_gives_what_the_walk_gives(result):
    expected = _walked(result)
    sanitize.make_storable(result)
    assert result == expected
    assert "\x00" not in str(result.data).replace("\\000", "")


def test_targets_are_parsed_once_and_bad_ones_still_refused():
    assert runner._target("www.t.test") == parse_target("www.t.test")
    assert runner._target("www.t.test") is runner._target("www.t.test")
    for _ in range(2):
        with pytest.raises(TargetError):
            runner._target("bad host")


def test_the_clock_gives_now_to_the_microsecond():
    before = time.time_ns() // 1000
    stamp = runner._now_ts()
    after = time.time_ns() // 1000
    assert before <= stamp.ToMicroseconds() <= after
    assert stamp.nanos % 1000 == 0


async def test_a_task_past_its_deadline_is_refused_and_one_before_it_runs():
    from google.protobuf.timestamp_pb2 import Timestamp

    from hostcheck.agent.client import Agent
    from hostcheck.agent.probers import ProbeResult
    from hostcheck.core.config import AgentConfig
    from hostcheck.v1 import tcp_pb2

    async def probe(request):
        return ProbeResult(True, tcp_pb2.TcpResult(address="127.0.0.1"))

    agent = Agent(AgentConfig(scheduler_addr="127.0.0.1:1"), probers={"tcp": probe})
    for task_id, offset_s, code in (("late", -1, "expired"), ("due", 5, "")):
        deadline = Timestamp()
        deadline.FromNanoseconds(time.time_ns() + offset_s * 1_000_000_000)
        task = scheduler_pb2.Task(task_id=task_id, check_type="tcp", target="127.0.0.1:80", timeout_ms=1000,
                                  deadline=deadline)
        await agent._run(task)
        assert agent.unacked[task_id].error_code == code
