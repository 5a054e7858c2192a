"""`hostcheck check`: create a check, show each agent's result as it arrives, exit by outcome."""

from __future__ import annotations

import json
import sys
from typing import Any

import grpc
from google.protobuf import descriptor, json_format, message_factory
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from rich.console import Console
from rich.live import Live
from rich.table import Table

from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.v1 import checks_pb2, results_pb2, results_pb2_grpc, scheduler_pb2, scheduler_pb2_grpc

# Exit codes (README, `hostcheck check --help`). 2 is click's own for a usage error.
EXIT_ALL_SUCCEEDED, EXIT_SOME_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_NONE_SUCCEEDED = 0, 1, 2, 3, 4
EXIT_BY_OUTCOME = {"all_succeeded": EXIT_ALL_SUCCEEDED, "some_failed": EXIT_SOME_FAILED,
                   "none_succeeded": EXIT_NONE_SUCCEEDED}
# The colour an outcome deserves: all green only when every probe succeeded.
OUTCOME_STYLE = {"all_succeeded": "green", "some_failed": "yellow", "none_succeeded": "red"}


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
                  options, magic=(), same_as: str = "") -> scheduler_pb2.CreateCheckRequest:
    request = scheduler_pb2.CreateCheckRequest(target=target, checks=list(types), timeout_ms=timeout_ms)
    request.agents.CopyFrom(checks_pb2.AgentSelector(limit=limit, regions=regions, countries=countries,
                                                     agent_ids=agent_ids, magic=magic, same_as=same_as))
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
        elif field.message_type is not None:  # a message (e.g. http.header_regexp) as JSON; repeated: once per -o
            try:
                parsed = json_format.Parse(value, message_factory.GetMessageClass(field.message_type)())
            except json_format.ParseError as exc:
                raise UsageError(f"option {item!r}: expected {field_name}=JSON of {field.message_type.name}: "
                                 f"{exc}") from None
            if field.is_repeated:
                getattr(message, field_name).append(parsed)
            else:
                getattr(message, field_name).CopyFrom(parsed)
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


def outcome_line(check: checks_pb2.Check) -> str:
    """'2 of 3 probes succeeded', with what became of the rest, in rich markup coloured by the outcome."""
    words = f"{check.tasks_succeeded} of {check.tasks_total} probe{'s' if check.tasks_total != 1 else ''} succeeded"
    rest = [f"{n} {what}" for n, what in ((check.tasks_failed, "failed"), (check.tasks_timed_out, "timed out"),
                                           (check.tasks_running, "running")) if n]
    if rest:
        words += f" ({', '.join(rest)})"
    style = OUTCOME_STYLE.get(check.outcome, "")
    return f"[{style}]{words}[/]" if style else words


def summary(task: checks_pb2.CheckTask, progress: scheduler_pb2.TaskProgress | None = None) -> str:
    """One line per result: what a network engineer reads first, as the check type's spec words it."""
    if not task.HasField("result"):
        if task.status == "running" and progress is not None and progress.message:
            return progress.message
        return task.reason or task.status
    r = task.result
    if not r.success:
        return f"{r.error_code}: {r.error}"
    spec = CHECK_TYPES.get(task.check_type)
    if spec is None or r.data.WhichOneof("result") != task.check_type:
        # A type this CLI does not know (a newer server), or no data: the data as JSON.
        return json.dumps(_ints(json_format.MessageToDict(r.data, preserving_proto_field_name=True)))[:80]
    return spec.summary(getattr(r.data, task.check_type))


def _table(check: checks_pb2.Check, tasks: dict[str, checks_pb2.CheckTask],
           progress: dict[str, scheduler_pb2.TaskProgress]) -> Table:
    done = sum(t.status not in ("pending", "running") for t in tasks.values())
    succeeded = sum(t.status == "completed" for t in tasks.values())
    table = Table(title=f"{check.target}  [{check.status}]  {done}/{len(tasks)} done, "
                        f"{succeeded} of {len(tasks)} succeeded", expand=False)
    for col in ("agent", "location", "type", "status", "time", "result"):
        table.add_column(col)
    for task in tasks.values():
        took = f"{task.result.duration_ms:.1f} ms" if task.HasField("result") else ""
        style = {"completed": "green", "failed": "red", "timed_out": "yellow", "running": "cyan"}.get(task.status, "")
        table.add_row(task.agent_name, task.location or task.country, task.check_type,
                      f"[{style}]{task.status}[/]" if style else task.status, took,
                      summary(task, progress.get(task.task_id)))
    return table


async def run(*, target: str, types, server: str, as_json: bool, limit: int, regions, countries, agent_ids,
              port: int, timeout_ms: int, options, magic=(), same_as: str = "", api_key: str = "") -> int:
    err = Console(stderr=True)
    try:
        request = build_request(target=target, types=types, limit=limit, regions=regions, countries=countries,
                                agent_ids=agent_ids, port=port, timeout_ms=timeout_ms, options=options, magic=magic,
                                same_as=same_as)
    except UsageError as exc:
        err.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    async with grpc.aio.insecure_channel(server) as channel:
        try:
            # An API key: its own quota, and the check is its (README, "API keys"); none: anonymous.
            created = await scheduler_pb2_grpc.SchedulerServiceStub(channel).CreateCheck(
                request, timeout=30, metadata=[("authorization", f"Bearer {api_key}")] if api_key else None)
        except grpc.aio.AioRpcError as exc:
            err.print(f"[red]error:[/] {describe_error(exc)}", highlight=False)
            return EXIT_REFUSED
        check = created.check
        tasks = {t.task_id: t for t in check.tasks}
        if not as_json:
            err.print(f"check {check.check_id}: {check.target} with {', '.join(check.check_types)} on "
                      f"{len({t.agent_id for t in tasks.values()})} agent(s)", highlight=False)
        progress: dict[str, scheduler_pb2.TaskProgress] = {}
        live = Live(_table(check, tasks, progress), console=Console(), auto_refresh=False) \
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
                elif event.event == "deleted":
                    err.print(f"[red]check {check.check_id} was deleted[/]", highlight=False)
                    return EXIT_REFUSED
                elif event.event == "progress":
                    progress[event.progress.task_id] = event.progress
                    changed = []
                    if live is None and not as_json:
                        running = tasks.get(event.progress.task_id)
                        name = running.agent_name if running is not None else ""
                        err.print(f"{name:<20} {event.progress.check_type:<10} running    {event.progress.message}",
                                  highlight=False, markup=False, soft_wrap=True)
                else:
                    final.status = event.check_status
                    changed = [event.task] if event.event == "task" else []
                for task in changed:
                    tasks[task.task_id] = task
                    # Lines mode: each task once, when it ends (it may already have in the snapshot).
                    if live is None and not as_json and task.status not in ("pending", "running") \
                            and task.task_id not in printed:
                        printed.add(task.task_id)
                        print(f"{task.agent_name:<20} {task.check_type:<10} {task.status:<10} "
                              f"{task.result.duration_ms:>9.1f} ms  {summary(task)}", flush=True)
                if live:
                    live.update(_table(final, tasks, progress), refresh=True)
                if event.event == "done":
                    break
        except grpc.aio.AioRpcError as exc:
            err.print(f"[red]error while watching:[/] {describe_error(exc)}", highlight=False)
            return EXIT_REFUSED
        finally:
            if live:
                live.stop()
        try:
            final = (await results_pb2_grpc.ResultsServiceStub(channel).GetCheck(
                results_pb2.GetCheckRequest(check_id=check.check_id), timeout=30)).check
        except grpc.aio.AioRpcError as exc:
            err.print(f"[red]error:[/] {describe_error(exc)}", highlight=False)
            return EXIT_REFUSED
    if as_json:
        print(json.dumps(check_json(final), indent=2))
        err.print(f"check {final.check_id} {final.status}: {outcome_line(final)}", highlight=False, soft_wrap=True)
    else:
        Console(highlight=False, soft_wrap=True).print(f"check {final.check_id} {final.status}: {outcome_line(final)}")
    return EXIT_BY_OUTCOME.get(final.outcome, EXIT_NONE_SUCCEEDED)
