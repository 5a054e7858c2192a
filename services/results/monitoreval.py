"""Evaluating monitor runs: each run's verdict from its agents, the monitor's state, its events.

When a run's check finishes (a write of results, or the deadline sweeper timing its tasks out),
its monitor is evaluated: under the monitor's row lock the runs after `last_evaluated_seq` are
judged in order of seq, stopping at the first still running. So each run is evaluated once and
each transition is stored once, whichever replica gets there first and however many try at once.
A transition is a MonitorEventRow written in the same transaction as the new state; one that
notifies carries its webhook payload and is the outbox row services/results/webhooks.py delivers.

A periodic sweep (every ~1 s, on every replica) is the durability: it evaluates what a replica
that crashed between storing a result and evaluating it left behind, and ends runs that were
claimed but never started (their scheduler replica died) as `missed`.

The rules are pure functions, tested on tables: judge_run (a run's verdict), next_state (the
state machine), notification_of (which transitions send a webhook).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hostcheck.core.checktypes import CHECK_TYPES
from hostcheck.services.results.models import CheckRow, TaskRow
from hostcheck.services.results.monitormodels import MonitorEventRow, MonitorRow, MonitorRunRow
from hostcheck.services.results.monitors import JUDGED, count_verdicts, hour_of
from hostcheck.services.results.monitorviews import event_view, monitor_view, run_view
from hostcheck.services.results.monitorwatch import MonitorEvents, monitor_channel
from hostcheck.services.results.store import TERMINAL_CHECK
from hostcheck.v1 import monitors_pb2

log = logging.getLogger(__name__)

# Run verdicts (MonitorRun.verdict) and the states they lead to (Monitor.state).
RUNNING, UP, DEGRADED, FAILING, UNKNOWN, MISSED = "running", "up", "degraded", "failing", "unknown", "missed"
DOWN, PAUSED, PENDING = "down", "paused", "pending"
# Verdicts decided without a check (ReportRunNotStarted, the sweep): nothing to wait for.
DECIDED_WITHOUT_CHECK = (UNKNOWN, MISSED)
# The states whose order decides notifications: the newest of them says what receivers were last told.
SETTLED = (UP, DEGRADED, DOWN)

# A run claimed this long before its check exists (beyond interval + timeout) was lost with the
# scheduler replica that claimed it: it ends `missed`. Long enough for a busy scheduler to start it.
MISSED_GRACE_S = 30.0
# Runs per monitor judged in one transaction (a monitor far behind takes several).
RUNS_PER_EVALUATION = 100
# Monitors evaluated in one transaction (locked in id order).
MONITORS_PER_EVALUATION = 200
# Monitors the sweep looks at per round.
SWEEP_LIMIT = 500
# Evaluations running at once on this replica (each holds a database connection).
EVALUATIONS_AT_ONCE = 4


@dataclass(frozen=True)
class TaskOutcome:
    """One task of a run's check as the verdict needs it (from TaskRow and its result)."""

    agent_id: str
    status: str  # completed | failed | timed_out (a finished check has no open task)
    agent_name: str = ""
    country: str = ""
    city: str = ""
    error_code: str = ""
    error: str = ""
    duration_ms: float = 0.0


@dataclass(frozen=True)
class RunJudgement:
    """A run's verdict and its agents (MonitorRunAgent as JSON, proto field names)."""

    verdict: str
    agents: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""

    @property
    def agents_total(self) -> int:
        return len(self.agents)

    @property
    def failing_agents(self) -> list[dict[str, Any]]:
        return [a for a in self.agents if not a["success"]]

    @property
    def agents_failing(self) -> int:
        return len(self.failing_agents)


def judge_run(tasks: Sequence[TaskOutcome], quorum: int) -> RunJudgement:
    """The verdict of a finished run from its tasks, grouped by agent.

    An agent fails the run when any of its tasks failed or timed out (its first failing task gives
    the error); `quorum` or more failing agents make the run `failing`, fewer `degraded`, none `up`;
    no agent at all `unknown`.
    """
    agents: dict[str, dict[str, Any]] = {}
    for task in tasks:
        agent = agents.setdefault(task.agent_id, {
            "agent_id": task.agent_id, "agent_name": task.agent_name, "country": task.country, "city": task.city,
            "success": True, "error_code": "", "error": "", "duration_ms": 0.0})
        agent["duration_ms"] = max(agent["duration_ms"], float(task.duration_ms or 0.0))
        if task.status != "completed" and agent["success"]:
            agent["success"] = False
            agent["error_code"] = task.error_code or task.status
            agent["error"] = task.error
    if not agents:
        return RunJudgement(UNKNOWN, reason="no agent ran the check")
    # By name (then id): the same order in every run, the payload and the UI.
    listed = sorted(agents.values(), key=lambda a: (a["agent_name"], a["agent_id"]))
    failing = sum(1 for a in listed if not a["success"])
    if failing >= max(quorum, 1):
        return RunJudgement(FAILING, listed)
    return RunJudgement(DEGRADED if failing else UP, listed)


@dataclass(frozen=True)
class MonitorState:
    state: str
    # Consecutive runs with at least quorum agents failing.
    failing_runs: int = 0


def next_state(current: MonitorState, verdict: str, *, for_runs: int, paused: bool) -> MonitorState:
    """The monitor's state after a run with this verdict.

    `failing` runs count up: `for_runs` of them in a row make the monitor `down`, fewer leave it
    `degraded` (some agents fail, not for long enough yet). An `up` or `degraded` run resets the
    count. `unknown` (no agent could run it) says nothing about the target: the state is `unknown`
    and the count is kept, so unknown runs between failing ones neither help nor hurt. A `missed`
    run changes nothing, nor does any run of a paused monitor (its state stays `paused`).
    """
    if paused or verdict == MISSED:
        return current
    if verdict == FAILING:
        failing_runs = current.failing_runs + 1
        return MonitorState(DOWN if failing_runs >= max(for_runs, 1) else DEGRADED, failing_runs)
    if verdict in (UP, DEGRADED):
        return MonitorState(verdict, 0)
    if verdict == UNKNOWN:
        return MonitorState(UNKNOWN, current.failing_runs)
    raise ValueError(f"not a run verdict: {verdict!r}")


def notification_of(previous: str, new: str, last_settled: str) -> str | None:
    """The webhook a transition sends: "down", "up" (a recovery) or None.

    `last_settled` is the newest of up/degraded/down the monitor was in before (or ""): what the
    receiver was last told, in effect. Entering `down` notifies unless receivers already think it
    is down (down -> unknown -> down is one outage, not two); entering `up` or `degraded` after
    `down` is the recovery, however many unknown or paused states lay between.
    """
    if new == previous:
        return None
    if new == DOWN and last_settled != DOWN:
        return "down"
    if new in (UP, DEGRADED) and last_settled == DOWN:
        return "up"
    return None


def aware(at: datetime) -> datetime:
    """`at` with its time zone: SQLite gives naive datetimes back (stored as UTC)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


def rfc3339(at: datetime) -> str:
    return aware(at).astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def webhook_payload(*, event_id: uuid.UUID, monitor: MonitorRow, notification: str, previous: str, new: str,
                    at: datetime, run: MonitorRunRow, judgement: RunJudgement) -> dict[str, Any]:
    """The body of the webhook (docs/monitors.md documents each field), fixed when the event is made."""
    return {
        "event_id": str(event_id), "monitor_id": str(monitor.id), "monitor_name": monitor.name,
        "state": notification, "monitor_state": new, "previous_state": previous, "at": rfc3339(at),
        "run": run.seq, "check_id": str(run.check_id), "target": monitor.target,
        "check_types": list(monitor.check_types or []), "quorum": monitor.quorum, "for_runs": monitor.for_runs,
        "failing_agents": [{k: a.get(k, "") for k in ("agent_id", "agent_name", "country", "city", "error_code",
                                                       "error")} for a in judgement.failing_agents],
        "agents_total": judgement.agents_total, "agents_failing": judgement.agents_failing,
    }


def missed_after(monitor: MonitorRow) -> timedelta:
    """How long after its claim a run with no check is given up: an interval, the check's timeout, a grace."""
    spec = monitor.spec or {}
    timeout_ms = int(spec.get("timeout_ms") or 0) or max(
        (CHECK_TYPES[t].default_timeout_ms for t in (monitor.check_types or []) if t in CHECK_TYPES), default=0)
    return timedelta(seconds=monitor.interval_s + timeout_ms / 1000 + MISSED_GRACE_S)


def outcome_of(task: TaskRow) -> TaskOutcome:
    result = task.result
    if task.status == "timed_out" or result is None:
        error_code, error = (task.status if task.status != "completed" else ""), task.reason or ""
    else:
        error_code, error = result.error_code or ("" if result.success else "failed"), result.error or ""
    return TaskOutcome(agent_id=str(task.agent_id), status=task.status, agent_name=task.agent_name,
                       country=task.country, city=task.city, error_code=error_code, error=error,
                       duration_ms=float(result.duration_ms or 0.0) if result is not None else 0.0)


@dataclass
class Evaluated:
    """What one evaluation stored, to publish once it is committed."""

    monitor: MonitorRow
    runs: list[MonitorRunRow] = field(default_factory=list)
    events: list[tuple[MonitorEventRow, MonitorRunRow]] = field(default_factory=list)

    @property
    def notifies(self) -> bool:
        return any(e.notification == "pending" for e, _ in self.events)


class MonitorEvaluator:
    """Evaluates monitors' finished runs; one per results replica, any number at once."""

    def __init__(self, sessions: async_sessionmaker, events: MonitorEvents | None = None, *,
                 on_pending: Callable[[], None] | None = None, sweep_interval_s: float = 1.0) -> None:
        self.sessions = sessions
        self.events = events
        # Called when an evaluation stored a notification to deliver (wakes this replica's deliverer).
        self.on_pending = on_pending
        self.sweep_interval_s = sweep_interval_s
        self._slots = asyncio.Semaphore(EVALUATIONS_AT_ONCE)
        self._background: set[asyncio.Task] = set()
        # Finished checks waiting for checks_finished_soon's one evaluating task (None: not running).
        self._queued: set[uuid.UUID] = set()
        self._draining: asyncio.Task | None = None

    async def on_checks_finished(self, check_ids: Iterable[uuid.UUID]) -> None:
        """Evaluates the monitors whose runs these finished checks are (most checks are no run: one
        indexed read finds none), all in one transaction. Errors are logged, never raised: the sweep
        catches up."""
        ids = list(check_ids)
        if not ids:
            return
        try:
            async with self.sessions() as session:
                monitor_ids = sorted(set((await session.scalars(
                    select(MonitorRunRow.monitor_id).where(MonitorRunRow.check_id.in_(ids)))).all()))
        except Exception as exc:  # noqa: BLE001 - the sweep evaluates them later
            log.warning("cannot look up the monitors of finished checks: %s", exc)
            return
        await self._evaluate_logged(monitor_ids)

    def checks_finished_soon(self, check_ids: Iterable[uuid.UUID]) -> None:
        """on_checks_finished in the background: the write's publishing does not wait for it.

        The checks are queued and one task per replica evaluates what queued up meanwhile in one go:
        at 100 runs a second, a transaction per write (or per run) cost more than the judging.
        """
        self._queued.update(check_ids)
        if not self._queued or self._draining is not None:
            return
        self._draining = asyncio.create_task(self._drain(), name="monitor-eval")
        self._background.add(self._draining)
        self._draining.add_done_callback(self._background.discard)

    async def _drain(self) -> None:
        try:
            while self._queued:
                ids, self._queued = self._queued, set()
                await self.on_checks_finished(ids)
        finally:
            self._draining = None

    async def sweep_once(self, now: datetime | None = None) -> int:
        """Evaluates every monitor with a run to evaluate: its check finished, its verdict decided
        without a check, or no check long after its claim (to end `missed`). Returns how many."""
        given, now = now, now or datetime.now(UTC)
        async with self.sessions() as session:
            monitor_ids = list((await session.scalars(
                select(MonitorRunRow.monitor_id).distinct()
                .outerjoin(CheckRow, CheckRow.id == MonitorRunRow.check_id)
                .where(MonitorRunRow.evaluated.is_(False),
                       or_(CheckRow.status.in_(TERMINAL_CHECK), MonitorRunRow.verdict.in_(DECIDED_WITHOUT_CHECK),
                           and_(CheckRow.id.is_(None),
                                MonitorRunRow.claimed_at < now - timedelta(seconds=MISSED_GRACE_S))))
                .limit(SWEEP_LIMIT))).all())
        await self._evaluate_logged(sorted(monitor_ids), now=given, skip_locked=True)
        return len(monitor_ids)

    async def run(self) -> None:
        failing = False
        while True:
            try:
                await self.sweep_once()
                if failing:
                    log.info("monitor sweep works again")
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - storage outage (or not migrated yet): next round
                # Once per outage, not every second.
                log.log(logging.DEBUG if failing else logging.WARNING, "monitor sweep failed: %s", exc)
                failing = True
            await asyncio.sleep(self.sweep_interval_s)

    async def stop(self) -> None:
        for task in list(self._background):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task

    async def _evaluate_logged(self, monitor_ids: list[uuid.UUID], **kwargs: Any) -> None:
        for at in range(0, len(monitor_ids), MONITORS_PER_EVALUATION):
            chunk = monitor_ids[at:at + MONITORS_PER_EVALUATION]
            try:
                await self.evaluate_many(chunk, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the sweep tries again
                log.warning("cannot evaluate monitors %s: %s", ", ".join(map(str, chunk[:3])) +
                            (f" and {len(chunk) - 3} more" if len(chunk) > 3 else ""), exc)

    async def evaluate(self, monitor_id: uuid.UUID, *, now: datetime | None = None,
                       skip_locked: bool = False) -> list[Evaluated]:
        """Evaluates the monitor's runs that can be, in order; publishes what changed once committed."""
        return await self.evaluate_many([monitor_id], now=now, skip_locked=skip_locked)

    async def evaluate_many(self, monitor_ids: Sequence[uuid.UUID], *, now: datetime | None = None,
                            skip_locked: bool = False) -> list[Evaluated]:
        """Evaluates these monitors' runs that can be, each in order, in one transaction (a monitor far
        behind takes several); publishes what changed once committed."""
        done: list[Evaluated] = []
        pending = sorted(set(monitor_ids))
        async with self._slots:
            while pending:
                evaluated, pending = await self._evaluate_batch(pending, now or datetime.now(UTC), skip_locked)
                evaluated = [e for e in evaluated if e.runs]
                done.extend(evaluated)
                await self._publish(evaluated)
        return done

    async def _evaluate_batch(self, monitor_ids: list[uuid.UUID], now: datetime,
                              skip_locked: bool) -> tuple[list[Evaluated], list[uuid.UUID]]:
        """One transaction: locks the monitors (in id order, as every evaluator does: no deadlock
        between replicas), reads their runs to evaluate and those runs' checks and tasks in bulk,
        judges each monitor's runs in order. Returns what it stored and the monitors with more runs
        than one transaction takes."""
        async with self.sessions() as session, session.begin():
            monitors = await _lock_monitors(session, monitor_ids, skip_locked=skip_locked)
            if not monitors:
                return [], []  # deleted, or other replicas are evaluating them
            limit = RUNS_PER_EVALUATION * len(monitors)
            # Not locked: OpenCheck starts runs claimed meanwhile (and ahead) without waiting for this
            # transaction; a run judged below is one that is over (its row is locked by its update), and
            # one about to end without a check is locked first (_judge_monitor).
            runs = list((await session.scalars(
                select(MonitorRunRow).join(MonitorRow, MonitorRow.id == MonitorRunRow.monitor_id)
                .where(MonitorRunRow.monitor_id.in_(list(monitors)),
                       MonitorRunRow.seq > MonitorRow.last_evaluated_seq)
                .order_by(MonitorRunRow.monitor_id, MonitorRunRow.seq).limit(limit)
                .execution_options(populate_existing=True))).all())
            if not runs:
                return [], []
            checks = {c.id: c for c in (await session.scalars(
                select(CheckRow).where(CheckRow.id.in_([r.check_id for r in runs])))).all()}
            tasks: dict[uuid.UUID, list[TaskRow]] = {}
            finished = [c.id for c in checks.values() if c.status in TERMINAL_CHECK]
            if finished:
                for task in (await session.scalars(select(TaskRow).where(TaskRow.check_id.in_(finished))
                                                   .order_by(TaskRow.created_at, TaskRow.id))).unique().all():
                    tasks.setdefault(task.check_id, []).append(task)
            by_monitor: dict[uuid.UUID, list[MonitorRunRow]] = {}
            for run in runs:
                by_monitor.setdefault(run.monitor_id, []).append(run)
            out: list[Evaluated] = []
            counts: dict[tuple[uuid.UUID, datetime], dict[str, int]] = {}
            more: list[uuid.UUID] = []
            for monitor_id, its_runs in by_monitor.items():
                evaluated = await self._judge_monitor(session, monitors[monitor_id], its_runs, checks, tasks, now)
                out.append(evaluated)
                for run in evaluated.runs:  # the uptime rollup
                    if run.verdict in JUDGED:
                        bucket = counts.setdefault((monitor_id, hour_of(run.scheduled_at)), dict.fromkeys(JUDGED, 0))
                        bucket[run.verdict] += 1
                if len(runs) == limit and monitor_id == runs[-1].monitor_id and len(evaluated.runs) == len(its_runs):
                    more.append(monitor_id)  # the read was cut short in this monitor's runs
            if len(runs) == limit:  # and the monitors after the cut were not read at all
                more.extend(m for m in monitors if m > runs[-1].monitor_id)
            await count_verdicts(session, counts)
        return out, more

    async def _judge_monitor(self, session: AsyncSession, monitor: MonitorRow, runs: list[MonitorRunRow],
                             checks: dict[uuid.UUID, CheckRow], tasks: dict[uuid.UUID, list[TaskRow]],
                             now: datetime) -> Evaluated:
        """Judges one locked monitor's runs in order of seq, stopping at the first still running;
        moves its state and stores its events (the caller counts the verdicts for uptime)."""
        # An agent's first failing task is taken in the order of the monitor's check types.
        order = {name: i for i, name in enumerate(monitor.check_types or [])}
        evaluated = Evaluated(monitor)
        state = MonitorState(monitor.state, monitor.failing_runs)
        last_settled: str | None = None
        for run in runs:
            listed = sorted(tasks.get(run.check_id, []), key=lambda t: order.get(t.check_type, len(order)))
            judgement, finished_at = _judge(run, checks.get(run.check_id), {run.check_id: listed}, monitor, now)
            if judgement is not None and run.check_id not in checks and run.started_at is None \
                    and run.verdict not in DECIDED_WITHOUT_CHECK:
                # About to end `missed`: its OpenCheck (or ReportRunNotStarted) may be under way now.
                # Locked and read again, it is either still not started (it is missed: OpenCheck's
                # compare-and-set will refuse it) or it was just now (evaluated next time).
                await session.refresh(run, with_for_update=True if session.get_bind().dialect.name == "postgresql"
                                      else None)
                if run.started_at is not None:
                    break
                judgement, finished_at = _judge(run, None, {}, monitor, now)
            if judgement is None:
                break  # still running: later runs wait for it (runs are evaluated in order)
            after = next_state(state, judgement.verdict, for_runs=monitor.for_runs, paused=monitor.paused)
            run.verdict, run.agents, run.reason = judgement.verdict, judgement.agents, judgement.reason
            run.agents_total, run.agents_failing = judgement.agents_total, judgement.agents_failing
            run.finished_at = run.finished_at or finished_at
            run.state_after, run.evaluated = after.state, True
            evaluated.runs.append(run)
            if after.state != state.state:
                if last_settled is None:
                    last_settled = await _last_settled(session, monitor.id)
                event = _event(monitor, run, judgement, state.state, after.state, last_settled, now)
                session.add(event)
                evaluated.events.append((event, run))
                monitor.state_since = now
                if after.state in SETTLED:
                    last_settled = after.state
            state = after
            monitor.state, monitor.failing_runs = after.state, after.failing_runs
            monitor.last_evaluated_seq = run.seq
        return evaluated

    async def _publish(self, evaluated: list[Evaluated]) -> None:
        """Live events of a committed evaluation (one round trip); the deliverer woken when it made a
        notification."""
        if any(e.notifies for e in evaluated) and self.on_pending is not None:
            self.on_pending()
        if self.events is None or not evaluated:
            return
        messages: list[tuple[str, bytes]] = []
        for done in evaluated:
            monitor, channel = done.monitor, monitor_channel(done.monitor.id)
            messages.extend((channel, monitors_pb2.WatchMonitorResponse(event="run", run=run_view(run))
                             .SerializeToString()) for run in done.runs)
            messages.extend((channel, monitors_pb2.WatchMonitorResponse(
                event="state", monitor=monitor_view(monitor, last_run=run), change=event_view(event))
                .SerializeToString()) for event, run in done.events)
        try:
            await self.events.live.publish_many(messages)
        except Exception as exc:  # noqa: BLE001 - watchers catch up from storage
            log.warning("cannot publish the events of %d evaluated monitors: %s", len(evaluated), exc)


def _judge(run: MonitorRunRow, check: CheckRow | None, tasks: dict[uuid.UUID, list[TaskRow]], monitor: MonitorRow,
           now: datetime) -> tuple[RunJudgement | None, datetime | None]:
    """The run's judgement and when it finished, or (None, None) while it may still finish."""
    if run.verdict in DECIDED_WITHOUT_CHECK:
        return RunJudgement(run.verdict, list(run.agents or []), run.reason or ""), run.finished_at or now
    if check is not None and check.status in TERMINAL_CHECK:
        return (judge_run([outcome_of(t) for t in tasks.get(check.id, [])], monitor.quorum),
                check.completed_at or now)
    if check is None and run.claimed_at is not None and now - aware(run.claimed_at) > missed_after(monitor):
        if run.started_at is None:
            by = f" by {run.claimed_by}" if run.claimed_by else ""
            return RunJudgement(MISSED, reason=f"claimed{by} at {rfc3339(run.claimed_at)} and never started "
                                               "(the scheduler replica stopped before creating its check)"), now
        return RunJudgement(UNKNOWN, reason="its check was deleted before it finished"), now
    return None, None


def _event(monitor: MonitorRow, run: MonitorRunRow, judgement: RunJudgement, previous: str, new: str,
           last_settled: str, now: datetime) -> MonitorEventRow:
    note = notification_of(previous, new, last_settled)
    event_id = uuid.uuid4()
    pending = note is not None and bool(monitor.webhook_url)
    return MonitorEventRow(
        id=event_id, monitor_id=monitor.id, from_state=previous, to_state=new, at=now, run_seq=run.seq,
        check_id=run.check_id, failing_agents=judgement.failing_agents,
        notification="pending" if pending else "none",
        payload=webhook_payload(event_id=event_id, monitor=monitor, notification=note, previous=previous, new=new,
                                at=now, run=run, judgement=judgement) if note is not None else None,
        delivery_attempts=0, next_attempt_at=now if pending else None, last_delivery_error="")


async def _last_settled(session: AsyncSession, monitor_id: uuid.UUID) -> str:
    """The newest of up/degraded/down the monitor entered (""): see notification_of."""
    found = await session.scalar(
        select(MonitorEventRow.to_state).where(MonitorEventRow.monitor_id == monitor_id,
                                               MonitorEventRow.to_state.in_(SETTLED))
        .order_by(MonitorEventRow.at.desc(), MonitorEventRow.run_seq.desc()).limit(1))
    return found or ""


def _for_update(stmt, session: AsyncSession, *, skip_locked: bool = False):
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=skip_locked)
    return stmt


async def _lock_monitors(session: AsyncSession, monitor_ids: list[uuid.UUID], *,
                         skip_locked: bool) -> dict[uuid.UUID, MonitorRow]:
    """The monitors (those that exist; with `skip_locked`, those no one else holds), locked for this
    transaction in id order: their row locks on Postgres; on SQLite a write first (a no-op update),
    which takes the database's one write lock before anything is read."""
    if session.get_bind().dialect.name != "postgresql":
        await session.execute(update(MonitorRow).where(MonitorRow.id.in_(monitor_ids))
                              .values(last_evaluated_seq=MonitorRow.last_evaluated_seq)
                              .execution_options(synchronize_session=False))
    rows = (await session.scalars(_for_update(
        select(MonitorRow).where(MonitorRow.id.in_(monitor_ids)).order_by(MonitorRow.id), session,
        skip_locked=skip_locked).execution_options(populate_existing=True))).all()
    return {r.id: r for r in rows}
