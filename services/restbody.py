"""Unknown fields in a REST body: refused with the field named, as grpcurl's are.

Envoy's JSON transcoder drops JSON keys its message lacks and has no option to refuse them
(its request_validation_options cover methods, query parameters and binding collisions only;
envoyproxy/envoy#46623), so `{"agents": {"country": ["JP"]}}` would silently run on every
agent. A Lua filter in envoy.yaml lists the key paths of a REST POST's JSON body in the
`x-hostcheck-json-keys` header (base64 of newline-separated paths such as `agents.country`; a
key of an object inside an array adds no index); the transcoder passes the header on as gRPC
metadata, and the service checks each path against its request message here. Only key paths
travel, never values, so the header stays small whatever the body's size (the filter lists at
most 4 KiB of paths: a body with more distinct keys than that is checked as far as they go).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from hostcheck.core.errors import InvalidArgument

KEYS_HEADER = "x-hostcheck-json-keys"
# Messages whose JSON is free-form: any key below them is theirs.
_OPEN_MESSAGES = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.Any",
                            "google.protobuf.ListValue"})


def _field(message: Descriptor, key: str) -> FieldDescriptor | None:
    """The field a JSON key names: its proto name or its JSON (lowerCamelCase) name, as proto3 JSON accepts."""
    field = message.fields_by_name.get(key)
    if field is None:
        field = next((f for f in message.fields if f.json_name == key), None)
    return field


def unknown_path(message_type: type[Message], paths: Iterable[str]) -> str | None:
    """The first of these JSON key paths that `message_type` lacks, named with proto field names up
    to the unknown key (e.g. "agents.country"); None when every path is a field (or below a map,
    a Struct or a scalar, whose keys are values or type errors the transcoder reports)."""
    for path in paths:
        message = message_type.DESCRIPTOR
        named: list[str] = []
        for key in path.split("."):
            field = _field(message, key)
            if field is None:
                return ".".join([*named, key])
            named.append(field.name)
            sub = field.message_type
            if sub is None or sub.GetOptions().map_entry or sub.full_name in _OPEN_MESSAGES:
                break
            message = sub
    return None


def key_paths(metadata: Iterable[tuple[str, str | bytes]] | None) -> list[str]:
    """The key paths the gateway's Lua filter listed for this request (none: not a REST body)."""
    raw = next((v for k, v in metadata or () if k == KEYS_HEADER), None)
    if not raw:
        return []
    try:
        return [p for p in base64.b64decode(raw, validate=True).decode("utf-8").split("\n") if p]
    except (binascii.Error, ValueError):
        return []


def refuse_unknown_fields(message_type: type[Message], metadata: Iterable[tuple[str, str | bytes]] | None) -> None:
    """Raises InvalidArgument naming the first unknown field of a REST body, if it has one."""
    field = unknown_path(message_type, key_paths(metadata))
    if field is not None:
        name = field.rsplit(".", 1)[-1]
        raise InvalidArgument(field=field, reason=f"unknown field {name!r}: "
                                                  f"{field.rpartition('.')[0] or message_type.DESCRIPTOR.name} "
                                                  f"has no such field")
