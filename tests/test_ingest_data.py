"""ingest.message_dict gives what json_format.MessageToDict gives (the stored JSON of a result's data).

Random messages of every result type (every field kind they have: strings, bools, 32-bit ints,
doubles with NaN and infinities, optional fields, repeated values and messages, maps), compared as
the JSON text the store writes, so the order of the keys counts too. No database.
"""

from __future__ import annotations

import json

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from hypothesis import given, settings
from hypothesis import strategies as st

from hostcheck.services.results.ingest import message_dict
from hostcheck.v1 import checks_pb2, scheduler_pb2

texts = st.text(max_size=12)
doubles = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1.0, 1e300]))
SCALARS = {
    FieldDescriptor.TYPE_STRING: texts,
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_INT32: st.integers(-2**31, 2**31 - 1),
    FieldDescriptor.TYPE_UINT32: st.integers(0, 2**32 - 1),
    FieldDescriptor.TYPE_DOUBLE: doubles,
}


@st.composite
def filled(draw, message, depth: int = 0):
    """`message` with a random subset of its fields set to random values (nested to depth 3)."""
    for field in message.DESCRIPTOR.fields:
        if field.containing_oneof is not None and message.WhichOneof(field.containing_oneof.name):
            continue
        if not draw(st.booleans()):
            continue
        value = getattr(message, field.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry:
            for k, v in draw(st.dictionaries(texts, texts, max_size=3)).items():
                value[k] = v
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3:
                continue
            if field.is_repeated:
                for _ in range(draw(st.integers(0, 2))):
                    draw(filled(value.add(), depth + 1))
            else:
                value.SetInParent()
                draw(filled(value, depth + 1))
        elif field.is_repeated:
            value.extend(draw(st.lists(SCALARS[field.type], max_size=3)))
        else:
            setattr(message, field.name, draw(SCALARS[field.type]))
    return message


def _json(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _expected(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.sampled_from([f.name for f in checks_pb2.ResultData.DESCRIPTOR.fields]), st.data())
def test_every_result_type_as_message_to_dict(kind, data):
    result = checks_pb2.ResultData()
    getattr(result, kind).SetInParent()
    data.draw(filled(getattr(result, kind)))
    assert _json(message_dict(result)) == _json(_expected(result))


def test_result_types_take_the_fast_path():
    from hostcheck.services.results import ingest

    message_dict(checks_pb2.ResultData())
    assert ingest._CONVERTERS[checks_pb2.ResultData.DESCRIPTOR] is not ingest._via_json_format


def test_empty_data_and_empty_message():
    assert message_dict(checks_pb2.ResultData()) == {} == _expected(checks_pb2.ResultData())
    result = checks_pb2.ResultData()
    result.tcp.SetInParent()
    assert message_dict(result) == {"tcp": {}} == _expected(result)


def test_other_kinds_of_fields_go_to_message_to_dict():
    """A type with a field kind the fast path does not handle (a Timestamp here) is converted by
    MessageToDict itself, and so is a message containing it."""
    task = scheduler_pb2.TaskResult(task_id="t", success=True, duration_ms=float("inf"))
    task.started_at.FromSeconds(1_700_000_000)
    task.data.dns.resolver = "r"
    task.trace_context["traceparent"] = "x"
    assert _json(message_dict(task)) == _json(_expected(task))
