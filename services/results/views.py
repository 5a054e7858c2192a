"""Rows to protobuf messages (what clients see)."""

from __future__ import annotations

from google.protobuf import json_format, struct_pb2

from hostcheck.core.timestamps import ts_or_none
from hostcheck.services.storage.models import CheckRow, ResultRow, TaskRow
from hostcheck.v1 import checks_pb2, scheduler_pb2


def struct(data: dict) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(data or {})
    return out


def result_view(row: ResultRow) -> checks_pb2.CheckResult:
    return checks_pb2.CheckResult(
        task_id=str(row.task_id), check_id=str(row.check_id), agent_id=str(row.agent_id),
        check_type=row.check_type, success=row.success, data=struct(row.data), error=row.error or "",
        error_code=row.error_code or "", duration_ms=row.duration_ms or 0.0, started_at=ts_or_none(row.started_at),
        created_at=ts_or_none(row.created_at), late=row.late)


def task_view(row: TaskRow) -> checks_pb2.CheckTask:
    agent = row.agent
    view = checks_pb2.CheckTask(
        task_id=str(row.id), check_id=str(row.check_id), agent_id=str(row.agent_id),
        agent_name=agent.name if agent else "", location=agent.location if agent else "",
        region=agent.region if agent else "", country=agent.country if agent else "",
        city=agent.city if agent else "", check_type=row.check_type, status=row.status, reason=row.reason or "",
        created_at=ts_or_none(row.created_at), deadline=ts_or_none(row.deadline_at), completed_at=ts_or_none(row.completed_at))
    if row.result is not None:
        view.result.CopyFrom(result_view(row.result))
    return view


def check_view(row: CheckRow, *, with_tasks: bool = True, tasks_done: int | None = None,
               tasks_total: int | None = None) -> checks_pb2.Check:
    request = scheduler_pb2.CreateCheckRequest()
    json_format.ParseDict(row.request or {}, request, ignore_unknown_fields=True)
    options = checks_pb2.CheckOptions()
    for name in row.check_types:
        if request.HasField(name):
            getattr(options, name).CopyFrom(getattr(request, name))
    view = checks_pb2.Check(
        check_id=str(row.id), target=row.target, check_types=list(row.check_types), status=row.status,
        created_at=ts_or_none(row.created_at), completed_at=ts_or_none(row.completed_at), deadline=ts_or_none(row.deadline_at),
        options=options, timeout_ms=request.timeout_ms, ip_version=request.ip_version)
    if with_tasks:
        tasks = [task_view(t) for t in row.tasks]
        view.tasks.extend(tasks)
        view.results.extend(t.result for t in tasks if t.HasField("result"))
        view.tasks_total = len(tasks)
        view.tasks_done = sum(1 for t in tasks if t.status != "pending")
    else:
        view.tasks_total = tasks_total or 0
        view.tasks_done = tasks_done or 0
    return view
