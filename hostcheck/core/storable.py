"""What makes a result storable: its text and its size, judged the same way by the agent and the results service.

The agent makes every result storable before sending it (agent/sanitize.py); the results
service checks again and quarantines what is not (services/results/ingest.py), because it
never trusts an agent. Postgres refuses a NUL character in text and in JSONB (`\\u0000`), and
one such value used to fail a whole batch of results.

Text that cannot be stored as it came is escaped, never dropped: a NUL becomes the four
characters `\\x00`, and a lone surrogate (the `surrogateescape` form of a byte that is not
UTF-8, or any other character UTF-8 cannot encode) becomes `\\xNN` or `\\uNNNN`. Protobuf
itself refuses strings that are not UTF-8, on both ends, so past parsing only NUL is left.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hostcheck.core.limits import MAX_RESULT_JSON_BYTES

__all__ = ["MAX_DURATION_MS", "MAX_ERROR_CHARS", "MAX_ERROR_CODE_CHARS", "MAX_RESULT_JSON_BYTES", "escape",
           "json_size", "unstorable"]

# A result's error text and error code (the results service's columns and its views).
MAX_ERROR_CHARS = 4096
MAX_ERROR_CODE_CHARS = 64
# The longest a probe may report it took: a day (no check's timeout comes near it).
MAX_DURATION_MS = 86_400_000.0

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape_one(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8, as surrogateescape keeps it
        return f"\\x{code - 0xDC00:02x}"
    return "\\x00" if code == 0 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` with NUL and unencodable characters escaped (unchanged, and fast, when there are none)."""
    if _UNSTORABLE.search(text) is None:
        return text
    return _UNSTORABLE.sub(_escape_one, text)


def unstorable(text: str) -> int:
    """The index of the first character of `text` that cannot be stored, or -1."""
    found = _UNSTORABLE.search(text)
    return -1 if found is None else found.start()


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON: how a result's data is measured against MAX_RESULT_JSON_BYTES."""
    return len(_JSON.encode(value).encode("utf-8", "surrogatepass"))
