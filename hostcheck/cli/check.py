"""`hostcheck check`: create a check, show each agent's result as it arrives, exit by outcome."""

from __future__ import annotations

import json
import sys
from typing import Any

import grpc
from google.protobuf import descriptor, json_format
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rich.console import Console
from rich.live import Live
from rich.table import Table

from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.v1 import checks_pb2, results_pb2, results_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc

EXIT_COMPLETED, EXIT_PROBE_FAILED, EXIT_CHECK_FAILED, EXIT_REQUEST_ERROR = 0, 1, 2, 3


class UsageError(ValueError):
    pass


def _convert(field: descriptor.FieldDescriptor, raw: str) -> Any:
    if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
        if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise UsageError(f"{field.name}: expected true or false, got {raw!r}")
        return raw.lower() in ("true", "1", "yes")
    if field.cpp_type in (descriptor.FieldDescriptor.CPPTYPE_UINT32, descriptor.FieldDescriptor.CPPTYPE_INT32,
                          descriptor.FieldDescriptor.CPPTYPE_UINT64, descriptor.FieldDescriptor.CPPTYPE_INT64):
        try:
            return int(raw)
        except ValueError:
            raise UsageError(f"{field.name}: expected a number, got {raw!r}") from None
    return raw


def build_request(*, target: str, types, limit: int, regions, countries, agent_ids, port: int, timeout_ms: int,
                  options) -> scheduler_pb2.CreateCheckRequest:
    request = scheduler_pb2.CreateCheckRequest(target=target, checks=list(types), timeout_ms=timeout_ms)
    request.agents.CopyFrom(checks_pb2.AgentSelector(limit=limit, regions=regions, countries=countries,
                                                     agent_ids=agent_ids))
    if port:
        for t in types:
            spec = CHECK_TYPES.get(t)
            if spec is not None and spec.has_port_option:
                getattr(request, t).port = port
    for item in options:
        key, sep, value = item.partition("=")
        type_name, dot, field_name = key.partition(".")
        if not sep or not dot:
            raise UsageError(f"option {item!r} is not TYPE.FIELD=VALUE")
        if type_name not in CHECK_TYPES:
            raise UsageError(f"option {item!r}: unknown check type {type_name!r}")
        message = getattr(request, type_name)
        field = message.DESCRIPTOR.fields_by_name.get(field_name)
        if field is None:
            known = ", ".join(message.DESCRIPTOR.fields_by_name)
            raise UsageError(f"option {item!r}: {type_name} has no field {field_name!r} (known: {known})")
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            k, eq, v = value.partition(":")
            if not eq:
                raise UsageError(f"option {item!r}: expected {field_name}=KEY:VALUE")
            getattr(message, field_name)[k] = v
        elif field.is_repeated:
            getattr(message, field_name).extend(_convert(field, v) for v in value.split(","))
        else:
            setattr(message, field_name, _convert(field, value))
    return request


def _ints(value: Any) -> Any:
    """Whole doubles as integers: 12 ms rather than 12.0 ms."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def check_json(check: checks_pb2.Check) -> dict:
    return _ints(json_format.MessageToDict(check, preserving_proto_field_name=True))


def describe_error(exc: grpc.aio.AioRpcError) -> str:
    lines = [f"{exc.code().name}: {exc.details()}"]
    status = rpc_status.from_call(exc) if hasattr(exc, "trailing_metadata") else None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                lines = [f"{exc.code().name}:"] + [f"  {v.field}: {v.description}" for v in bad.field_violations]
    return "\n".join(lines)


def summary(task: checks_pb2.CheckTask) -> str:
    """One line per result: what a network engineer reads first, as the check type's spec words it."""
    if not task.HasField("result"):
        return task.reason or task.status
    r = task.result
    if not r.success:
        return f"{r.error_code}: {r.error}"
    spec = CHECK_TYPES.get(task.check_type)
    if spec is None or r.data.WhichOneof("result") != task.check_type:
        # A type this CLI does not know (a newer server), or no data: the data as JSON.
        return json.dumps(_ints(json_format.MessageToDict(r.data, preserving_proto_field_name=True)))[:80]
    return spec.summary(getattr(r.data, task.check_type))


def _table(check: checks_pb2.Check, tasks: dict[str, checks_pb2.CheckTask]) -> Table:
    table = Table(title=f"{check.target}  [{check.status}]  {sum(t.status != 'pending' for t in tasks.values())}"
                        f"/{len(tasks)} done", expand=False)
    for col in ("agent", "location", "type", "status", "time", "result"):
        table.add_column(col)
    for task in tasks.values():
        took = f"{task.result.duration_ms:.1f} ms" if task.HasField("result") else ""
        style = {"completed": "green", "failed": "red", "timed_out": "yellow"}.get(task.status, "")
        table.add_row(task.agent_name, task.location or task.country, task.check_type,
                      f"[{style}]{task.status}[/]" if style else task.status, took, summary(task))
    return table


async def run(*, target: str, types, server: str, as_json: bool, limit: int, regions, countries, agent_ids,
              port: int, timeout_ms: int, options, strict: bool) -> int:
    err = Console(stderr=True)
    try:
        request = build_request(target=target, types=types, limit=limit, regions=regions, countries=countries,
                                agent_ids=agent_ids, port=port, timeout_ms=timeout_ms, options=options)
    except UsageError as exc:
        err.print(f"[red]error:[/] {exc}")
        return EXIT_REQUEST_ERROR
    async with grpc.aio.insecure_channel(server) as channel:
        try:
            created = await scheduler_pb2_grpc.SchedulerServiceStub(channel).CreateCheck(request, timeout=30)
        except grpc.aio.AioRpcError as exc:
            err.print(f"[red]error:[/] {describe_error(exc)}", highlight=False)
            return EXIT_REQUEST_ERROR
        check = created.check
        tasks = {t.task_id: t for t in check.tasks}
        if not as_json:
            err.print(f"check {check.check_id}: {check.target} with {', '.join(check.check_types)} on "
                      f"{len({t.agent_id for t in tasks.values()})} agent(s)", highlight=False)
        live = Live(_table(check, tasks), console=Console(), auto_refresh=False) \
            if sys.stdout.isatty() and not as_json else None
        final = check
        printed: set[str] = set()
        try:
            if live:
                live.start()
            stream = results_pb2_grpc.ResultsServiceStub(channel).WatchCheck(
                results_pb2.WatchCheckRequest(check_id=check.check_id))
            async for event in stream:
                if event.event in ("snapshot", "done"):
                    final = event.check
                    changed = list(event.check.tasks)
                else:
                    final.status = event.check_status
                    changed = [event.task] if event.event == "task" else []
                for task in changed:
                    tasks[task.task_id] = task
                    # Lines mode: each task once, when it ends (it may already have in the snapshot).
                    if live is None and not as_json and task.status != "pending" and task.task_id not in printed:
                        printed.add(task.task_id)
                        print(f"{task.agent_name:<20} {task.check_type:<10} {task.status:<10} "
                              f"{task.result.duration_ms:>9.1f} ms  {summary(task)}", flush=True)
                if live:
                    live.update(_table(final, tasks), refresh=True)
                if event.event == "done":
                    break
        except grpc.aio.AioRpcError as exc:
            err.print(f"[red]error while watching:[/] {describe_error(exc)}", highlight=False)
            return EXIT_REQUEST_ERROR
        finally:
            if live:
                live.stop()
        try:
            final = (await results_pb2_grpc.ResultsServiceStub(channel).GetCheck(
                results_pb2.GetCheckRequest(check_id=check.check_id), timeout=30)).check
        except grpc.aio.AioRpcError as exc:
            err.print(f"[red]error:[/] {describe_error(exc)}", highlight=False)
            return EXIT_REQUEST_ERROR
    if as_json:
        print(json.dumps(check_json(final), indent=2))
    elif live is None:
        print(f"check {final.check_id} {final.status}: {final.tasks_done}/{final.tasks_total} tasks done")
    if final.status != "completed":
        return EXIT_CHECK_FAILED
    if strict and any(t.status != "completed" for t in final.tasks):
        return EXIT_PROBE_FAILED
    return EXIT_COMPLETED
