"""The monitors' API (MonitorsService, public) and the schedulers' (MonitorRunsService, internal).

A monitor belongs to the API key that made it (or to the admin). Its owner and the admin may
read, edit, delete and watch it; another key gets NOT_FOUND (a monitor's existence is not
revealed), an anonymous caller UNAUTHENTICATED. The status page is public and shows only
PublicMonitor's fields.

A monitor's check is validated exactly as a check is (hostcheck.core.checks.validate_create:
fields 1-13 of CreateMonitorRequest are CreateCheckRequest's, with the same names and numbers, so
violations name the same fields), plus the monitor's own rules (validate_monitor). An edit
re-validates the whole monitor as it would be after the edit, and writes nothing when it fails.
"""

from __future__ import annotations

import logging
import re
import uuid
from urllib.parse import urlsplit

from google.api import httpbody_pb2
from google.protobuf import field_mask_pb2, json_format
from google.protobuf.descriptor import Descriptor

from hostcheck.core import limits
from hostcheck.core.checks import require_uuid, validate_create
from hostcheck.core.errors import FieldViolation, InvalidArgument, NotFound, Unauthenticated
from hostcheck.core.selectors import planned_agents
from hostcheck.core.targets import TargetError, TargetGuard, parse_target
from hostcheck.core.timestamps import ts_or_none
from hostcheck.services.auth import ANONYMOUS, Caller, Verify, caller_of
from hostcheck.services.restbody import key_paths, refuse_unknown_fields, unknown_path
from hostcheck.services.results.monitormodels import NAME_LEN, MonitorRow
from hostcheck.services.results.monitors import MonitorStore, MonitorValues
from hostcheck.services.results.monitorviews import (
    check_request_of,
    event_view,
    monitor_view,
    public_view,
    run_view,
)
from hostcheck.services.results.monitorwatch import MonitorEvents
from hostcheck.services.rpcerrors import grpc_errors
from hostcheck.services.storage.livestate import LiveState
from hostcheck.v1 import monitors_pb2, monitors_pb2_grpc, scheduler_pb2

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 60
MAX_INTERVAL_S = 86_400
MAX_QUORUM = 100
MAX_FOR_RUNS = 100
MAX_WEBHOOK_URL = 2048
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_CLAIM = 1000
# Messages whose JSON is free-form (an edit replaces them whole).
_OPEN_MESSAGES = frozenset({"google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.Any",
                            "google.protobuf.ListValue"})


def check_request(monitor: monitors_pb2.CreateMonitorRequest) -> scheduler_pb2.CreateCheckRequest:
    """The check of each run: fields 1-13 (CreateCheckRequest's), whatever they are; the monitor's own
    fields (100 on) are left out."""
    part = monitors_pb2.CreateMonitorRequest()
    part.CopyFrom(monitor)
    for field, _ in part.ListFields():
        if field.number >= 100:
            part.ClearField(field.name)
    return scheduler_pb2.CreateCheckRequest.FromString(part.SerializeToString())


def monitor_request(row: MonitorRow) -> monitors_pb2.CreateMonitorRequest:
    """The stored monitor as the request that would make it (what an edit changes)."""
    request = monitors_pb2.CreateMonitorRequest.FromString(check_request_of(row.spec).SerializeToString())
    request.name, request.interval_s, request.paused = row.name, row.interval_s, row.paused
    request.status_slug = row.status_slug or ""
    request.alert.quorum, request.alert.for_runs, request.alert.webhook_url = row.quorum, row.for_runs, row.webhook_url
    return request


def _webhook_violation(url: str, guard: TargetGuard) -> str | None:
    """Why a webhook URL is refused (None: it is fine). Its host passes the target guard; a host
    name is checked again at each delivery, address by address (DNS can change)."""
    if len(url) > MAX_WEBHOOK_URL:
        return f"must be at most {MAX_WEBHOOK_URL} characters"
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return "must not contain spaces or control characters"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        return f"bad port: {exc}"
    if not parts.hostname:
        return "has no host"
    host_port = parts.netloc.rpartition("@")[2]
    try:
        target = parse_target(f"{parts.scheme}://{host_port}/")
    except TargetError as exc:
        return str(exc)
    if target.ip is not None:
        return guard.refusal(target.ip)
    return None


def validate_monitor(request: monitors_pb2.CreateMonitorRequest, guard: TargetGuard, *,
                     min_interval_s: int) -> MonitorValues:
    """Validates a monitor; raises InvalidArgument listing every bad field (the check's named as in a check)."""
    bad: list[FieldViolation] = []
    valid = None
    try:
        valid = validate_create(check_request(request), guard)
    except InvalidArgument as exc:
        bad.extend(exc.violations)
    name = request.name.strip()
    if not name or len(request.name) > NAME_LEN:
        bad.append(FieldViolation("name", f"must be 1-{NAME_LEN} characters"))
    elif "\x00" in request.name:
        bad.append(FieldViolation("name", limits.NUL_REASON))
    interval_s = request.interval_s or DEFAULT_INTERVAL_S
    if not min_interval_s <= interval_s <= MAX_INTERVAL_S:
        bad.append(FieldViolation("interval_s", f"must be {min_interval_s}-{MAX_INTERVAL_S} seconds "
                                                f"(0: the default, {DEFAULT_INTERVAL_S})"))
    quorum = request.alert.quorum or 1
    for_runs = request.alert.for_runs or 1
    if quorum > MAX_QUORUM:
        bad.append(FieldViolation("alert.quorum", f"must be 1-{MAX_QUORUM} (0: the default, 1)"))
    elif not request.agents.same_as and quorum > planned_agents(request.agents):
        bad.append(FieldViolation("alert.quorum", f"is more than the {planned_agents(request.agents)} agents "
                                                  f"the selector picks (agents.limit): the monitor could never "
                                                  f"be down"))
    if for_runs > MAX_FOR_RUNS:
        bad.append(FieldViolation("alert.for_runs", f"must be 1-{MAX_FOR_RUNS} (0: the default, 1)"))
    if valid is not None:
        slowest = max(valid.check_types, key=valid.timeout_ms)
        timeout_ms = valid.timeout_ms(slowest)
        if timeout_ms >= interval_s * 1000:
            said = f"{timeout_ms} ms" if request.timeout_ms else f"the default of {slowest}, {timeout_ms} ms,"
            bad.append(FieldViolation("timeout_ms", f"{said} must be below the interval ({interval_s} s): a run "
                                                    f"must end before the next one starts"))
    webhook_url = request.alert.webhook_url
    if webhook_url:
        reason = _webhook_violation(webhook_url, guard)
        if reason:
            bad.append(FieldViolation("alert.webhook_url", reason))
    if request.status_slug and not SLUG.match(request.status_slug):
        bad.append(FieldViolation("status_slug", "must be 1-63 lower-case letters, digits and '-', starting "
                                                 "with a letter or digit"))
    if bad or valid is None:
        raise InvalidArgument(bad)
    return MonitorValues(
        name=name, target=valid.request.target, check_types=list(valid.check_types),
        spec=json_format.MessageToDict(valid.request, preserving_proto_field_name=True), interval_s=interval_s,
        quorum=quorum, for_runs=for_runs, webhook_url=webhook_url, paused=request.paused,
        status_slug=request.status_slug or None)


def _proto_path(message: Descriptor, path: str) -> str | None:
    """A key path (proto or JSON names) in proto names, cut after the first field an edit replaces
    whole (a repeated field, a map, a scalar, a free-form message); None when a key is unknown."""
    named: list[str] = []
    for key in path.split("."):
        field = message.fields_by_name.get(key) or next((f for f in message.fields if f.json_name == key), None)
        if field is None:
            return None
        named.append(field.name)
        sub = field.message_type
        if field.is_repeated or sub is None or sub.full_name in _OPEN_MESSAGES:
            break
        message = sub
    return ".".join(named)


def update_paths(request: monitors_pb2.UpdateMonitorRequest, metadata) -> list[str]:
    """What an edit changes: REST the body's keys, gRPC update_mask, or every field set in `monitor`."""
    descriptor = monitors_pb2.CreateMonitorRequest.DESCRIPTOR
    keys = key_paths(metadata)
    if keys:
        unknown = unknown_path(monitors_pb2.CreateMonitorRequest, keys)
        if unknown is not None:
            raise InvalidArgument(field=f"monitor.{unknown}", reason=f"unknown field {unknown.rsplit('.', 1)[-1]!r}: "
                                                                      f"a monitor has no such field")
        paths = keys
        where = "monitor"
    elif request.update_mask.paths:
        paths = list(request.update_mask.paths)
        where = "update_mask"
    else:
        return [field.name for field, _ in request.monitor.ListFields()]
    out = []
    for path in paths:
        normal = _proto_path(descriptor, path)
        if normal is None:
            raise InvalidArgument(field=where, reason=f"{path[:200]!r} is not a field of a monitor")
        out.append(normal)
    out = list(dict.fromkeys(out))
    if keys:
        # The gateway lists every key, an object's too: {"alert": {"quorum": 2}} is "alert" and
        # "alert.quorum", and changes only the quorum (an object's keys are merged, not replaced).
        out = [p for p in out if not any(q.startswith(p + ".") for q in out)]
    return out


def _prefixed(exc: InvalidArgument, prefix: str) -> InvalidArgument:
    return InvalidArgument([FieldViolation(f"{prefix}{v.field}", v.reason) for v in exc.violations])


class MonitorsServicer(monitors_pb2_grpc.MonitorsServiceServicer):
    def __init__(self, store: MonitorStore, live: LiveState, verify: Verify, *, guard: TargetGuard,
                 min_interval_s: int, per_key: int) -> None:
        self.store = store
        self.live = live
        self.verify = verify
        self.guard = guard
        self.min_interval_s = min_interval_s
        self.per_key = per_key
        self.events = MonitorEvents(live)

    async def _caller(self, context) -> Caller:
        caller = await caller_of(context, self.verify)
        if caller.role == ANONYMOUS:
            raise Unauthenticated("monitors need an API key (authorization: Bearer <api key>)")
        return caller

    @staticmethod
    def _owner(caller: Caller) -> uuid.UUID | None:
        return None if caller.is_admin else uuid.UUID(caller.key_id)

    async def _owned(self, caller: Caller, monitor_id: str) -> MonitorRow:
        """The monitor if the caller may see it; another key's is NOT_FOUND, as a missing one."""
        row = await self.store.get(require_uuid("monitor_id", monitor_id))
        if not caller.is_admin and str(row.created_by_key_id) != caller.key_id:
            raise NotFound(f"monitor {monitor_id} not found")
        return row

    async def views(self, rows: list[MonitorRow], *, secret: bool = False) -> list[monitors_pb2.Monitor]:
        """The monitors with their last run and uptime (two queries for the whole list)."""
        ids = [r.id for r in rows]
        last = await self.store.last_runs(ids)
        uptime = await self.store.uptime(ids)
        out = []
        for r in rows:
            up = uptime.get(r.id)
            out.append(monitor_view(r, last_run=last.get(r.id), uptime_24h=up.day if up else None,
                                    uptime_7d=up.week if up else None, secret=secret))
        return out

    @grpc_errors
    async def CreateMonitor(self, request, context):
        refuse_unknown_fields(monitors_pb2.CreateMonitorRequest, context.invocation_metadata())
        caller = await self._caller(context)
        values = validate_monitor(request, self.guard, min_interval_s=self.min_interval_s)
        row = await self.store.create(values, owner=self._owner(caller),
                                      per_key=None if caller.is_admin else self.per_key)
        log.info("created monitor %s (%s, every %d s) for %s", row.id, row.name, row.interval_s,
                 caller.key_id or "the admin")
        return (await self.views([row], secret=True))[0]

    @grpc_errors
    async def ListMonitors(self, request, context):
        caller = await self._caller(context)
        rows, token = await self.store.list_monitors(owner=self._owner(caller), every_owner=caller.is_admin,
                                            page_size=request.page_size, page_token=request.page_token,
                                            state=request.state)
        return monitors_pb2.ListMonitorsResponse(monitors=await self.views(rows), next_page_token=token)

    @grpc_errors
    async def ReadMonitor(self, request, context):
        row = await self._owned(await self._caller(context), request.monitor_id)
        return (await self.views([row]))[0]

    @grpc_errors
    async def UpdateMonitor(self, request, context):
        caller = await self._caller(context)
        paths = update_paths(request, context.invocation_metadata())
        row = await self._owned(caller, request.monitor_id)
        edited = monitor_request(row)
        if paths:
            field_mask_pb2.FieldMask(paths=paths).MergeMessage(request.monitor, edited, replace_message_field=True,
                                                               replace_repeated_field=True)
        try:
            values = validate_monitor(edited, self.guard, min_interval_s=self.min_interval_s)
        except InvalidArgument as exc:
            raise _prefixed(exc, "monitor.") from None
        updated = await self.store.update(row.id, values, rotate_secret=request.rotate_webhook_secret)
        view = (await self.views([updated.monitor], secret=request.rotate_webhook_secret))[0]
        if updated.event is not None:
            # Watchers never see the secret: the published monitor is a copy without it.
            published = monitors_pb2.Monitor()
            published.CopyFrom(view)
            published.webhook_secret = ""
            await self.events.state(row.id, published, event_view(updated.event))
        return view

    @grpc_errors
    async def DeleteMonitor(self, request, context):
        row = await self._owned(await self._caller(context), request.monitor_id)
        await self.store.delete(row.id)
        log.info("deleted monitor %s (%s)", row.id, row.name)
        await self.events.deleted(row.id)
        return monitors_pb2.DeleteMonitorResponse(monitor_id=str(row.id))

    @grpc_errors
    async def ListMonitorRuns(self, request, context):
        row = await self._owned(await self._caller(context), request.monitor_id)
        runs, token = await self.store.list_runs(row.id, page_size=request.page_size, page_token=request.page_token)
        return monitors_pb2.ListMonitorRunsResponse(runs=[run_view(r) for r in runs], next_page_token=token)

    @grpc_errors
    async def ListMonitorEvents(self, request, context):
        row = await self._owned(await self._caller(context), request.monitor_id)
        events, token = await self.store.list_events(row.id, page_size=request.page_size,
                                                     page_token=request.page_token)
        return monitors_pb2.ListMonitorEventsResponse(events=[event_view(e) for e in events], next_page_token=token)

    @grpc_errors
    async def WatchMonitor(self, request, context):
        row = await self._owned(await self._caller(context), request.monitor_id)
        from hostcheck.services.results.monitorwatch import watch_monitor  # written beside the events

        async for event in watch_monitor(self.store, self.live, row.id):
            yield event

    @grpc_errors
    async def ScrapeMonitors(self, request, context):
        caller = await self._caller(context)
        from hostcheck.services.results.monitormetrics import scrape

        text = await scrape(self.store, self._owner(caller), caller.is_admin)
        return httpbody_pb2.HttpBody(content_type="text/plain; version=0.0.4; charset=utf-8", data=text.encode())

    @grpc_errors
    async def ReadStatusPage(self, request, context):
        if not SLUG.match(request.slug):
            raise NotFound(f"no status page {request.slug[:64]!r}")
        rows = await self.store.status_page(request.slug)
        ids = [r.id for r in rows]
        last = await self.store.last_runs(ids)
        uptime = await self.store.uptime(ids)
        monitors = []
        for r in rows:
            run, up = last.get(r.id), uptime.get(r.id)
            at = (run.finished_at or run.started_at or run.scheduled_at) if run is not None else None
            monitors.append(public_view(r, last_run_at=at, uptime_24h=up.day if up else None,
                                        uptime_7d=up.week if up else None))
        return monitors_pb2.StatusPage(slug=request.slug, monitors=monitors)


class MonitorRunsServicer(monitors_pb2_grpc.MonitorRunsServiceServicer):
    """Internal (schedulers only; the gateway does not route it)."""

    def __init__(self, store: MonitorStore, live: LiveState) -> None:
        self.store = store
        self.events = MonitorEvents(live)

    @grpc_errors
    async def ClaimDueRuns(self, request, context):
        if not 1 <= request.limit <= MAX_CLAIM:
            raise InvalidArgument(field="limit", reason=f"must be 1-{MAX_CLAIM}")
        claimed, next_due = await self.store.claim_due_runs(request.scheduler_id, request.limit)
        return monitors_pb2.ClaimDueRunsResponse(runs=[monitors_pb2.ClaimedRun(
            monitor_id=str(c.monitor.id), seq=c.run.seq, check_id=str(c.run.check_id),
            scheduled_at=ts_or_none(c.run.scheduled_at), check=check_request_of(c.monitor.spec),
            created_by_key_id=str(c.monitor.created_by_key_id) if c.monitor.created_by_key_id else "")
            for c in claimed], next_due_at=ts_or_none(next_due))

    @grpc_errors
    async def ReportRunNotStarted(self, request, context):
        monitor_id = require_uuid("monitor_id", request.monitor_id)
        run = await self.store.report_not_started(monitor_id, request.seq, request.code[:64], request.reason[:1000])
        await self.events.run(monitor_id, run_view(run))
        return monitors_pb2.ReportRunNotStartedResponse()

