"""The results service: checks, tasks and results in the database; live events to watchers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
import weakref
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import cast

from google.protobuf import json_format
from sqlalchemy import func, select

from hostcheck.core import telemetry
from hostcheck.core.checks import require_uuid
from hostcheck.core.config import ResultsConfig
from hostcheck.core.errors import InvalidArgument, PermissionDenied, ResourceExhausted, Unauthenticated
from hostcheck.core.limits import MAX_TASKS_PER_CHECK
from hostcheck.core.metrics import MetricsServer, ResultsMetrics, serve_metrics
from hostcheck.core.targets import TargetGuard
from hostcheck.services.auth import ANONYMOUS, KEY, Caller, Verify, caller_of
from hostcheck.services.grpcserver import Server, client_ip, start_server
from hostcheck.services.results.ingest import Rejected, judge
from hostcheck.services.results.keys import CallerAuthServicer, KeysServicer, KeyStore, LocalVerifier
from hostcheck.services.results.models import CheckRow, TaskRow
from hostcheck.services.results.monitoreval import MonitorEvaluator
from hostcheck.services.results.monitors import MonitorStore
from hostcheck.services.results.monitorservice import MonitorRunsServicer, MonitorsServicer
from hostcheck.services.results.monitorviews import run_view
from hostcheck.services.results.monitorwatch import MonitorEvents
from hostcheck.services.results.retention import Retention
from hostcheck.services.results.runopener import RunCheck, RunOpener
from hostcheck.services.results.store import (
    TERMINAL_CHECK,
    TERMINAL_TASK,
    AgentSnapshot,
    Changes,
    CheckOwner,
    IncomingResult,
    PlannedTask,
    ResultsStore,
)
from hostcheck.services.results.views import check_view, task_view
from hostcheck.services.results.webhooks import Poster, WebhookDeliverer
from hostcheck.services.rpcerrors import grpc_errors
from hostcheck.services.storage import db
from hostcheck.services.storage.livestate import (
    CANCELS_CHANNEL,
    LiveState,
    Subscription,
    check_channel,
    create_live_state,
)
from hostcheck.v1 import (
    checks_pb2,
    keys_pb2,
    keys_pb2_grpc,
    monitors_pb2,
    monitors_pb2_grpc,
    registry_pb2,
    results_pb2,
    results_pb2_grpc,
    scheduler_pb2,
)

log = logging.getLogger(__name__)
# A write of at most this many task events publishes them without first asking Redis whether the
# checks are watched (Events.publish_tasks).
UNCHECKED_WRITE_EVENTS = 16

# A watcher that got no event for this long compares the check's progress in storage with what it
# was sent (a small read); storage still ahead of it a whole interval later means an event was lost
# (a failed publish, a publisher gone between its commit and its publish): then the whole check is
# read. So a lost event delays an update but never hides it, and events in flight are not re-read.
# A lost connection to Redis is caught up at once (Subscription.take_gap).
WATCH_RESYNC_S = 5.0
# Watcher bounds (per results replica; docs/security.md). Events of a check waiting for one
# watcher: past this the watcher is dropped (RESOURCE_EXHAUSTED); a client that stops reading
# holds at most this many events, which are shared with every other watcher of the check (the
# same bytes). Above the most one check publishes at once (a result and a start per task).
WATCH_MAX_PENDING = 2 * MAX_TASKS_PER_CHECK + 64
WATCHERS_PER_CHECK = 500
WATCHERS_PER_CLIENT_IP = 32
# Snapshot reads for watchers running at once (below the database pool's size).
SNAPSHOT_READS = 8


# JSON {"reason": str, "tasks": [[agent_id, task_id], ...]}: tasks whose agents should stop.

# A progress message is cut to this many characters (agents send at most 256).
PROGRESS_MESSAGE_LEN = 256


class Events:
    """Publishes what a write changed to the check's channel."""

    def __init__(self, store: ResultsStore, live: LiveState) -> None:
        self.store = store
        self.live = live

    async def publish(self, changes: Changes) -> None:
        """Task events first (the write's own view of its tasks, no read back), then done events.

        A write's events go out together (LiveState.publish_many: one Redis round trip), and the
        checks it finished are read back together, for the whole check each done event carries
        (one bulk read, after the task events are out). Before, each event was its own PUBLISH and
        each finished check its own ORM load, one after another: a write finishing 170 checks
        held every later write's events back by seconds (issue 17).
        """
        read_back = await self.publish_tasks(changes)
        if read_back:
            await self.publish_read_back(read_back)

    async def publish_tasks(self, changes: Changes) -> dict[uuid.UUID, list[uuid.UUID]]:
        """Publishes the write's task events; returns the checks to read back for the rest:
        check id -> its changed tasks whose events need the read (none: just its done event)."""
        messages: list[tuple[str, bytes]] = []
        read_back: dict[uuid.UUID, list[uuid.UUID]] = {}
        if sum(map(len, changes.tasks.values())) <= UNCHECKED_WRITE_EVENTS and all(
                (state := changes.checks.get(c)) is not None and (state.status not in TERMINAL_CHECK or c in changes.done)
                for c in changes.tasks):
            # A small write needing no read-back: its few events cost less to build and publish to
            # nobody than asking Redis who listens, a round trip on every check's path to done.
            watched = set(changes.tasks)
        else:
            watched = await self._watched(list(changes.tasks))
        for check_id, task_ids in changes.tasks.items():
            if check_id not in watched:
                continue
            state = changes.checks.get(check_id)
            if state is None:
                read_back[check_id] = task_ids
                continue
            channel = check_channel(check_id)
            done = changes.done.get(check_id)
            if done is not None:  # finished, and read in the write itself: no read back
                messages.extend(_check_events(channel, check_view(cast(CheckRow, done)), task_ids))
                continue
            messages.extend((channel, results_pb2.WatchCheckResponse(
                event="task", task=task_view(cast(TaskRow, state.tasks[t])), check_status=state.status,
                tasks_done=state.tasks_done, tasks_total=state.tasks_total).SerializeToString())
                for t in task_ids if t in state.tasks)
            if state.status in TERMINAL_CHECK:
                read_back[check_id] = []
        await self._send_many(messages)
        return read_back

    async def _watched(self, check_ids: list[uuid.UUID]) -> set[uuid.UUID]:
        """Those of these checks someone watches now (on any replica; one PUBSUB NUMSUB).

        Events of the others would reach nobody: building them (a view per task, timestamps and
        the result's data through json_format) was a quarter of the results service's CPU when
        ingesting (issue 17). A watcher subscribing later reads its snapshot after subscribing,
        so it sees this write, which is committed already.
        """
        try:
            channels = {check_channel(c): c for c in check_ids}
            return {channels[ch] for ch in await self.live.subscribed(list(channels))}
        except Exception as exc:  # noqa: BLE001 - publish to all rather than lose events
            log.warning("cannot tell which checks are watched: %s", exc)
            return set(check_ids)

    async def publish_read_back(self, changed: dict[uuid.UUID, list[uuid.UUID]]) -> None:
        """Reads these checks back: events of their changed tasks, and done events of the finished ones."""
        try:
            rows = await self.store.read_checks(list(changed))
        except Exception as exc:  # noqa: BLE001 - watchers resync from storage
            log.warning("cannot read back %d check(s) to publish their events: %s", len(changed), exc)
            return
        messages: list[tuple[str, bytes]] = []
        for check_id, task_ids in changed.items():
            row = rows.get(check_id)
            if row is None:
                continue  # deleted meanwhile
            messages.extend(_check_events(check_channel(check_id), check_view(cast(CheckRow, row)), task_ids))
        await self._send_many(messages)

    async def publish_progress(self, check_id: uuid.UUID, progress: scheduler_pb2.TaskProgress) -> None:
        await self._send(check_id, results_pb2.WatchCheckResponse(event="progress", progress=progress,
                                                                  check_status="in_progress"))

    async def _send(self, check_id: uuid.UUID, event: results_pb2.WatchCheckResponse) -> None:
        try:
            await self.live.publish(check_channel(check_id), event.SerializeToString())
        except Exception as exc:  # noqa: BLE001 - watchers resync from storage
            log.warning("cannot publish event of check %s: %s", check_id, exc)

    async def _send_many(self, messages: list[tuple[str, bytes]]) -> None:
        if not messages:
            return
        try:
            await self.live.publish_many(messages)
        except Exception as exc:  # noqa: BLE001 - watchers resync from storage
            log.warning("cannot publish %d event(s): %s", len(messages), exc)


def _check_events(channel: str, check: checks_pb2.Check, task_ids: list[uuid.UUID]) -> list[tuple[str, bytes]]:
    """The task events of these tasks of `check` (a view of it as stored), then its done event if it ended."""
    wanted = {str(t) for t in task_ids}
    messages = [(channel, results_pb2.WatchCheckResponse(
        event="task", task=task, check_status=check.status, tasks_done=check.tasks_done,
        tasks_total=check.tasks_total).SerializeToString()) for task in check.tasks if task.task_id in wanted]
    if check.status in TERMINAL_CHECK:
        messages.append((channel, results_pb2.WatchCheckResponse(
            event="done", check=check, check_status=check.status, tasks_done=check.tasks_done,
            tasks_total=check.tasks_total).SerializeToString()))
    return messages


# A task's status moves forward through these steps only (Watcher.caught_up).
_TASK_STEP = {"pending": 0, "running": 1, **dict.fromkeys(TERMINAL_TASK, 2)}
_STEPS = (0, 1, 2)


class Watcher:
    """One WatchCheck stream, holding its slot under the caps until it ends."""

    def __init__(self, check_id: uuid.UUID) -> None:
        self.check_id = check_id
        self.dropped = False
        # task id -> the status this stream last sent for it
        self.sent: dict[str, str] = {}
        # What storage had (check status, tasks by status) when it was last found ahead of `sent`.
        self.behind: tuple[str, dict[str, int]] | None = None
        # The small read of the check's progress running for this stream's resync, if any.
        self.checking: asyncio.Future | None = None

    def caught_up(self, progress: tuple[str, dict[str, int]]) -> bool:
        """Whether this stream was sent all of `progress` (a check's status and its tasks' count by
        status). A task's status only moves forward (pending, running, an end), so it was when, at
        each step, as many tasks were sent at or past it as storage has there; a finished check's
        `done` ends the stream, so a stream still running was not sent a finished check."""
        if progress[0] in TERMINAL_CHECK:
            return False
        sent = Counter(_TASK_STEP.get(s, 0) for s in self.sent.values())
        stored: Counter[int] = Counter()
        for status, n in progress[1].items():
            stored[_TASK_STEP.get(status, 0)] += n
        return all(sum(sent[s] for s in _STEPS if s >= step) >= sum(stored[s] for s in _STEPS if s >= step)
                   for step in _STEPS[1:])

    def drop(self) -> None:
        """Called at the first event past WATCH_MAX_PENDING: the subscription has already freed
        what waited and takes nothing more; the stream ends with RESOURCE_EXHAUSTED as soon as
        its task runs. A task blocked in a send to a client that reads nothing stays blocked
        holding that one message (grpcio cannot cancel a send from here), and its slot, until
        the client reads or goes away (through Envoy: stream_idle_timeout)."""
        if not self.dropped:
            self.dropped = True
            log.info("dropping a watcher of check %s: more than %d events waited for it",
                     self.check_id, WATCH_MAX_PENDING)


class Watchers:
    """Counts watchers per check and per client IP; refuses past the caps with RESOURCE_EXHAUSTED."""

    def __init__(self, per_check: int = WATCHERS_PER_CHECK, per_ip: int = WATCHERS_PER_CLIENT_IP) -> None:
        self.per_check = per_check
        self.per_ip = per_ip
        self.by_check: Counter[uuid.UUID] = Counter()
        self.by_ip: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def admit(self, check_id: uuid.UUID, ip: str) -> AsyncIterator[Watcher]:
        if self.by_check[check_id] >= self.per_check:
            raise ResourceExhausted(f"check {check_id} has {self.per_check} watchers already", retry_after_s=10)
        if self.by_ip[ip] >= self.per_ip:
            raise ResourceExhausted(f"{ip} watches {self.per_ip} checks already", retry_after_s=10)
        self.by_check[check_id] += 1
        self.by_ip[ip] += 1
        try:
            yield Watcher(check_id)
        finally:
            self.by_check[check_id] -= 1
            if self.by_check[check_id] <= 0:
                del self.by_check[check_id]
            self.by_ip[ip] -= 1
            if self.by_ip[ip] <= 0:
                del self.by_ip[ip]


class WatchEvents:
    """Watch events decoded and encoded once per process, however many watchers a check has.

    Every subscriber of a channel gets the same bytes object (LiveState.subscribe): it is
    decoded once here (the watcher reads its kind and task), and sent to each watcher as those
    bytes (services/grpcserver.py sends bytes as they are). A snapshot is encoded once per
    shared read. Before, each watcher decoded and re-encoded each event, and held its own copy.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._decoded: OrderedDict[int, tuple[bytes, results_pb2.WatchCheckResponse]] = OrderedDict()
        self._raw_of: dict[int, bytes] = {}
        self._views: OrderedDict[tuple[str, int], tuple[checks_pb2.Check, bytes]] = OrderedDict()

    def decode(self, raw: bytes) -> results_pb2.WatchCheckResponse:
        hit = self._decoded.get(id(raw))
        if hit is not None and hit[0] is raw:
            return hit[1]
        event = results_pb2.WatchCheckResponse.FromString(raw)
        self._decoded[id(raw)] = (raw, event)
        self._raw_of[id(event)] = raw
        while len(self._decoded) > self.size:
            _, (_, old) = self._decoded.popitem(last=False)
            self._raw_of.pop(id(old), None)
        return event

    def encoded(self, event: results_pb2.WatchCheckResponse) -> bytes | results_pb2.WatchCheckResponse:
        """The bytes `event` was decoded from, or the event itself (made here, e.g. by a resync)."""
        raw = self._raw_of.get(id(event))
        if raw is not None and self._decoded.get(id(raw), (None, None))[1] is event:
            return raw
        return event

    def encoded_view(self, kind: str, check: checks_pb2.Check) -> bytes:
        """A snapshot or done event of a (shared) view, encoded once."""
        hit = self._views.get((kind, id(check)))
        if hit is not None and hit[0] is check:
            return hit[1]
        raw = results_pb2.WatchCheckResponse(event=kind, check=check, check_status=check.status,
                                             tasks_done=check.tasks_done,
                                             tasks_total=check.tasks_total).SerializeToString()
        self._views[(kind, id(check))] = (check, raw)
        while len(self._views) > 8:
            self._views.popitem(last=False)
        return raw


class ResultsServicer(results_pb2_grpc.ResultsServiceServicer):
    def __init__(self, store: ResultsStore, live: LiveState, verify: Verify, *,
                 watchers: Watchers | None = None) -> None:
        self.store = store
        self.live = live
        self.verify = verify
        self._reads: dict[uuid.UUID, tuple[float, asyncio.Future]] = {}  # reading now, since when
        self._next_reads: dict[uuid.UUID, asyncio.Future] = {}  # to start when the current one ends
        self._read_slots = asyncio.Semaphore(SNAPSHOT_READS)
        self._progress_reads: dict[uuid.UUID, asyncio.Future] = {}  # resyncs' small reads (_progress)
        # One view per read, shared by every watcher that shares the read (and encoded once, see WatchEvents).
        self._views: weakref.WeakKeyDictionary[asyncio.Future, tuple[CheckRow, checks_pb2.Check]] = \
            weakref.WeakKeyDictionary()
        self.watchers = watchers or Watchers()
        self.events = WatchEvents()

    @grpc_errors
    async def GetCheck(self, request, context):
        check_id = require_uuid("check_id", request.check_id)
        return results_pb2.GetCheckResponse(check=check_view(await self.store.get_check(check_id)))

    async def ReadCheck(self, request, context):
        """REST's GetCheck: the check itself, unwrapped (GetCheck turns errors into statuses)."""
        return (await self.GetCheck(results_pb2.GetCheckRequest(check_id=request.check_id), context)).check

    @grpc_errors
    async def ListChecks(self, request, context):
        caller = await caller_of(context, self.verify)
        rows, token = await self.store.list_checks(page_size=request.page_size, page_token=request.page_token,
                                                   status=request.status, target=request.target,
                                                   owner=listing_owner(caller, datetime.now(UTC)),
                                                   monitor_id=require_uuid("monitor_id", request.monitor_id)
                                                   if request.monitor_id else None)
        return results_pb2.ListChecksResponse(
            checks=[check_view(r, with_tasks=False, counts=c) for r, c in rows],
            next_page_token=token)

    @grpc_errors
    async def DeleteCheck(self, request, context):
        check_id = require_uuid("check_id", request.check_id)
        may_delete(await caller_of(context, self.verify), await self.store.check_owner(check_id))
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
        async with self.watchers.admit(check_id, client_ip(context)) as watcher, \
                self.live.subscribe(check_channel(check_id), max_pending=WATCH_MAX_PENDING) as sub:
            # A client that stopped reading blocks this stream in a send while its events pile up:
            # at the first event past WATCH_MAX_PENDING the stream is dropped (RESOURCE_EXHAUSTED)
            # and its events are freed (it may watch again and get a fresh snapshot).
            sub.on_overflow = watcher.drop
            subscribed = time.monotonic()
            check = await self._view(check_id, not_before=subscribed)
            yield self.events.encoded_view("snapshot", check)
            if check.status in TERMINAL_CHECK:
                yield self.events.encoded_view("done", check)
                return
            sent = watcher.sent
            sent.update((t.task_id, t.status) for t in check.tasks)
            silence_at = time.monotonic() + WATCH_RESYNC_S
            while True:
                raw = await sub.get(timeout=max(0.0, silence_at - time.monotonic()))
                if sub.overflowed:
                    raise ResourceExhausted(f"watch of check {check_id} dropped: more than {WATCH_MAX_PENDING} "
                                            f"events waited to be read; watch again", retry_after_s=1)
                now = time.monotonic()
                silent = raw is None and now >= silence_at  # else an event, or woken (Subscription.wake)
                if raw is not None or silent:
                    silence_at = now + WATCH_RESYNC_S
                events = [] if raw is None else [self.events.decode(raw)]
                if raw is None or sub.gap or watcher.checking is not None:
                    events += await self._resync(watcher, sub, silent=silent)
                for event in events:
                    if event.event == "deleted":
                        yield event
                        return
                    if event.event == "task":
                        before = sent.get(event.task.task_id)
                        # A start published after its task's result (two replicas, two writes) is stale.
                        if before == event.task.status or (event.task.status == "running" and before in TERMINAL_TASK):
                            continue
                        sent[event.task.task_id] = event.task.status
                    elif event.event == "progress" and sent.get(event.progress.task_id) in TERMINAL_TASK:
                        continue  # forwarded apart from results, it may arrive after its task's result
                    yield self.events.encoded(event)
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
        row = await asyncio.shield(read)
        shared = self._views.get(read)
        if shared is None or shared[0] is not row:
            shared = (row, check_view(row))
            self._views[read] = shared
        return shared[1]

    def _progress(self, check_id: uuid.UUID) -> asyncio.Future:
        """ResultsStore.check_progress running, one read per check at a time, shared by the watchers
        that ask meanwhile; it resolves to None when the check is unknown or unreadable. Watchers
        do not await it: they keep sending events while it runs (see _resync)."""
        read = self._progress_reads.get(check_id)
        if read is None:
            read = asyncio.ensure_future(self._read_progress(check_id))
            self._progress_reads[check_id] = read
            read.add_done_callback(
                lambda done: self._progress_reads.pop(check_id) if self._progress_reads.get(check_id) is done else None)
        return read

    async def _read_progress(self, check_id: uuid.UUID) -> tuple[str, dict[str, int]] | None:
        try:
            async with self._read_slots:
                return await self.store.check_progress(check_id)
        except Exception:  # noqa: BLE001 - the whole read decides (and reports) instead
            return None

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

    async def _resync(self, watcher: Watcher, sub: Subscription, *, silent: bool) -> list[results_pb2.WatchCheckResponse]:
        """What the watcher missed: called after WATCH_RESYNC_S without an event (`silent`), when its
        subscription reports a gap (lost and made again: the whole check is read at once), and
        when its small read below is done (the subscription is woken then).

        After a silence the watcher starts a small read (the check's status, its tasks' count by
        status; one read per check shared by the watchers asking meanwhile) and goes on sending
        events while it runs. Storage no further than what the watcher was sent then: nothing
        missed. Storage ahead: events may be on their way (stored, not yet published: in a burst
        the publishing chain is behind by up to seconds), so the watcher only notes what storage
        had (`Watcher.behind`); if at its next silence it still was not sent that much, the events
        were lost and the whole check is read. Before, a silent watcher waited for its reads and read
        the whole check whenever storage was ahead: 386 watchers doing so during a burst of events
        held the events back by seconds (issue 17, docs/benchmarks.md)."""
        check_id = watcher.check_id
        if not sub.take_gap():
            checking = watcher.checking
            if checking is None:
                if silent:
                    watcher.checking = checking = self._progress(check_id)
                    checking.add_done_callback(lambda _: sub.wake())
                return []
            if not checking.done():
                return []
            watcher.checking = None
            progress = None if checking.cancelled() else checking.result()
            if progress is not None:
                if watcher.caught_up(progress):
                    watcher.behind = None
                    return []
                if watcher.behind is None or watcher.caught_up(watcher.behind):
                    watcher.behind = progress  # on their way, maybe: look again at the next silence
                    return []
        watcher.behind = watcher.checking = None
        sent = watcher.sent
        check = await self._view(check_id, not_before=time.monotonic())
        events = [results_pb2.WatchCheckResponse(event="task", task=t, check_status=check.status,
                                                 tasks_done=check.tasks_done, tasks_total=check.tasks_total)
                  for t in check.tasks if sent.get(t.task_id) != t.status]
        if check.status in TERMINAL_CHECK:
            events.append(results_pb2.WatchCheckResponse(event="done", check=check, check_status=check.status,
                                                         tasks_done=check.tasks_done, tasks_total=check.tasks_total))
        return events


# How far back an anonymous caller's own checks are listed (by its client IP).
ANONYMOUS_LIST_WINDOW = timedelta(hours=24)


def listing_owner(caller: Caller, now: datetime) -> CheckOwner | None:
    """Whose checks ListChecks shows: the admin every check, a key its own, anyone else its IP's last 24 h."""
    if caller.is_admin:
        return None
    if caller.role == KEY:
        return CheckOwner(key_id=uuid.UUID(caller.key_id))
    return CheckOwner(client_ip=caller.ip, since=now - ANONYMOUS_LIST_WINDOW)


def may_delete(caller: Caller, owner_key_id: uuid.UUID | None) -> None:
    """The creating key or the admin token; an anonymous check only the admin token."""
    if caller.is_admin:
        return
    if caller.role == ANONYMOUS:
        raise Unauthenticated("deleting a check needs the API key that created it (authorization: Bearer <key>)")
    if owner_key_id is None or str(owner_key_id) != caller.key_id:
        raise PermissionDenied("only the API key that created this check (or the admin token) may delete it")


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


# Writes whose live events may still be going out when RecordResults answers; one more waits.
PUBLISH_BACKLOG = 8


class ResultsIngestServicer(results_pb2_grpc.ResultsIngestServiceServicer):
    def __init__(self, store: ResultsStore, events: Events, metrics: ResultsMetrics | None = None, *,
                 monitor_eval: MonitorEvaluator | None = None) -> None:
        self.store = store
        self.events = events
        self.metrics = metrics
        # Evaluates the monitor runs among the checks a write finished (off the publishing path).
        self.monitor_eval = monitor_eval
        self.run_opener = RunOpener(store)  # monitor runs' OpenCheck, batched
        self._backlog = asyncio.Semaphore(PUBLISH_BACKLOG)
        self._last_publish: asyncio.Task | None = None
        self._after: set[asyncio.Task] = set()  # done events still going out (_after_task_events)

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
            monitor_id = require_uuid("monitor_id", request.monitor_id) if request.monitor_id else None
            owner = require_uuid("created_by_key_id", request.created_by_key_id) if request.created_by_key_id else None
            target, check_types = request.request.target, list(request.request.checks)
            as_dict = json_format.MessageToDict(request.request, preserving_proto_field_name=True)
            if monitor_id is not None:  # runs arrive together: opened in batches (services/results/runopener.py)
                row = await self.run_opener.open(RunCheck(
                    check_id=check_id, target=target, check_types=check_types, request=as_dict, tasks=tasks,
                    deadline=deadline, client_ip=request.client_ip, created_by_key_id=owner, monitor_id=monitor_id,
                    monitor_run=request.monitor_run))
            else:
                row = await self.store.open_check(
                    check_id=check_id, target=target, check_types=check_types, request=as_dict, tasks=tasks,
                    deadline=deadline, client_ip=request.client_ip, created_by_key_id=owner)
        if monitor_id is not None and row.started_run is not None:
            await MonitorEvents(self.events.live).run(monitor_id, run_view(row.started_run))
        return results_pb2.OpenCheckResponse(check=check_view(row))

    @grpc_errors
    async def RecordResults(self, request, context):
        """Judges each result on its own (services/results/ingest.py) and stores the batch: every item
        is answered stored, quarantined, unknown or rejected, so the scheduler acknowledges them all."""
        now = datetime.now(UTC)
        incoming: list[IncomingResult] = []
        rejected: list[Rejected] = []
        for i, item in enumerate(request.results):
            verdict = judge(item, i, now)
            if isinstance(verdict, Rejected):
                rejected.append(verdict)
            else:
                incoming.append(verdict)
        # One store span per result, the child of the agent's run of its task (the batch mixes checks).
        with telemetry.spans("store", ((item.result.trace_context, {
                "rpc.method": "RecordResults", "hostcheck.check_id": item.result.check_id[:64],
                "hostcheck.task_id": item.result.task_id[:64], "hostcheck.batch": len(request.results)})
                for item in request.results), kind=telemetry.SpanKind.SERVER):
            changes = await self.store.record_results(incoming)
        self._report_unstored(rejected, changes)
        await self._publish_after_reply(changes)
        return results_pb2.RecordResultsResponse(
            stored_task_ids=changes.stored, unknown_task_ids=changes.unknown,
            quarantined_task_ids=changes.quarantined,
            rejected_task_ids=[r.task_id for r in rejected] + [t for t, _ in changes.rejected])

    async def _publish_after_reply(self, changes: Changes) -> None:
        """Publishes a write's live events (and times its finished checks) after the reply goes out.

        Publishing a batch's hundreds of task events took longer than storing them, and the
        scheduler has two calls in flight: answering first lets the next batch be stored meanwhile
        (issue 17). Writes publish one after another, in the order they were stored; at most
        PUBLISH_BACKLOG wait, then the next call waits for room. An event lost to a crash meanwhile
        is caught up by the watchers' resync from storage (WATCH_RESYNC_S).
        """
        await self._backlog.acquire()
        previous = self._last_publish

        async def publish() -> None:
            handed_on = False
            try:
                if previous is not None:
                    with contextlib.suppress(BaseException):
                        await previous
                read_back = await self.events.publish_tasks(changes)
                # Done events (a read of the finished checks), the monitors' evaluation and the
                # metrics' reads go on their own: the next write's task events do not wait for
                # them (issue 17). Each check's done event still follows its task events.
                after = asyncio.create_task(self._after_task_events(changes, read_back), name="publish-done")
                self._after.add(after)
                after.add_done_callback(self._after.discard)
                handed_on = True  # it releases the backlog
            except Exception as exc:  # noqa: BLE001 - watchers resync from storage
                log.warning("cannot publish the events of a write: %s", exc)
            finally:
                if not handed_on:
                    self._backlog.release()

        self._last_publish = asyncio.create_task(publish(), name="publish-results")

    async def _after_task_events(self, changes: Changes, read_back: dict[uuid.UUID, list[uuid.UUID]]) -> None:
        try:
            if read_back:
                await self.events.publish_read_back(read_back)
            if self.monitor_eval is not None:  # less the checks the write read and found no monitor's run
                self.monitor_eval.checks_finished_soon(
                    c for c in changes.finished_checks if c not in changes.done or changes.done[c].monitor_id)
            await observe_finished(self.store, self.metrics, changes)
        except Exception as exc:  # noqa: BLE001 - watchers resync from storage
            log.warning("cannot publish the events of a write: %s", exc)
        finally:
            self._backlog.release()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Waits (up to `timeout_s`) for the events of writes already answered to go out."""
        deadline = time.monotonic() + timeout_s
        if self._last_publish is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(self._last_publish), timeout_s)
        if self._after:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(asyncio.gather(*self._after, return_exceptions=True)),
                                       max(0.0, deadline - time.monotonic()))

    def _report_unstored(self, rejected: list[Rejected], changes: Changes) -> None:
        """Counts and logs what was quarantined or dead-lettered: one line per batch, a few examples.

        Dead letters (results tied to no task) are kept as a metric and a log line, not in a
        table: nobody owns them and nothing shows them, and a table would let anyone holding an
        agent token fill the database with garbage.
        """
        if self.metrics is not None:
            for kind in changes.quarantine_kinds:
                self.metrics.quarantined.labels(kind).inc()
            for r in rejected:
                self.metrics.dead_letters.labels(r.kind).inc()
            if changes.unknown:
                self.metrics.dead_letters.labels("unknown_task").inc(len(changes.unknown))
            if changes.rejected:
                self.metrics.dead_letters.labels("storage").inc(len(changes.rejected))
        if changes.quarantined:
            log.warning("%d result(s) quarantined (stored as failed results saying why): %s", len(changes.quarantined),
                        ", ".join(f"{t} ({k})" for t, k in zip(changes.quarantined[:5], changes.quarantine_kinds, strict=False)))
        if rejected or changes.rejected:
            examples = [f"{r.message} (agent {r.agent_id[:40]!r}, task {r.task_id[:40]!r})" for r in rejected[:3]]
            examples += [f"task {t}: {why}" for t, why in changes.rejected[:3]]
            log.warning("dead letters: %d result(s) acknowledged and dropped: %s",
                        len(rejected) + len(changes.rejected), "; ".join(examples))
        if changes.unknown:
            log.info("%d result(s) of unknown tasks (check deleted, or not the sending agent's) dropped: %s",
                     len(changes.unknown), ", ".join(changes.unknown[:5]))

    @grpc_errors
    async def RecordProgress(self, request, context):
        """Starts mark their tasks running (a `task` event); steps become `progress` events of the check
        the task belongs to, for open tasks of the agent that sent them only."""
        started: dict[uuid.UUID, tuple[uuid.UUID, datetime]] = {}
        steps: list[tuple[uuid.UUID, uuid.UUID, scheduler_pb2.TaskProgress]] = []
        for i, item in enumerate(request.progress):
            agent_id = require_uuid(f"progress[{i}].agent_id", item.agent_id)
            task_id = require_uuid(f"progress[{i}].progress.task_id", item.progress.task_id)
            if item.progress.started:
                started[task_id] = (agent_id, _dt(item.progress.started_at) or datetime.now(UTC))
            else:
                steps.append((agent_id, task_id, item.progress))
        changes = await self.store.mark_running(started)
        await self.events.publish(changes)
        owners = await self.store.open_tasks([t for _, t, _ in steps])
        for agent_id, task_id, progress in steps:
            check_id, owner = owners.get(task_id, (None, None))
            if check_id is None or owner != agent_id:
                continue  # finished meanwhile, or not this agent's task
            event = scheduler_pb2.TaskProgress()
            event.CopyFrom(progress)
            event.check_id, event.message = str(check_id), progress.message[:PROGRESS_MESSAGE_LEN]
            await self.events.publish_progress(check_id, event)
        return results_pb2.RecordProgressResponse()

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
                 metrics: ResultsMetrics | None = None, monitor_eval: MonitorEvaluator | None = None) -> None:
        self.store = store
        self.metrics = metrics
        self.monitor_eval = monitor_eval
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
        if self.monitor_eval is not None:
            await self.monitor_eval.on_checks_finished(changes.finished_checks)
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
        if self.monitor_eval is not None:
            await self.monitor_eval.on_checks_finished(changes.finished_checks)
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
                 metrics_server: MetricsServer | None = None, retention_task: asyncio.Task | None = None) -> None:
        self.server = server
        self.metrics_server = metrics_server
        self.engine = engine
        self.live = live
        self.sweeper_task = sweeper_task
        self.retention_task = retention_task
        self.owns_live = owns_live
        # Waits for the live events of stored results still going out (ResultsIngestServicer.drain).
        self.drain_events: Callable[[], Awaitable[None]] | None = None
        # Monitors: the evaluator's sweep and the webhook deliverer (services/results/monitoreval.py,
        # webhooks.py), stopped with the service.
        self.monitor_eval: MonitorEvaluator | None = None
        self.monitor_tasks: list[asyncio.Task] = []

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self) -> None:
        for background in (self.sweeper_task, self.retention_task, *self.monitor_tasks):
            if background is not None:
                background.cancel()
                with contextlib.suppress(BaseException):
                    await background
        await self.server.stop()
        if self.drain_events is not None:
            await self.drain_events()
        if self.monitor_eval is not None:  # evaluations the drained writes started
            await self.monitor_eval.stop()
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
    monitors = MonitorStore(store.sessions)
    verify = LocalVerifier(KeyStore(db.sessionmaker(engine)), config.admin_token)
    if not config.admin_token:
        log.warning("HOSTCHECK_ADMIN_TOKEN is not set: no admin (no API keys can be made, anonymous checks cannot "
                    "be deleted, agents cannot be revoked)")
    owns_live = live is None
    live = live or create_live_state(config.live_state_url, config.live_state_prefix)
    events = Events(store, live)
    retention = Retention(engine, store.sessions, live, days=config.retention_days,
                          interval_s=config.retention_interval_s)
    metrics = ResultsMetrics()
    metrics.served = bool(config.metrics_port)
    deliverer = WebhookDeliverer(store.sessions, Poster(TargetGuard.from_cidrs(config.allow_targets)))
    monitor_eval = MonitorEvaluator(store.sessions, MonitorEvents(live), on_pending=deliverer.wake)
    ingest = ResultsIngestServicer(store, events, metrics, monitor_eval=monitor_eval)
    server = await start_server(config.listen, [
        (results_pb2_grpc.add_ResultsServiceServicer_to_server, ResultsServicer(
            store, live, verify, watchers=Watchers(config.watchers_per_check, config.watchers_per_client_ip))),
        (results_pb2_grpc.add_ResultsIngestServiceServicer_to_server, ingest),
        (keys_pb2_grpc.add_KeysServiceServicer_to_server, KeysServicer(verify.store, verify)),
        (keys_pb2_grpc.add_CallerAuthServiceServicer_to_server, CallerAuthServicer(verify)),
        (monitors_pb2_grpc.add_MonitorsServiceServicer_to_server, MonitorsServicer(
            monitors, live, verify, guard=TargetGuard.from_cidrs(config.allow_targets),
            min_interval_s=config.monitor_min_interval_s, per_key=config.monitors_per_key)),
        (monitors_pb2_grpc.add_MonitorRunsServiceServicer_to_server, MonitorRunsServicer(monitors, live)),
    ], [results_pb2.DESCRIPTOR.services_by_name["ResultsService"].full_name,
        results_pb2.DESCRIPTOR.services_by_name["ResultsIngestService"].full_name,
        keys_pb2.DESCRIPTOR.services_by_name["KeysService"].full_name,
        keys_pb2.DESCRIPTOR.services_by_name["CallerAuthService"].full_name,
        monitors_pb2.DESCRIPTOR.services_by_name["MonitorsService"].full_name,
        monitors_pb2.DESCRIPTOR.services_by_name["MonitorRunsService"].full_name], trusted_hops=config.trusted_hops,
        serving=config.migrate)
    if not config.migrate:  # someone else migrates (an init container): not ready before they did
        await server.serve_when(lambda: db.schema_at_head(engine), "the database schema is at head")
    sweeper = DeadlineSweeper(store, live, events, grace_s=config.task_grace_s, interval_s=config.sweep_interval_s,
                              offline_after_s=config.offline_after_s, metrics=metrics, monitor_eval=monitor_eval)
    task = asyncio.create_task(sweeper.run(), name="deadline-sweeper")
    retention_task = asyncio.create_task(retention.run(), name="retention")
    metrics_server = await serve_metrics(metrics.registry, config.metrics_port, near=config.listen)
    service = ResultsService(server, engine, live, task, owns_live, metrics_server, retention_task)
    service.drain_events = ingest.drain
    service.monitor_eval = monitor_eval
    service.monitor_tasks = [asyncio.create_task(monitor_eval.run(), name="monitor-eval-sweep"),
                             asyncio.create_task(deliverer.run(), name="webhook-deliverer")]
    return service

