"""Regular expressions from requests, in linear time: RE2 (google-re2), never Python's `re`.

Python's backtracking `re` takes exponential time on patterns like `(a+)+$` (one pattern froze
an agent's event loop for ~70 s). RE2 matches in time linear in the input and refuses what it
cannot do in linear time (backreferences, lookaround), so those are refused at the API with
the field named. The API compiles every `*_regexp` option with `compile_pattern`; the agent
compiles the same way before matching (and matches off its event loop).
"""

from __future__ import annotations

from typing import TypeAlias

import re2

from hostcheck.core.errors import InvalidArgument
from hostcheck.core.limits import MAX_REGEXP_CHARS, MAX_REGEXP_PROGRAM

# A compiled pattern (google-re2 ships no type hints): .search(text), .match(text), .pattern.
Pattern: TypeAlias = re2._Regexp


def _options() -> re2.Options:
    options = re2.Options()
    # A refused pattern is the client's error, reported to it; not a line in our logs.
    options.log_errors = False
    return options


def compile_pattern(field: str, pattern: str) -> Pattern:
    """`pattern` compiled by RE2; InvalidArgument naming `field` when it is too big, malformed or unsupported."""
    if len(pattern) > MAX_REGEXP_CHARS:
        raise InvalidArgument(field=field, reason=f"must be at most {MAX_REGEXP_CHARS} characters")
    try:
        compiled = re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InvalidArgument(field=field, reason=f"not a valid RE2 regular expression (no backreferences or "
                                                  f"lookaround): {reason[:200]}") from None
    if compiled.programsize > MAX_REGEXP_PROGRAM:
        raise InvalidArgument(field=field, reason=f"too complex: compiles to {compiled.programsize} instructions, "
                                                  f"at most {MAX_REGEXP_PROGRAM}")
    return compiled
