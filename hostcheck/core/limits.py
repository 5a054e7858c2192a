"""Limits on what a client may ask for, in one table: the API's validation, the gateway's Envoy
config (its buffer sizes are computed from these) and docs/security.md all read them here.

Every field of a CreateCheckRequest has a limit. FIELD_LIMITS names the fields that have their
own; any other string gets MAX_STRING characters and any other list or map MAX_ITEMS entries,
so an option added later (a new check type's, a new selector) is bounded without anyone having
to remember it. Give a new field its own row here when the defaults do not fit it.

Field paths are as in the request's JSON, without indices: `agents.locations.countries`
bounds `countries` inside every entry of `agents.locations`.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from hostcheck.core.errors import FieldViolation


@dataclass(frozen=True)
class Limit:
    """The most a field may hold; None: the default (MAX_STRING / MAX_ITEMS)."""

    # Characters of the string, or of each string item of a list, or of each key and value of a map.
    chars: int | None = None
    # Entries of a list or map.
    items: int | None = None
    # Bytes (UTF-8) of all keys and values of a map together.
    total_bytes: int | None = None


# Defaults for a field with no row below.
MAX_STRING = 255
MAX_ITEMS = 100

# Agents one check may run on (`agents.limit`, and `agents.agent_ids` entries).
MAX_AGENTS = 1000
# Tasks one check may create: agents x check types. It bounds the size of one check (GET,
# watch) and so the gateway's transcoder buffers (see MAX_CHECK_JSON_BYTES).
MAX_TASKS_PER_CHECK = 1000
# A regular expression in a request (any `*_regexp` option): characters, and the size of the
# program RE2 compiles it to (its instructions; `\w{1000}` is ~3,000). See core/regex.py.
MAX_REGEXP_CHARS = 1000
MAX_REGEXP_PROGRAM = 20_000
# The JSON form of one stored result's data (ResultData): what the agent and the results service
# cap a result to (bodies, banners and TXT records truncated to fit).
MAX_RESULT_JSON_BYTES = 16 * 1024
# Everything of one task but its result's data, in JSON: ids, agent snapshot, status, reason,
# error text (capped at 4 KiB by the results service), timestamps.
MAX_TASK_JSON_BYTES = 8 * 1024
# The largest check in JSON: every task with its result (a Check lists each result twice: in its
# task and in `results`), plus the request it was created with. ~42 MB: the transcoder's buffer
# for one response (docs/security.md has what that costs).
MAX_CHECK_JSON_BYTES = MAX_TASKS_PER_CHECK * (2 * MAX_RESULT_JSON_BYTES + MAX_TASK_JSON_BYTES) + 1024 * 1024
# The largest valid create request is ~150 KB of JSON (64 KiB body, 8 KiB headers, 1,000 agent
# ids); requests up to this size reach the API and get a 400 naming the field over the limit,
# larger ones are refused by the gateway before anything reads them (HTTP 413).
MAX_REQUEST_BYTES = 2 * 1024 * 1024
# Field violations reported in one error's details (google.rpc.BadRequest); the rest are
# counted in a last one. The whole error must fit in Envoy's header limits (trailers).
MAX_VIOLATIONS = 20
MAX_VIOLATION_FIELD_CHARS = 200
MAX_VIOLATION_REASON_CHARS = 500

_SELECTOR = Limit(items=MAX_ITEMS, chars=MAX_STRING)

FIELD_LIMITS: dict[str, Limit] = {
    "target": Limit(chars=255),
    "checks": Limit(items=16, chars=32),
    "http.method": Limit(chars=16),
    "http.path": Limit(chars=2048),
    "http.headers": Limit(items=32, chars=4096, total_bytes=8 * 1024),
    "http.body": Limit(chars=64 * 1024),
    "http.body_regexp": Limit(chars=MAX_REGEXP_CHARS),
    "http.expected_status": Limit(items=32),
    "tcp.send": Limit(chars=4096),
    "tcp.expect": Limit(chars=4096),
    "udp.payload": Limit(chars=1472),
    "udp.payload_hex": Limit(chars=2 * 1472),
    "agents.agent_ids": Limit(items=MAX_AGENTS, chars=36),
    "agents.labels": Limit(items=32, chars=MAX_STRING),
    "agents.regions": _SELECTOR,
    "agents.countries": _SELECTOR,
    "agents.cities": _SELECTOR,
}


def is_regexp(field_name: str) -> bool:
    """Whether a string option holds a regular expression: named `regexp` or `*_regexp`."""
    return field_name == "regexp" or field_name.endswith("_regexp")


def limit_of(path: str) -> Limit:
    """The limit of a field path (no indices); regular expressions default to MAX_REGEXP_CHARS."""
    found = FIELD_LIMITS.get(path)
    if found is not None:
        return found
    if is_regexp(path.rsplit(".", 1)[-1]):
        return Limit(chars=MAX_REGEXP_CHARS)
    return Limit()


def check_sizes(message: Message, violations: list[FieldViolation], *, prefix: str = "") -> set[str]:
    """Appends a violation for every field of `message` over its limit; returns their paths (no indices).

    Callers skip the field-by-field rules of a field over its limit (a 1,000-entry list
    gets one violation, not a thousand).
    """
    over: set[str] = set()
    _walk(message, prefix, prefix, violations, over)
    return over


def _walk(message: Message, path: str, name: str, violations: list[FieldViolation], over: set[str]) -> None:
    for field, value in message.ListFields():
        field_path = f"{path}.{field.name}" if path else field.name
        field_name = f"{name}.{field.name}" if name else field.name
        limit = limit_of(field_path)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            _check_map(field, value, field_path, field_name, limit, violations, over)
        elif field.is_repeated:
            items = limit.items or MAX_ITEMS
            if len(value) > items:
                violations.append(FieldViolation(field_name, f"at most {items} entries (got {len(value)})"))
                over.add(field_path)
                continue
            for i, item in enumerate(value):
                if field.message_type is not None:
                    _walk(item, field_path, f"{field_name}[{i}]", violations, over)
                elif _too_long(field, item, limit):
                    violations.append(FieldViolation(f"{field_name}[{i}]", _chars_reason(limit, item)))
                    over.add(field_path)
                elif _has_nul(item):
                    violations.append(FieldViolation(f"{field_name}[{i}]", NUL_REASON))
                    over.add(field_path)
        elif field.message_type is not None:
            _walk(value, field_path, field_name, violations, over)
        elif _too_long(field, value, limit):
            violations.append(FieldViolation(field_name, _chars_reason(limit, value)))
            over.add(field_path)
        elif _has_nul(value):
            violations.append(FieldViolation(field_name, NUL_REASON))
            over.add(field_path)


def _check_map(field: FieldDescriptor, value, path: str, name: str, limit: Limit,
               violations: list[FieldViolation], over: set[str]) -> None:
    items = limit.items or MAX_ITEMS
    if len(value) > items:
        violations.append(FieldViolation(name, f"at most {items} entries (got {len(value)})"))
        over.add(path)
        return
    chars = limit.chars or MAX_STRING
    total = 0
    value_is_message = field.message_type.fields_by_name["value"].message_type is not None
    for key in value:
        item = value[key]
        total += len(str(key).encode()) + (0 if value_is_message else len(str(item).encode()))
        if len(str(key)) > chars or (not value_is_message and isinstance(item, str | bytes) and len(item) > chars):
            violations.append(FieldViolation(f"{name}[{str(key)[:40]!r}]",
                                             f"keys and values must be at most {chars} characters"))
            over.add(path)
        elif _has_nul(key) or (not value_is_message and _has_nul(item)):
            violations.append(FieldViolation(f"{name}[{str(key)[:40]!r}]", NUL_REASON))
            over.add(path)
        elif value_is_message:
            _walk(item, path, f"{name}[{str(key)[:40]!r}]", violations, over)
    if limit.total_bytes and total > limit.total_bytes:
        violations.append(FieldViolation(name, f"at most {limit.total_bytes} bytes of names and values together "
                                               f"(got {total})"))
        over.add(path)


# Text a caller sends is stored (Postgres text and JSONB refuse U+0000) and echoed to agents and
# watchers: refused at the API rather than escaped, so what is stored is what was asked for.
NUL_REASON = "must not contain NUL (U+0000) characters"


def _has_nul(value) -> bool:
    return isinstance(value, str) and "\x00" in value


def _too_long(field: FieldDescriptor, value, limit: Limit) -> bool:
    if field.type not in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        return False
    return len(value) > (limit.chars or MAX_STRING)


def _chars_reason(limit: Limit, value) -> str:
    unit = "bytes" if isinstance(value, bytes) else "characters"
    return f"must be at most {limit.chars or MAX_STRING} {unit} (got {len(value)})"


def nul_violations(message: Message, prefix: str = "") -> list[FieldViolation]:
    """A violation for every string field, list item, map key or value of `message` holding U+0000."""
    found: list[FieldViolation] = []
    for field, value in message.ListFields():
        name = f"{prefix}.{field.name}" if prefix else field.name
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            for key in value:
                item = value[key]
                if _has_nul(key) or _has_nul(item):
                    found.append(FieldViolation(f"{name}[{str(key)[:40]!r}]", NUL_REASON))
                elif isinstance(item, Message):
                    found += nul_violations(item, f"{name}[{str(key)[:40]!r}]")
        elif field.is_repeated:
            for i, item in enumerate(value):
                if isinstance(item, Message):
                    found += nul_violations(item, f"{name}[{i}]")
                elif _has_nul(item):
                    found.append(FieldViolation(f"{name}[{i}]", NUL_REASON))
        elif isinstance(value, Message):
            found += nul_violations(value, name)
        elif _has_nul(value):
            found.append(FieldViolation(name, NUL_REASON))
    return found
