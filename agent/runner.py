"""Running one task: the prober under its timeout; every outcome becomes a TaskResult.

A task of a type this agent knows gets the field of its type set in the result's
`data`, whatever the outcome: the type's result message, empty when nothing was
measured.
"""

from __future__ import annotations

import asyncio
import logging
import time

from hostcheck.agent.probers import PROBERS, ProbeError, Prober, ProbeRequest, ProbeResult
from hostcheck.core import telemetry
from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.core.targets import TargetError, TargetGuard, parse_target
from hostcheck.core.timestamps import now_ts
from hostcheck.v1 import scheduler_pb2

log = logging.getLogger(__name__)


async def run_task(task: scheduler_pb2.Task, guard: TargetGuard,
                   probers: dict[str, Prober] = PROBERS) -> scheduler_pb2.TaskResult:
    """Runs the task in an `agent run` span, the child of the trace context the task carries."""
    with telemetry.span("agent run", parent=task.trace_context, kind=telemetry.SpanKind.CONSUMER, attributes={
            "hostcheck.check_id": task.check_id, "hostcheck.task_id": task.task_id,
            "hostcheck.check_type": task.check_type, "hostcheck.target": task.target}) as span:
        result = await _probe(task, guard, probers)
        span.set_attributes({"hostcheck.success": result.success, "hostcheck.error_code": result.error_code})
        telemetry.inject(result.trace_context)  # the stored result's span is a child of this run
    return result


async def _probe(task: scheduler_pb2.Task, guard: TargetGuard, probers: dict[str, Prober]) -> scheduler_pb2.TaskResult:
    started_at = now_ts()
    started = time.perf_counter()
    timeout = max(task.timeout_ms, 1) / 1000.0
    spec = CHECK_TYPES.get(task.check_type)
    try:
        prober = probers.get(task.check_type)
        if prober is None or spec is None:
            raise ProbeError("unsupported", f"this agent cannot run {task.check_type!r} checks")
        try:
            target = parse_target(task.target)
        except TargetError as exc:
            raise ProbeError("bad_target", f"target {task.target!r}: {exc}") from exc
        request = ProbeRequest(target=target, options=getattr(task.options, task.check_type), timeout=timeout,
                               ip_version=task.ip_version, guard=guard)
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
    result = scheduler_pb2.TaskResult(
        task_id=task.task_id, check_id=task.check_id, check_type=task.check_type, success=outcome.success,
        error=outcome.error, error_code=outcome.error_code,
        duration_ms=round((time.perf_counter() - started) * 1000.0, 3), started_at=started_at)
    if spec is not None:
        data = getattr(result.data, spec.name)
        data.SetInParent()
        if outcome.data is not None:
            data.CopyFrom(outcome.data)
    return result
