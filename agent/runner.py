"""Running one task: the prober under its timeout; every outcome becomes a TaskResult.

A task of a type this agent knows gets the field of its type set in the result's
`data`, whatever the outcome: the type's result message, empty when nothing was
measured. Every result is made storable (agent/sanitize.py: NUL and bytes that are
not UTF-8 escaped, sizes capped) before it leaves the runner.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from functools import lru_cache

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from hostcheck.agent.probers import PROBERS, ProbeError, Prober, ProbeRequest, ProbeResult, prepare
from hostcheck.agent.probers.base import ProbeSettings, Progress, no_progress
from hostcheck.agent.sanitize import cap, make_storable
from hostcheck.core import telemetry
from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.core.storable import MAX_ERROR_CHARS, MAX_ERROR_CODE_CHARS
from hostcheck.core.targets import Target, TargetError, TargetGuard, parse_target
from hostcheck.v1 import scheduler_pb2

log = logging.getLogger(__name__)

# A task's progress goes up the stream at most this often (the latest step wins).
PROGRESS_INTERVAL_S = 0.5
# A task's start goes up only once it has run this long (or with its first step, if sooner): a
# task that ends sooner never shows `running`, its result being its first news, so fast checks
# (tcp, most http) cost the pipeline no extra write. The start keeps the moment the task began.
START_GRACE_S = 0.1
PROGRESS_MESSAGE_LEN = 256


def _now_ts() -> Timestamp:
    """Now, to the microsecond as `timestamps.now_ts()` gives it, at a seventh of its cost (it goes
    through a datetime): every task takes two, its start and its result's."""
    us = time.time_ns() // 1000
    return Timestamp(seconds=us // 1_000_000, nanos=us % 1_000_000 * 1000)


@lru_cache(maxsize=1024)
def _target(raw: str) -> Target:
    """`parse_target` once per target text (a Target is immutable): a monitor's or a busy check's
    tasks repeat theirs, and parsing a host name costs more than a loopback tcp probe's own Python."""
    return parse_target(raw)


class ProgressReporter:
    """One running task's progress as TaskProgress messages for `send`: its start once it has run
    `start_grace_s` (or with its first step), then its steps at most one every `interval_s`. A
    step that comes sooner waits for the interval (replacing any step waiting before it), so the
    latest step is never lost and a prober that
    reports every reply costs the stream two messages a second at most. Callable from any
    thread (a blocking hop loop runs in one); `close()` drops what waits once the result is out.
    """

    def __init__(self, task: scheduler_pb2.Task, send: Callable[[scheduler_pb2.TaskProgress], None], *,
                 interval_s: float = PROGRESS_INTERVAL_S, start_grace_s: float = START_GRACE_S) -> None:
        self.task = task
        self.send = send
        self.interval_s = interval_s
        self.start_grace_s = start_grace_s
        self._start_at: Timestamp | None = None
        self._start_timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._last = -math.inf
        self._waiting: scheduler_pb2.TaskProgress | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def _message(self, **fields) -> scheduler_pb2.TaskProgress:
        return scheduler_pb2.TaskProgress(task_id=self.task.task_id, check_id=self.task.check_id,
                                          check_type=self.task.check_type, **fields)

    def started(self) -> None:
        # Only the moment: the message is built if the start goes up at all (most tasks end sooner).
        self._start_at = _now_ts()
        if self.start_grace_s <= 0:
            self._announce()
        else:
            self._start_timer = self._loop.call_later(self.start_grace_s, self._announce)

    def _announce(self) -> None:
        """Sends the start, once, unless the task has already ended."""
        if self._start_timer is not None:
            self._start_timer.cancel()
            self._start_timer = None
        start_at, self._start_at = self._start_at, None
        if start_at is not None and not self._closed:
            self.send(self._message(started=True, started_at=start_at))

    def __call__(self, message: str, *, done: int = 0, total: int = 0, data: Message | None = None) -> None:
        if threading.get_ident() != self._thread:
            self._loop.call_soon_threadsafe(lambda: self(message, done=done, total=total, data=data))
            return
        if self._closed:
            return
        progress = self._message(message=message[:PROGRESS_MESSAGE_LEN], done=done, total=total)
        if data is not None:
            getattr(progress.data, self.task.check_type).CopyFrom(data)
        wait = self._last + self.interval_s - time.monotonic()
        if wait <= 0:
            self._emit(progress)
            return
        self._waiting = progress
        if self._timer is None:
            self._timer = self._loop.call_later(wait, self._flush)

    def _flush(self) -> None:
        self._timer = None
        if self._waiting is not None and not self._closed:
            self._emit(self._waiting)

    def _emit(self, progress: scheduler_pb2.TaskProgress) -> None:
        self._announce()  # a step never goes before its task's start
        self._waiting = None
        self._last = time.monotonic()
        self.send(progress)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._start_timer is not None:
            self._start_timer.cancel()
            self._start_timer = None


async def run_task(task: scheduler_pb2.Task, guard: TargetGuard,
                   probers: dict[str, Prober] = PROBERS,
                   settings: ProbeSettings | None = None, *,
                   progress: Progress = no_progress) -> scheduler_pb2.TaskResult:
    """Runs the task in an `agent run` span, the child of the trace context the task carries."""
    if not telemetry.tracing_enabled():  # no span to make or pass on: spare each task building its attributes
        return await _probe(task, guard, probers, settings or ProbeSettings(), progress)
    with telemetry.span("agent run", parent=task.trace_context, kind=telemetry.SpanKind.CONSUMER, attributes={
            "hostcheck.check_id": task.check_id, "hostcheck.task_id": task.task_id,
            "hostcheck.check_type": task.check_type, "hostcheck.target": task.target}) as span:
        result = await _probe(task, guard, probers, settings or ProbeSettings(), progress)
        span.set_attributes({"hostcheck.success": result.success, "hostcheck.error_code": result.error_code})
        telemetry.inject(result.trace_context)  # the stored result's span is a child of this run
    return result


async def _probe(task: scheduler_pb2.Task, guard: TargetGuard, probers: dict[str, Prober],
                 settings: ProbeSettings, progress: Progress) -> scheduler_pb2.TaskResult:
    started_at = _now_ts()
    started = time.perf_counter()
    timeout = max(task.timeout_ms, 1) / 1000.0
    spec = CHECK_TYPES.get(task.check_type)
    try:
        prober = probers.get(task.check_type)
        if prober is None or spec is None:
            raise ProbeError("unsupported", f"this agent cannot run {task.check_type!r} checks")
        try:
            target = _target(task.target)
        except TargetError as exc:
            raise ProbeError("bad_target", f"target {task.target!r}: {exc}") from exc
        request = ProbeRequest(target=target, options=getattr(task.options, task.check_type), timeout=timeout,
                               ip_version=task.ip_version, guard=guard, settings=settings, progress=progress)
        if await prepare(task.check_type, request, probers):
            # A library or SSL context this agent loads for its first such check is not the probe's
            # time: `duration_ms` starts after it, as the probers' own timings do. The load still
            # counts against the task's timeout, so the probe gets what is left of it.
            loaded = time.perf_counter()
            timeout = max(timeout - (loaded - started), 0.001)
            request = dataclasses.replace(request, timeout=timeout)
            started = loaded
        try:
            async with asyncio.timeout(timeout):
                outcome = await prober(request)
        except TimeoutError as exc:
            raise ProbeError("timeout", f"{task.check_type} check of {task.target} timed out after {timeout:g} s") from exc
        if outcome.data is not None and not isinstance(outcome.data, spec.result):
            raise TypeError(f"the prober returned a {type(outcome.data).__name__}, not a {spec.result.__name__}")
    except ProbeError as exc:
        outcome = ProbeResult(False, exc.partial(spec.result) if spec is not None else None, exc.message, exc.code)
    except Exception as exc:  # noqa: BLE001 - one failing check never breaks the agent
        log.exception("prober %s crashed on %s", task.check_type, task.target)
        outcome = ProbeResult(False, None, f"{type(exc).__name__}: {exc}", "agent_error")
    # The error text may quote the target (a banner, a header): escaped before protobuf sees it,
    # which refuses a string that is not UTF-8.
    result = scheduler_pb2.TaskResult(
        task_id=task.task_id, check_id=task.check_id, check_type=task.check_type, success=outcome.success,
        error=cap(outcome.error, MAX_ERROR_CHARS), error_code=cap(outcome.error_code, MAX_ERROR_CODE_CHARS),
        duration_ms=round((time.perf_counter() - started) * 1000.0, 3), started_at=started_at)
    if spec is not None:
        data = getattr(result.data, spec.name)
        data.SetInParent()
        if outcome.data is not None:
            data.CopyFrom(outcome.data)
    make_storable(result)
    return result
