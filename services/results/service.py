"""The results service: checks, tasks and results in the database; live events to watchers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import cast

from google.protobuf import json_format
from sqlalchemy import func, select

from hostcheck.core import telemetry
from hostcheck.core.checks import require_uuid
from hostcheck.core.config import ResultsConfig
from hostcheck.core.errors import InvalidArgument
from hostcheck.core.metrics import MetricsServer, ResultsMetrics, serve_metrics
from hostcheck.services.grpcserver import Server, start_server
from hostcheck.services.results.models import CheckRow, TaskRow
from hostcheck.services.results.store import (
    TERMINAL_CHECK,
    AgentSnapshot,
    Changes,
    IncomingResult,
    PlannedTask,
    ResultsStore,
)
from hostcheck.services.results.views import check_view, task_view
from hostcheck.services.rpcerrors import grpc_errors
from hostcheck.services.storage import db
from hostcheck.services.storage.livestate import CANCELS_CHANNEL, LiveState, check_channel, create_live_state
from hostcheck.v1 import checks_pb2, registry_pb2, results_pb2, results_pb2_grpc

log = logging.getLogger(__name__)

# A watcher re-reads the check from storage when no event came for this long, so
# an event lost in a Redis restart delays an update but never hides it.
WATCH_RESYNC_S = 5.0
# Snapshot reads for watchers running at once (below the database pool's size).
SNAPSHOT_READS = 8


# JSON {"reason": str, "tasks": [[agent_id, task_id], ...]}: tasks whose agents should stop.

# Live events published concurrently by one write.
PUBLISH_AT_ONCE = 32


class Events:
    """Publishes what a write changed to the check's channel."""

    def __init__(self, store: ResultsStore, live: LiveState) -> None:
        self.store = store
        self.live = live

    async def publish(self, changes: Changes) -> None:
        """Task events first (the write's own view of its tasks, no read back), then done events.

        Only a finished check is read back, for the whole check its done event carries.
        """
        done: list[uuid.UUID] = []
        events: list[tuple[uuid.UUID, results_pb2.WatchCheckResponse]] = []
        for check_id, task_ids in changes.tasks.items():
            state = changes.checks.get(check_id)
            if state is None:
                await self._publish_read_back(check_id, task_ids)
                continue
            events.extend((check_id, results_pb2.WatchCheckResponse(
                event="task", task=task_view(cast(TaskRow, state.tasks[t])), check_status=state.status,
                tasks_done=state.tasks_done, tasks_total=state.tasks_total)) for t in task_ids if t in state.tasks)
            if state.status in TERMINAL_CHECK:
                done.append(check_id)
        # Published a few at a time: a batch of results can change hundreds of tasks.
        for i in range(0, len(events), PUBLISH_AT_ONCE):
            await asyncio.gather(*(self._send(c, e) for c, e in events[i:i + PUBLISH_AT_ONCE]))
        for check_id in done:
            try:
                check = check_view(await self.store.get_check(check_id))
            except Exception:  # noqa: BLE001 - deleted meanwhile
                continue
            await self._send(check_id, results_pb2.WatchCheckResponse(
                event="done", check=check, check_status=check.status, tasks_done=check.tasks_done,
                tasks_total=check.tasks_total))

    async def _publish_read_back(self, check_id: uuid.UUID, task_ids: list[uuid.UUID]) -> None:
        try:
            row = await self.store.get_check(check_id)
        except Exception:  # noqa: BLE001 - deleted meanwhile
            return
        check = check_view(row)
        changed = {str(t) for t in task_ids}
        for task in check.tasks:
            if task.task_id in changed:
                await self._send(check_id, results_pb2.WatchCheckResponse(
                    event="task", task=task, check_status=check.status, tasks_done=check.tasks_done,
                    tasks_total=check.tasks_total))
        if check.status in TERMINAL_CHECK:
            await self._send(check_id, results_pb2.WatchCheckResponse(
                event="done", check=check, check_status=check.status, tasks_done=check.tasks_done,
                tasks_total=check.tasks_total))

    async def _send(self, check_id: uuid.UUID, event: results_pb2.WatchCheckResponse) -> None:
        try:
            await self.live.publish(check_channel(check_id), event.SerializeToString())
        except Exception as exc:  # noqa: BLE001 - watchers resync from storage
            log.warning("cannot publish event of check %s: %s", check_id, exc)


class ResultsServicer(results_pb2_grpc.ResultsServiceServicer):
    def __init__(self, store: ResultsStore, live: LiveState) -> None:
        self.store = store
        self.live = live
        self._reads: dict[uuid.UUID, tuple[float, asyncio.Future]] = {}  # reading now, since when
        self._next_reads: dict[uuid.UUID, asyncio.Future] = {}  # to start when the current one ends
        self._read_slots = asyncio.Semaphore(SNAPSHOT_READS)

    @grpc_errors
    async def GetCheck(self, request, context):
        check_id = require_uuid("check_id", request.check_id)
        return results_pb2.GetCheckResponse(check=check_view(await self.store.get_check(check_id)))

    @grpc_errors
    async def ListChecks(self, request, context):
        rows, token = await self.store.list_checks(page_size=request.page_size, page_token=request.page_token,
                                                   status=request.status, target=request.target)
        return results_pb2.ListChecksResponse(
            checks=[check_view(r, with_tasks=False, tasks_done=d, tasks_total=t) for r, d, t in rows],
            next_page_token=token)

    @grpc_errors
    async def DeleteCheck(self, request, context):
        check_id = require_uuid("check_id", request.check_id)
        pending = await self.store.delete_check(check_id)
        deleted = results_pb2.WatchCheckResponse(event="deleted", check_status="deleted")
        await self.live.publish(check_channel(check_id), deleted.SerializeToString())
        if pending:
            # The schedulers holding these agents tell them to stop (scheduler: CANCELS_CHANNEL).
            await self.live.publish(CANCELS_CHANNEL, json.dumps({
                "reason": f"check {check_id} deleted",
                "tasks": [[str(a), str(t)] for a, t in pending]}).encode())
        return results_pb2.DeleteCheckResponse(check_id=str(check_id))

    @grpc_errors
    async def WatchCheck(self, request, context):
        check_id = require_uuid("check_id", request.check_id)
        async with self.live.subscribe(check_channel(check_id)) as sub:
            subscribed = time.monotonic()
            check = await self._view(check_id, not_before=subscribed)
            yield results_pb2.WatchCheckResponse(event="snapshot", check=check, check_status=check.status,
                                                 tasks_done=check.tasks_done, tasks_total=check.tasks_total)
            if check.status in TERMINAL_CHECK:
                yield results_pb2.WatchCheckResponse(event="done", check=check, check_status=check.status,
                                                     tasks_done=check.tasks_done, tasks_total=check.tasks_total)
                return
            sent = {t.task_id: t.status for t in check.tasks}
            while True:
                raw = await sub.get(timeout=WATCH_RESYNC_S)
                if raw is None:
                    events = await self._resync(check_id, sent)
                else:
                    event = results_pb2.WatchCheckResponse.FromString(raw)
                    events = [event]
                for event in events:
                    if event.event == "deleted":
                        return
                    if event.event == "task":
                        if sent.get(event.task.task_id) == event.task.status:
                            continue
                        sent[event.task.task_id] = event.task.status
                    yield event
                    if event.event == "done":
                        return

    async def _view(self, check_id: uuid.UUID, *, not_before: float) -> checks_pb2.Check:
        """The check as stored now, for watchers: reads are shared and bounded.

        A shared link opened by many people at once would otherwise load the same check (with
        every task and result) once per watcher, and thousands of watchers arriving together
        would exhaust the database pool. A read is shared with every watcher that subscribed
        before it started (`not_before`), so none misses an event; a watcher that arrives
        during a read waits for the next one, which everyone arriving meanwhile shares. At most
        SNAPSHOT_READS reads run at once; the rest queue here rather than time out on the pool.
        """
        current = self._reads.get(check_id)
        read: asyncio.Future | None
        if current is not None and current[0] >= not_before:
            read = current[1]
        else:
            read = self._next_reads.get(check_id)
            if read is None:
                read = asyncio.ensure_future(self._read_after(check_id, current[1] if current else None))
                self._next_reads[check_id] = read
        return check_view(await asyncio.shield(read))

    async def _read_after(self, check_id: uuid.UUID, previous: asyncio.Future | None) -> CheckRow:
        if previous is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(previous)
        async with self._read_slots:
            me = cast(asyncio.Future, asyncio.current_task())
            if self._next_reads.get(check_id) is me:
                del self._next_reads[check_id]
            self._reads[check_id] = (time.monotonic(), me)
            try:
                return await self.store.get_check(check_id)
            finally:
                if self._reads.get(check_id, (0, None))[1] is me:
                    del self._reads[check_id]

    async def _resync(self, check_id: uuid.UUID, sent: dict[str, str]) -> list[results_pb2.WatchCheckResponse]:
        check = await self._view(check_id, not_before=time.monotonic())
        events = [results_pb2.WatchCheckResponse(event="task", task=t, check_status=check.status,
                                                 tasks_done=check.tasks_done, tasks_total=check.tasks_total)
                  for t in check.tasks if sent.get(t.task_id) != t.status]
        if check.status in TERMINAL_CHECK:
            events.append(results_pb2.WatchCheckResponse(event="done", check=check, check_status=check.status,
                                                         tasks_done=check.tasks_done, tasks_total=check.tasks_total))
        return events


def _dt(ts) -> datetime | None:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=UTC)


async def observe_finished(store: ResultsStore, metrics: ResultsMetrics | None, changes: Changes) -> None:
    """Times the checks a write finished and counts their tasks by type and outcome (only when metrics are served).

    Read back from storage, so it is right whichever replica stored the check's
    other results, and a late result (after its task timed out) changes nothing.
    """
    if metrics is None or not metrics.served or not changes.finished_checks:
        return
    ids = list(changes.finished_checks)
    try:
        async with store.sessions() as session:
            checks = (await session.execute(select(CheckRow.created_at, CheckRow.completed_at, CheckRow.status)
                                            .where(CheckRow.id.in_(ids)))).all()
            tasks = (await session.execute(select(TaskRow.check_type, TaskRow.status, func.count())
                                           .where(TaskRow.check_id.in_(ids))
                                           .group_by(TaskRow.check_type, TaskRow.status))).all()
    except Exception as exc:  # noqa: BLE001 - metrics never fail a write
        log.warning("cannot read finished checks for metrics: %s", exc)
        return
    metrics.finished(checks, tasks)


class ResultsIngestServicer(results_pb2_grpc.ResultsIngestServiceServicer):
    def __init__(self, store: ResultsStore, events: Events, metrics: ResultsMetrics | None = None) -> None:
        self.store = store
        self.events = events
        self.metrics = metrics

    @grpc_errors
    async def OpenCheck(self, request, context):
        with telemetry.span("store", parent=telemetry.metadata_of(context), kind=telemetry.SpanKind.SERVER,
                            attributes={"rpc.method": "OpenCheck", "hostcheck.check_id": request.check_id}):
            check_id = require_uuid("check_id", request.check_id)
            if not request.request.target:
                raise InvalidArgument(field="request.target", reason="must not be empty")
            tasks = []
            for i, t in enumerate(request.tasks):
                tasks.append(PlannedTask(task_id=require_uuid(f"tasks[{i}].task_id", t.task_id),
                                         agent_id=require_uuid(f"tasks[{i}].agent_id", t.agent_id),
                                         check_type=t.check_type, deadline=_dt(t.deadline) or _dt(request.deadline),
                                         agent=AgentSnapshot(name=t.agent_name, location=t.location,
                                                             region=t.region, country=t.country, city=t.city)))
            deadline = _dt(request.deadline) or datetime.now(UTC) + timedelta(minutes=2)
            row = await self.store.open_check(
                check_id=check_id, target=request.request.target, check_types=list(request.request.checks),
                request=json_format.MessageToDict(request.request, preserving_proto_field_name=True),
                tasks=tasks, deadline=deadline, client_ip=request.client_ip)
        return results_pb2.OpenCheckResponse(check=check_view(row))

    @grpc_errors
    async def RecordResults(self, request, context):
        incoming = []
        for i, item in enumerate(request.results):
            r = item.result
            incoming.append(IncomingResult(
                agent_id=require_uuid(f"results[{i}].agent_id", item.agent_id),
                task_id=require_uuid(f"results[{i}].result.task_id", r.task_id), success=r.success,
                data=json_format.MessageToDict(r.data, preserving_proto_field_name=True), error=r.error[:4096],
                error_code=r.error_code[:64],
                duration_ms=r.duration_ms, started_at=_dt(r.started_at)))
        # One store span per result, the child of the agent's run of its task (the batch mixes checks).
        with telemetry.spans("store", ((item.result.trace_context, {
                "rpc.method": "RecordResults", "hostcheck.check_id": item.result.check_id,
                "hostcheck.task_id": item.result.task_id, "hostcheck.batch": len(request.results)})
                for item in request.results), kind=telemetry.SpanKind.SERVER):
            changes = await self.store.record_results(incoming)
        await observe_finished(self.store, self.metrics, changes)
        await self.events.publish(changes)
        return results_pb2.RecordResultsResponse(stored_task_ids=changes.stored, unknown_task_ids=changes.unknown)

    @grpc_errors
    async def GetAgentResultStats(self, request, context):
        agent_id = require_uuid("agent_id", request.agent_id)
        rows, extra = await self.store.agent_stats(agent_id)
        by_type = [registry_pb2.CheckTypeStats(check_type=t, total=n, succeeded=ok, failed=n - ok,
                                               avg_duration_ms=float(avg or 0.0)) for t, n, ok, avg in rows]
        return results_pb2.GetAgentResultStatsResponse(
            results_total=sum(s.total for s in by_type), results_succeeded=sum(s.succeeded for s in by_type),
            tasks_timed_out=extra["timed_out"], by_type=by_type)


class DeadlineSweeper:
    """Ends overdue tasks as timed_out with a reason; several replicas may run it at once."""

    def __init__(self, store: ResultsStore, live: LiveState, events: Events, *, grace_s: float,
                 interval_s: float, offline_after_s: float = 30.0,
                 metrics: ResultsMetrics | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self.live = live
        self.events = events
        self.grace = timedelta(seconds=grace_s)
        self.interval_s = interval_s
        self.offline_after_s = offline_after_s
        # agent id -> when this sweeper first saw it without presence while it had pending tasks
        self._absent_since: dict[uuid.UUID, float] = {}
        self._next_offline_sweep = 0.0

    async def sweep_offline(self) -> int:
        """Ends pending tasks of agents offline (no presence) for offline_after_s, before their deadline.

        Runs at most every tenth of that window: it reads the presence of every agent with pending
        tasks, which under a big fan-out is thousands of keys.
        """
        if time.monotonic() < self._next_offline_sweep:
            return 0
        self._next_offline_sweep = time.monotonic() + self.offline_after_s / 10
        agents = await self.store.pending_agents()
        try:
            online = await self.live.get_presence([str(a) for a in agents])
        except Exception:  # noqa: BLE001 - live state down: cannot tell who is offline, so end nothing
            return 0
        now = time.monotonic()
        self._absent_since = {a: self._absent_since.get(a, now) for a in agents if str(a) not in online}
        gone = [a for a, since in self._absent_since.items() if now - since >= self.offline_after_s]
        if not gone:
            return 0
        names = await self.store.agent_names(gone)
        reasons = {task_id: f"agent {names.get(agent_id, agent_id)} offline (no heartbeat for "
                            f"{self.offline_after_s:g} s) before reporting a result"
                   for task_id, agent_id in await self.store.pending_tasks_of(gone)}
        changes = await self.store.time_out(reasons, datetime.now(UTC))
        await observe_finished(self.store, self.metrics, changes)
        await self.events.publish(changes)
        return sum(len(v) for v in changes.tasks.values())

    async def sweep_once(self) -> int:
        now = datetime.now(UTC)
        overdue = await self.store.overdue_tasks(now - self.grace)
        if not overdue:
            return 0
        agent_ids = sorted({str(a) for _, a in overdue})
        try:
            online = await self.live.get_presence(agent_ids)
        except Exception:  # noqa: BLE001 - reasons get vaguer, tasks still end
            online = {}
        names = await self.store.agent_names([uuid.UUID(a) for a in agent_ids])
        reasons = {}
        for task_id, agent_id in overdue:
            name = names.get(agent_id, str(agent_id))
            if str(agent_id) in online:
                reasons[task_id] = f"agent {name} did not report a result before the deadline"
            else:
                reasons[task_id] = f"agent {name} went offline (no heartbeat) before reporting a result"
        changes = await self.store.time_out(reasons, now)
        await observe_finished(self.store, self.metrics, changes)
        await self.events.publish(changes)
        return sum(len(v) for v in changes.tasks.values())

    async def run(self) -> None:
        while True:
            try:
                swept = await self.sweep_once() + await self.sweep_offline()
                if swept:
                    log.info("timed out %d overdue task(s)", swept)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - storage outage: try again next round
                log.warning("deadline sweep failed: %s", exc)
            await asyncio.sleep(self.interval_s)


class ResultsService:
    """The running results service: server, storage, live state and sweeper."""

    def __init__(self, server: Server, engine, live: LiveState, sweeper_task: asyncio.Task, owns_live: bool,
                 metrics_server: MetricsServer | None = None) -> None:
        self.server = server
        self.metrics_server = metrics_server
        self.engine = engine
        self.live = live
        self.sweeper_task = sweeper_task
        self.owns_live = owns_live

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        self.sweeper_task.cancel()
        with contextlib.suppress(BaseException):
            await self.sweeper_task
        await self.server.stop()
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await self.engine.dispose()
        if self.owns_live:
            await self.live.close()


async def start(config: ResultsConfig, *, live: LiveState | None = None) -> ResultsService:
    if config.migrate:
        await asyncio.to_thread(db.migrate, config.database_url)
    engine = db.create_engine(config.database_url)
    store = ResultsStore(db.sessionmaker(engine))
    owns_live = live is None
    live = live or create_live_state(config.live_state_url, config.live_state_prefix)
    events = Events(store, live)
    metrics = ResultsMetrics()
    metrics.served = bool(config.metrics_port)
    server = await start_server(config.listen, [
        (results_pb2_grpc.add_ResultsServiceServicer_to_server, ResultsServicer(store, live)),
        (results_pb2_grpc.add_ResultsIngestServiceServicer_to_server, ResultsIngestServicer(store, events, metrics)),
    ], [results_pb2.DESCRIPTOR.services_by_name["ResultsService"].full_name,
        results_pb2.DESCRIPTOR.services_by_name["ResultsIngestService"].full_name])
    sweeper = DeadlineSweeper(store, live, events, grace_s=config.task_grace_s, interval_s=config.sweep_interval_s,
                              offline_after_s=config.offline_after_s, metrics=metrics)
    task = asyncio.create_task(sweeper.run(), name="deadline-sweeper")
    metrics_server = await serve_metrics(metrics.registry, config.metrics_port, near=config.listen)
    return ResultsService(server, engine, live, task, owns_live, metrics_server)

