"""A limit on every CreateCheck field (issue 12): over it, INVALID_ARGUMENT naming the field and
nothing stored; regular expressions through RE2; error details capped."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from hostcheck.core import limits
from hostcheck.core.errors import FieldViolation, InvalidArgument
from hostcheck.core.regex import compile_pattern
from hostcheck.services.rpcerrors import bad_request
from hostcheck.v1 import checks_pb2, http_pb2, scheduler_pb2
from tests.test_bad_input import count_rows, violations


def _over(field: FieldDescriptor, path: str):
    """A value one past `field`'s limit (None for a number or bool field)."""
    limit = limits.limit_of(path)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return {f"k{i}": "v" for i in range((limit.items or limits.MAX_ITEMS) + 1)}
    if field.is_repeated and field.message_type is None:
        item = 1 if field.type != FieldDescriptor.TYPE_STRING else "x"
        return [item] * ((limit.items or limits.MAX_ITEMS) + 1)
    if field.type == FieldDescriptor.TYPE_STRING:
        return "x" * ((limit.chars or limits.MAX_STRING) + 1)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return b"x" * ((limit.chars or limits.MAX_STRING) + 1)
    return None


def _every_bounded_field(descriptor, path: str = "", depth: int = 0):
    """(dotted path, field) of every string, bytes, list and map field, through singular messages."""
    for field in descriptor.fields:
        field_path = f"{path}.{field.name}" if path else field.name
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if field.message_type is not None and not is_map and not field.is_repeated:
            if depth < 3:
                yield from _every_bounded_field(field.message_type, field_path, depth + 1)
        elif field.message_type is None or is_map or field.is_repeated:
            if _over(field, field_path) is not None or field.is_repeated or is_map:
                yield field_path, field


FIELDS = list(_every_bounded_field(scheduler_pb2.CreateCheckRequest.DESCRIPTOR))


def _set(request, path: str, field: FieldDescriptor, value) -> None:
    *parents, _ = path.split(".")
    message = request
    for name in parents:
        message = getattr(message, name)
    if isinstance(value, dict):
        getattr(message, field.name).update(value)
    elif isinstance(value, list):
        getattr(message, field.name).extend(value)
    else:
        setattr(message, field.name, value)


@pytest.mark.parametrize(("path", "field"), FIELDS, ids=[p for p, _ in FIELDS])
def test_every_field_of_the_request_is_bounded(path, field):
    # Walks the request's schema, so options and selectors added later are covered too.
    value = _over(field, path)
    if value is None:  # a repeated message field: one entry too many
        request = scheduler_pb2.CreateCheckRequest()
        container = request
        for name in path.split(".")[:-1]:
            container = getattr(container, name)
        repeated = getattr(container, field.name)
        for _ in range((limits.limit_of(path).items or limits.MAX_ITEMS) + 1):
            repeated.add()
    else:
        request = scheduler_pb2.CreateCheckRequest()
        _set(request, path, field, value)
    found: list[FieldViolation] = []
    over = limits.check_sizes(request, found)
    assert path in over, (path, found)
    assert any(v.field.startswith(path) for v in found), found


STRING_FIELDS = [(p, f) for p, f in FIELDS if f.type == FieldDescriptor.TYPE_STRING
                 or (f.message_type is not None and f.message_type.GetOptions().map_entry)]


@pytest.mark.parametrize(("path", "field"), STRING_FIELDS, ids=[p for p, _ in STRING_FIELDS])
def test_every_text_field_refuses_nul(path, field):
    # Postgres refuses U+0000 in text and JSONB: a NUL anywhere in a request is INVALID_ARGUMENT
    # naming the field, never a 500 after a half-written check.
    request = scheduler_pb2.CreateCheckRequest()
    if field.message_type is not None:  # a map: the NUL in a value
        value_field = field.message_type.fields_by_name["value"]
        if value_field.message_type is not None:
            pytest.skip("map of messages")
        _set(request, path, field, {"name": "a\x00b"})
    elif field.is_repeated:
        _set(request, path, field, ["a\x00b"])
    else:
        _set(request, path, field, "a\x00b")
    found: list[FieldViolation] = []
    over = limits.check_sizes(request, found)
    assert path in over, (path, found)
    assert any(v.field.startswith(path) and "NUL" in v.reason for v in found), found


def test_limits_of_named_fields():
    assert limits.limit_of("http.path").chars == 2048
    assert limits.limit_of("http.headers").total_bytes == 8 * 1024
    assert limits.limit_of("http.header_regexp.regexp").chars == limits.MAX_REGEXP_CHARS
    assert limits.limit_of("something.new").chars is None  # the defaults apply


@pytest.mark.parametrize(("pattern", "reason"), [
    (r"(a)\1", "no backreferences"),
    (r"(?=a)b", "no backreferences or lookaround"),
    ("[", "missing ]"),
    ("a" * 1001, "at most 1000 characters"),
    (r"\pL{100}", "too complex"),
    (r"\pL{600}", "pattern too large"),
])
def test_regexps_that_re2_refuses(pattern, reason):
    with pytest.raises(InvalidArgument) as err:
        compile_pattern("http.body_regexp", pattern)
    assert err.value.violations[0].field == "http.body_regexp" and reason in err.value.violations[0].reason


def test_catastrophic_backtracking_patterns_compile_and_run_in_linear_time():
    compiled = compile_pattern("http.body_regexp", "(a+)+$")
    assert compiled.search("a" * 100_000 + "!") is None  # Python's re would run for ages


def test_error_details_are_capped():
    details = bad_request([FieldViolation(f"agents.agent_ids[{i}]", "is not a UUID" * 100) for i in range(1000)])
    assert len(details.field_violations) == limits.MAX_VIOLATIONS + 1
    assert "980 more" in details.field_violations[-1].description
    assert all(len(v.description) <= limits.MAX_VIOLATION_REASON_CHARS for v in details.field_violations)
    assert len(details.SerializeToString()) < 16 * 1024
    message = InvalidArgument([FieldViolation(f"f{i}", "bad") for i in range(1000)]).message
    assert message.endswith("and 995 more") and len(message) < 4096


def req(**kw) -> scheduler_pb2.CreateCheckRequest:
    kw.setdefault("target", "127.0.0.1:80")
    kw.setdefault("checks", ["tcp"])
    return scheduler_pb2.CreateCheckRequest(**kw)


def http(**options) -> scheduler_pb2.CreateCheckRequest:
    return req(checks=["http"], http=http_pb2.HttpOptions(**options))


API_CASES = [
    (req(target="a" * 256), "target", "at most 255"),
    (req(checks=["tcp"] * 1000), "checks", "at most 16 entries"),
    (req(checks=["tcp", "TCP"]), "checks[1]", "given twice"),
    (http(path="/" + "a" * 1_000_000), "http.path", "at most 2048"),
    (http(headers={f"h{i}": "v" for i in range(33)}), "http.headers", "at most 32 entries"),
    (http(headers={f"h{i}": "v" * 300 for i in range(30)}), "http.headers", "8192 bytes"),
    (http(body="x" * (64 * 1024 + 1)), "http.body", "at most"),
    (http(body_regexp=r"(a)\1"), "http.body_regexp", "RE2"),
    (http(body_regexp="a" * 5000), "http.body_regexp", "at most 1000"),
    (http(expected_status=[200] * 33), "http.expected_status", "at most 32"),
    (req(agents=checks_pb2.AgentSelector(agent_ids=["a"] * 1001)), "agents.agent_ids", "at most 1000"),
    (req(agents=checks_pb2.AgentSelector(agent_ids=["0b7e6a6e-9a49-4a1c-9f6a-0c6f2f1f7a11"] * 2)),
     "agents.agent_ids[1]", "given twice"),
    (req(agents=checks_pb2.AgentSelector(labels={f"k{i}": "v" for i in range(33)})), "agents.labels",
     "at most 32"),
    (req(agents=checks_pb2.AgentSelector(regions=["eu"] * 101)), "agents.regions", "at most 100"),
    (req(checks=["tcp", "http"], agents=checks_pb2.AgentSelector(limit=600)), "agents.limit", "1000 tasks"),
    (req(timeout_ms=10_000_000), "timeout_ms", "must be 100-"),
]


@pytest.mark.parametrize(("request_", "field", "reason"), API_CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(API_CASES)])
async def test_create_check_refuses_over_limit_fields(system, tmp_path, request_, field, reason):
    await system.start_agent(tmp_path, "a1")
    before = count_rows(system)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.create.CreateCheck(request_)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    found = violations(err.value)
    assert field in found and reason in found[field], found
    assert count_rows(system) == before


async def test_a_thousand_violations_are_capped_in_the_reply(system):
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await system.create.CreateCheck(req(agents=checks_pb2.AgentSelector(
            agent_ids=[f"bad-{i}" for i in range(1000)])))
    status = rpc_status.from_call(err.value)
    bad = error_details_pb2.BadRequest()
    status.details[0].Unpack(bad)
    assert len(bad.field_violations) == limits.MAX_VIOLATIONS + 1
    assert "and 995 more" in err.value.details()
