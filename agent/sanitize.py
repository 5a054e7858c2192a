"""Makes a finished result storable before it goes up the stream (hostcheck.core.storable says what that is).

Applied by the runner to every result, whatever prober made it, so a target page with a NUL
in its body or a TXT record with odd bytes is stored like any other result instead of being
quarantined by the results service:

- every string of the result (error, error code, each string of its data, map keys included)
  has NUL and unencodable characters escaped;
- the error text and code are cut to their limits;
- the data is cut to fit MAX_RESULT_JSON_BYTES as JSON: the longest strings first, each
  ending with TRUNCATED_MARK; when that is not enough (thousands of small fields) the data is
  left empty and the error says why.

A typical result has no such text, and no zero byte in its protobuf form: then there is no walk.
"""

from __future__ import annotations

import math

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from hostcheck.core.storable import (
    MAX_ERROR_CHARS,
    MAX_ERROR_CODE_CHARS,
    MAX_RESULT_JSON_BYTES,
    escape,
    json_size,
)
from hostcheck.v1 import scheduler_pb2

TRUNCATED_MARK = "…[cut to fit the result size limit]"
_MARK_BYTES = len(TRUNCATED_MARK.encode())
# Below this many bytes in protobuf form, data cannot reach MAX_RESULT_JSON_BYTES as JSON (JSON
# of a field is at most ~12x its binary form: a field name and quotes around a 1-byte bool, or
# \\u00XX for a control character), so the exact JSON measure is skipped.
_SURELY_FITS = MAX_RESULT_JSON_BYTES // 12


def cap(text: str, limit: int) -> str:
    """`text` escaped and cut to `limit` characters (TRUNCATED_MARK included when cut)."""
    text = escape(text)
    if len(text) <= limit:
        return text
    return text[:max(0, limit - len(TRUNCATED_MARK))] + TRUNCATED_MARK


def make_storable(result: scheduler_pb2.TaskResult, *, max_data_bytes: int = MAX_RESULT_JSON_BYTES) -> None:
    """Escapes and caps `result` in place (see the module docstring)."""
    result.error = cap(result.error, MAX_ERROR_CHARS)
    result.error_code = cap(result.error_code, MAX_ERROR_CODE_CHARS)
    if not result.HasField("data") or result.data.WhichOneof("result") is None:
        return
    wire = result.data.SerializeToString()
    size = len(wire)
    # Protobuf holds only UTF-8 strings, so NUL is all there can be to escape, and a NUL in a string
    # is a zero byte on the wire: without one, the walk over every string (~20 us a result, a tenth
    # of a dns check's CPU) would change nothing. A zero byte may also be part of a number: then walk.
    if b"\x00" in wire:
        _escape_strings(result.data)
        size = result.data.ByteSize()
    if size * 12 <= max_data_bytes:
        return
    _fit(result, max_data_bytes)


def _strings(message: Message):
    """(container, key, value) of every string in `message`: setting container[key] replaces it.

    For a singular field the container is the message and the key the field's name (set with setattr).
    """
    for field, value in message.ListFields():
        is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
        if is_map:
            value_field = field.message_type.fields_by_name["value"]
            for key in list(value):
                if isinstance(key, str):
                    yield value, ("key", key), key
                if value_field.message_type is not None:
                    yield from _strings(value[key])
                elif value_field.type == FieldDescriptor.TYPE_STRING:
                    yield value, key, value[key]
        elif field.is_repeated:
            if field.message_type is not None:
                for item in value:
                    yield from _strings(item)
            elif field.type == FieldDescriptor.TYPE_STRING:
                for i, item in enumerate(value):
                    yield value, i, item
        elif field.message_type is not None:
            yield from _strings(value)
        elif field.type == FieldDescriptor.TYPE_STRING:
            yield message, field.name, value


def _set(container, key, value: str) -> None:
    if isinstance(container, Message):
        setattr(container, key, value)
    elif isinstance(key, tuple):  # a map key: move its value to the new key
        old = key[1]
        if value != old:
            item = container[old]
            del container[old]
            if isinstance(item, Message):
                container[value].CopyFrom(item)
            else:
                container[value] = item
    else:
        container[key] = value


def _escape_strings(message: Message) -> None:
    changes = []
    for container, key, value in _strings(message):
        escaped = escape(value)
        if escaped is not value:
            changes.append((container, key, escaped))
    # Innermost first: a map key moved before its value's strings were set would leave them behind.
    for container, key, value in reversed(changes):
        _set(container, key, value)


def _data_json_size(result: scheduler_pb2.TaskResult) -> int:
    return json_size(json_format.MessageToDict(result.data, preserving_proto_field_name=True))


def _fit(result: scheduler_pb2.TaskResult, limit: int) -> None:
    size = _data_json_size(result)
    if size <= limit:
        return
    # Longest first: a page body or a TXT record, not the dozens of short fields around it. The size
    # is tracked per cut and measured exactly only when it seems to fit (thousands of fields must not
    # cost thousands of measures); a few wrong guesses (text whose costly characters bunch) and it goes.
    slots = sorted(((c, k, v) for c, k, v in _strings(result.data) if not isinstance(k, tuple)),
                   key=lambda s: len(s[2]), reverse=True)
    measures = 0
    for container, key, value in slots:
        for _ in range(3):  # a second cut when the first guessed short (costly characters bunched at the end)
            cost = json_size(value)
            per_char = max((cost - 2) / max(len(value), 1), 1.0)
            keep = len(value) - math.ceil((size - limit) / per_char) - _MARK_BYTES
            value = value[:keep] + TRUNCATED_MARK if keep > 0 else ""
            _set(container, key, value)
            size -= cost - json_size(value)
            if size <= limit:
                size = _data_json_size(result)
                measures += 1
                if size <= limit:
                    return
            if measures >= 3 or not value:
                break
        if measures >= 3:
            break
    which = result.data.WhichOneof("result")
    assert which is not None
    result.data.ClearField(which)
    getattr(result.data, which).SetInParent()
    note = f"result data over {limit} bytes as JSON even with its text cut: left out"
    result.error = cap(f"{result.error}; {note}" if result.error else note, MAX_ERROR_CHARS)
