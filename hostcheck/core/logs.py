"""Logging: text for people, JSON lines for production collectors."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, service, logger, msg, and trace_id/span_id inside a span."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        if self.service:
            doc["service"] = self.service
        from opentelemetry import trace  # imported by the first JSON line, not with this module (issue 17)

        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            doc["trace_id"] = trace.format_trace_id(span.trace_id)
            doc["span_id"] = trace.format_span_id(span.span_id)
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


def setup(level: str = "INFO", fmt: str = "text", *, name: str = "") -> None:
    if fmt not in ("text", "json"):
        raise SystemExit(f"HOSTCHECK_LOG_FORMAT={fmt!r}: use text or json")
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(name))
    else:
        prefix = f"{name} " if name else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    try:
        root.setLevel(level.upper())
    except ValueError:
        raise SystemExit(f"HOSTCHECK_LOG_LEVEL={level!r}: use DEBUG, INFO, WARNING or ERROR") from None
