"""Rows to protobuf messages (what clients see)."""

from __future__ import annotations

import logging

from google.protobuf import json_format

from hostcheck.core.timestamps import ts_or_none
from hostcheck.services.results.models import CheckRow, ResultRow, TaskRow
from hostcheck.v1 import checks_pb2, scheduler_pb2

log = logging.getLogger(__name__)


def result_data(stored: dict | None) -> checks_pb2.ResultData:
    """The stored JSON of a result's data ({check_type: {...}}, as RecordResults wrote it) as a message.

    Fields this version does not know (a newer agent's) are skipped; a value that no
    longer parses (a field whose type changed) leaves the data empty rather than
    failing the whole check's read.
    """
    data = checks_pb2.ResultData()
    try:
        json_format.ParseDict(stored or {}, data, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        log.warning("stored result data does not parse, shown empty: %s", exc)
        data.Clear()
    return data


def result_view(row: ResultRow) -> checks_pb2.CheckResult:
    return checks_pb2.CheckResult(
        task_id=str(row.task_id), check_id=str(row.check_id), agent_id=str(row.agent_id),
        check_type=row.check_type, success=row.success, data=result_data(row.data), error=row.error or "",
        error_code=row.error_code or "", duration_ms=row.duration_ms or 0.0, started_at=ts_or_none(row.started_at),
        created_at=ts_or_none(row.created_at), late=row.late)


def task_view(row: TaskRow) -> checks_pb2.CheckTask:
    view = checks_pb2.CheckTask(
        task_id=str(row.id), check_id=str(row.check_id), agent_id=str(row.agent_id), agent_name=row.agent_name,
        location=row.location, region=row.region, country=row.country, city=row.city, check_type=row.check_type,
        status=row.status, reason=row.reason or "",
        created_at=ts_or_none(row.created_at), deadline=ts_or_none(row.deadline_at), completed_at=ts_or_none(row.completed_at),
        started_at=ts_or_none(row.started_at))
    if row.result is not None:
        view.result.CopyFrom(result_view(row.result))
        # The seed's result names its agent: the task's snapshot of where it ran.
        view.result.agent, view.result.location = row.agent_name, row.location
        view.result.region, view.result.country, view.result.city = row.region, row.country, row.city
    return view


def outcome(status: str, succeeded: int, total: int) -> str:
    """A finished check's outcome by its tasks: all_succeeded | some_failed | none_succeeded ("" while open)."""
    if status not in ("completed", "failed"):
        return ""
    if total and succeeded == total:
        return "all_succeeded"
    return "some_failed" if succeeded else "none_succeeded"


def set_counts(view: checks_pb2.Check, counts: dict[str, int]) -> None:
    """The check's task counts from its tasks' statuses (status -> how many)."""
    view.tasks_total = sum(counts.values())
    view.tasks_running = counts.get("running", 0)
    view.tasks_done = view.tasks_total - counts.get("pending", 0) - view.tasks_running
    view.tasks_succeeded = counts.get("completed", 0)
    view.tasks_failed = counts.get("failed", 0)
    view.tasks_timed_out = counts.get("timed_out", 0)
    view.outcome = outcome(view.status, view.tasks_succeeded, view.tasks_total)


def check_view(row: CheckRow, *, with_tasks: bool = True, counts: dict[str, int] | None = None) -> checks_pb2.Check:
    """The check; without tasks (lists), `counts` are its tasks' statuses (status -> how many)."""
    request = scheduler_pb2.CreateCheckRequest()
    json_format.ParseDict(row.request or {}, request, ignore_unknown_fields=True)
    options = checks_pb2.CheckOptions()
    for name in row.check_types:
        if request.HasField(name):
            getattr(options, name).CopyFrom(getattr(request, name))
    view = checks_pb2.Check(
        check_id=str(row.id), target=row.target, check_types=list(row.check_types), status=row.status,
        created_at=ts_or_none(row.created_at), completed_at=ts_or_none(row.completed_at), deadline=ts_or_none(row.deadline_at),
        options=options, timeout_ms=request.timeout_ms, ip_version=request.ip_version,
        created_by_key_id=str(row.created_by_key_id) if row.created_by_key_id else "")
    monitor_id = getattr(row, "monitor_id", None)
    if monitor_id is not None:  # a monitor's run
        view.monitor_id, view.monitor_run = str(monitor_id), row.monitor_run or 0
    if with_tasks:
        tasks = [task_view(t) for t in row.tasks]
        view.tasks.extend(tasks)
        view.results.extend(t.result for t in tasks if t.HasField("result"))
        counts = {}
        for t in tasks:
            counts[t.status] = counts.get(t.status, 0) + 1
    set_counts(view, counts or {})
    return view
