"""Each result of a RecordResults batch judged on its own, before anything is stored.

The results service never trusts an agent (a compromised or buggy one may send anything the
protocol can carry). An item is one of:

- fit: stored as sent;
- quarantined (IncomingResult.quarantined): tied to a task (its ids are UUIDs) but not storable as sent
  (NUL in any text, an out-of-range timestamp or duration, an oversized field, data of another
  check type than its task's). It is stored as a failed result of its task with error code
  QUARANTINED and the reason as its error, so the check completes and its owner sees why;
- rejected: not tied to any task (its task or agent id is not a UUID). Nothing can be stored;
  it is counted (hostcheck_results_dead_letters_total) and logged, and acknowledged.

Every verdict is acknowledged to the agent: no item can block or lose the others.
Text that is not UTF-8 never gets this far: protobuf refuses it when parsing.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from hostcheck.core.storable import (
    MAX_DURATION_MS,
    MAX_ERROR_CHARS,
    MAX_ERROR_CODE_CHARS,
    MAX_RESULT_JSON_BYTES,
    unstorable,
)
from hostcheck.services.results.store import IncomingResult
from hostcheck.v1 import results_pb2

# A started_at outside [EARLIEST, now + FUTURE_SLACK] is refused: no probe ran before 2000, and
# an agent's clock may run ahead a little, not by days.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
FUTURE_SLACK = timedelta(days=1)


@dataclass(frozen=True)
class Problem:
    """Why an item cannot be stored as sent: `kind` labels the metric, `message` names the field."""

    kind: str
    message: str


@dataclass(frozen=True)
class Rejected:
    """An item tied to no task."""

    task_id: str
    agent_id: str
    kind: str
    message: str


def judge(item: results_pb2.AgentResult, index: int, now: datetime) -> IncomingResult | Rejected:
    """The item as the store takes it: as sent, quarantined (`quarantine` set), or rejected."""
    r = item.result
    field = f"results[{index}]"
    agent_id = _uuid(item.agent_id)
    task_id = _uuid(r.task_id)
    if agent_id is None:
        return Rejected(r.task_id, item.agent_id, "agent_id", f"{field}.agent_id is not a UUID")
    if task_id is None:
        return Rejected(r.task_id, item.agent_id, "task_id", f"{field}.result.task_id is not a UUID")
    problem: Problem | None = None
    started_at = None
    if r.started_at.seconds or r.started_at.nanos:  # zero: not given
        started_at, problem = _started_at(r, now)
    duration_ms = r.duration_ms
    if not (math.isfinite(duration_ms) and 0.0 <= duration_ms <= MAX_DURATION_MS):
        problem = problem or Problem("duration_ms", f"duration_ms {duration_ms!r} is not within 0-{MAX_DURATION_MS:.0f}")
        duration_ms = 0.0
    problem = (problem or _text("error", r.error, MAX_ERROR_CHARS)
               or _text("error_code", r.error_code, MAX_ERROR_CODE_CHARS)
               or _text("check_type", r.check_type, 32))
    data: dict = {}
    encoded: str | None = None
    if problem is None:
        data = message_dict(r.data)
        encoded, problem = _data(data)
    result = IncomingResult(agent_id=agent_id, task_id=task_id, success=r.success, data=data, error=r.error,
                            error_code=r.error_code, duration_ms=duration_ms, started_at=started_at,
                            check_type=r.check_type, data_json=encoded, check_id=_uuid(r.check_id))
    return result if problem is None else result.quarantined(problem.kind, problem.message)


def message_dict(message: Message) -> dict:
    """`json_format.MessageToDict(message, preserving_proto_field_name=True)`, several times faster.

    A result's data is a oneof of typed messages whose fields are strings, bools, 32-bit ints,
    doubles, maps of strings, repeated values and nested messages: for these, MessageToDict's
    output is each set field (ListFields) by name, doubles that are not finite as "NaN",
    "Infinity", "-Infinity", and the rest as they are. A converter made once per message type
    does just that; a type with any other kind of field (64-bit ints, floats, enums, bytes,
    well-known types) is handed to MessageToDict itself. MessageToDict of every result was 16%
    of the results service's samples when ingesting (issue 17). tests/test_ingest_data.py checks
    both give the same on random messages of every result type.
    """
    convert = _CONVERTERS.get(message.DESCRIPTOR)
    if convert is None:
        convert = _converter(message.DESCRIPTOR)
    return convert(message)


_CONVERTERS: dict[Descriptor, Callable[[Any], dict]] = {}
_AS_IS = frozenset({FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BOOL, FieldDescriptor.TYPE_INT32,
                    FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_FIXED32,
                    FieldDescriptor.TYPE_SFIXED32})


def _double(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _as_is(value):
    return value


def _value_converter(field: FieldDescriptor) -> Callable[[Any], Any] | None:
    """How one value of `field` is shown (None: a kind of field left to MessageToDict)."""
    if field.type in _AS_IS:
        return _as_is
    if field.type == FieldDescriptor.TYPE_DOUBLE:
        return _double
    if field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.full_name.startswith("google.protobuf."):
        sub = field.message_type
        if _converter(sub) is _via_json_format:
            return None
        return lambda m: _CONVERTERS[sub](m)
    return None


def _map_of(convert: Callable[[Any], Any]) -> Callable[[Any], dict]:
    return lambda values: {k: convert(v) for k, v in values.items()}


def _list_of(convert: Callable[[Any], Any]) -> Callable[[Any], list]:
    return lambda values: [convert(v) for v in values]


def _via_json_format(message: Message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _converter(descriptor: Descriptor) -> Callable[[Any], dict]:
    found = _CONVERTERS.get(descriptor)
    if found is not None:
        return found
    _CONVERTERS[descriptor] = _via_json_format  # meanwhile (a message nested in itself)
    fields: dict[str, Callable[[Any], Any]] = {}
    for field in descriptor.fields:
        entry = field.message_type if field.type == FieldDescriptor.TYPE_MESSAGE else None
        if entry is not None and entry.GetOptions().map_entry:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            convert_value = _value_converter(value)
            if key.type != FieldDescriptor.TYPE_STRING or convert_value is None:
                return _via_json_format
            fields[field.name] = _map_of(convert_value)
            continue
        one = _value_converter(field)
        if one is None:
            return _via_json_format
        if field.is_repeated:
            fields[field.name] = list if one is _as_is else _list_of(one)
        else:
            fields[field.name] = one

    def convert(message) -> dict:
        return {f.name: fields[f.name](value) for f, value in message.ListFields()}

    _CONVERTERS[descriptor] = convert
    return convert


def _uuid(value: str) -> uuid.UUID | None:
    if len(value) > 64:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def _started_at(r, now: datetime) -> tuple[datetime | None, Problem | None]:
    ts = r.started_at
    try:
        started = ts.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None, Problem("started_at", f"started_at ({ts.seconds} s, {ts.nanos} ns) is not a valid time")
    if not EARLIEST <= started <= now + FUTURE_SLACK:
        return None, Problem("started_at", f"started_at {started.isoformat()} is not between "
                                           f"{EARLIEST.date()} and a day from now")
    return started, None


def _text(name: str, value: str, limit: int) -> Problem | None:
    at = unstorable(value)
    if at >= 0:
        return Problem("text", f"{name} holds a NUL or unencodable character at {at}")
    if len(value) > limit:
        return Problem("size", f"{name} is {len(value)} characters (at most {limit})")
    return None


_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
# A NUL in JSON text: the escape \u0000, not a literal backslash before "u0000" (`\\u0000`).
_NUL_IN_JSON = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def _data(data: dict) -> tuple[str | None, Problem | None]:
    """Checked on the JSON the data is stored as: one encoding, one search (a walk cost 3x more).
    Returns that JSON too (the store writes it as it is) when it is storable."""
    encoded = _JSON.encode(data)
    try:
        size = len(encoded.encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate (cannot come from protobuf; checked all the same)
        size = -1
    if size < 0 or ("\\u0000" in encoded and _NUL_IN_JSON.search(encoded)):  # the search only if it may match
        where = _unstorable_in(data, "data") or "data"
        return None, Problem("text", f"{where} holds a NUL or unencodable character")
    if size > MAX_RESULT_JSON_BYTES:
        return None, Problem("size", f"data is {size} bytes as JSON (at most {MAX_RESULT_JSON_BYTES})")
    return encoded, None


def _unstorable_in(value, path: str) -> str:
    """The path of the first string (or key) in `value` that cannot be stored, or ""."""
    if isinstance(value, str):
        return path if unstorable(value) >= 0 else ""
    if isinstance(value, dict):
        for key, item in value.items():
            if unstorable(key) >= 0:
                return f"{path} (a key)"
            found = _unstorable_in(item, f"{path}.{key[:40]}")
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _unstorable_in(item, f"{path}[{i}]")
            if found:
                return found
    return ""
