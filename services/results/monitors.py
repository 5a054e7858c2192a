"""Persistence of monitors: made, listed, edited and deleted by their owners; runs claimed by schedulers.

The rules that keep them correct:

- A run is claimed once. ClaimDueRuns advances a monitor's `run_seq` and `next_run_at` and
  inserts the run (with the id its check must have) in one transaction; on Postgres the due
  monitors are locked with SKIP LOCKED (concurrent claimers take different monitors), and every
  advance is a compare-and-set on `run_seq`, so even a claimer that read a stale row (SQLite reads
  outside the write lock) cannot claim a run twice: it skips that monitor.
- A late monitor (the system was down) skips the runs it missed: its next run is one interval
  from now, not a burst of catch-up runs.
- A run's check is opened once: OpenCheck marks the run started under the run's row lock and
  refuses a second check of it (ALREADY_EXISTS); the checks' unique (monitor_id, monitor_run)
  index backs that up.
- Edits change only the columns they name (Core UPDATEs, never a whole ORM row written back), so
  an edit does not undo the evaluator's state change made meanwhile, nor a claim.

Uptime (Monitor.uptime_24h / uptime_7d, the status page's) is the share of runs scheduled in the
window whose verdict is `up` or `degraded` among those whose verdict is `up`, `degraded` or
`failing`: a run that counts against the monitor is a `failing` one (a quorum of agents failed),
and runs nobody could judge (`unknown`: no agent could run it; `missed`; still `running`) count
neither way. None when the window has no such run.

It is read from an hourly rollup (monitor_uptime), not from the runs: the evaluator adds each
judged run to the bucket of the UTC hour it was scheduled in (count_verdict, in the transaction
that stores the verdict, under the monitor's row lock: once per run). So the windows are whole
hours: "24 h" is the last 24 hourly buckets including the current one (between 23 and 24 hours
back), "7 d" the last 168; a page of 50 monitors reads at most 50 x 168 small rows in one query,
whatever the interval (at 10 s, the runs would be 3 million rows).
"""

from __future__ import annotations

import base64
import random
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, and_, bindparam, case, delete, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hostcheck.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from hostcheck.services.results.monitormodels import (
    MonitorEventRow,
    MonitorRow,
    MonitorRunRow,
    MonitorUptimeRow,
)
from hostcheck.services.storage.models import utcnow

MONITOR_STATES = ("pending", "up", "degraded", "down", "unknown", "paused")
# Verdicts that count for uptime (up and degraded as up): monitor_uptime's columns.
JUDGED = ("up", "degraded", "failing")
# Uptime windows in hourly buckets (the current hour included), and how long buckets are kept.
DAY_HOURS = 24
WEEK_HOURS = 7 * 24
UPTIME_KEPT = timedelta(days=8)
# The first run of a new (or resumed) monitor is due within this many seconds (at most one
# interval): monitors made together (a script making hundreds) spread out over up to a minute
# instead of running in bursts, at the same second of every interval, ever after.
FIRST_RUN_SPREAD_S = 60.0
# Runs are claimed this long before they are due, and started at their time by the scheduler: the
# claim's round trip (and a claim per run due every 10 ms at 100 runs a second) is not in their
# lateness, and a claim takes the runs of a quarter second at once.
CLAIM_AHEAD_S = 0.25


def first_run_at(now: datetime, interval_s: int) -> datetime:
    """When a new or resumed monitor first runs: soon, spread with jitter."""
    return now + timedelta(seconds=random.uniform(0, min(float(interval_s), FIRST_RUN_SPREAD_S)))


def aware(value: datetime) -> datetime:
    """A stored time as UTC-aware (SQLite's come back naive UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def new_webhook_secret() -> str:
    return secrets.token_hex(32)


@dataclass(frozen=True)
class MonitorValues:
    """The columns of a monitor its owner sets (validated by monitorservice.validate_monitor)."""

    name: str
    target: str
    check_types: list[str]
    spec: dict[str, Any]
    interval_s: int
    quorum: int
    for_runs: int
    webhook_url: str
    paused: bool
    status_slug: str | None

    def columns(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "check_types": list(self.check_types), "spec": self.spec,
                "interval_s": self.interval_s, "quorum": self.quorum, "for_runs": self.for_runs,
                "webhook_url": self.webhook_url, "paused": self.paused, "status_slug": self.status_slug}


@dataclass(frozen=True)
class Claimed:
    """A run claimed by a scheduler: the monitor (as it was when claimed) and the run row."""

    monitor: MonitorRow
    run: MonitorRunRow


@dataclass(frozen=True)
class Updated:
    """An edit's outcome: the monitor after it, and the state change it made (pause, resume), if any."""

    monitor: MonitorRow
    event: MonitorEventRow | None


@dataclass(frozen=True)
class Uptime:
    day: float | None = None
    week: float | None = None


def _postgres(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _lock(stmt, session: AsyncSession, *, skip_locked: bool = False):
    if _postgres(session):
        return stmt.with_for_update(skip_locked=skip_locked)
    return stmt  # SQLite serialises writers itself


_MONITORS = cast(Table, MonitorRow.__table__)
_RUNS = cast(Table, MonitorRunRow.__table__)
_UPTIME = cast(Table, MonitorUptimeRow.__table__)


def hour_of(at: datetime) -> datetime:
    """The start of the UTC hour `at` is in: its uptime bucket."""
    return aware(at).astimezone(UTC).replace(minute=0, second=0, microsecond=0)


async def count_verdict(session: AsyncSession, monitor_id: uuid.UUID, scheduled_at: datetime, verdict: str) -> None:
    """Adds a judged run to its hour's uptime bucket (an upsert; `unknown`, `missed` count nowhere).

    Call it in the transaction that stores the run's verdict, under the monitor's row lock (the
    evaluator's): the run is counted exactly when its verdict is stored, so once, however many
    evaluators race. The upsert itself is atomic too (ON CONFLICT DO UPDATE col = col + 1).
    """
    if verdict not in JUDGED:
        return
    dialect = postgresql if _postgres(session) else sqlite
    stmt = dialect.insert(_UPTIME).values(monitor_id=monitor_id, hour=hour_of(scheduled_at),
                                          **{v: int(v == verdict) for v in JUDGED})
    await session.execute(stmt.on_conflict_do_update(index_elements=[_UPTIME.c.monitor_id, _UPTIME.c.hour],
                                                     set_={verdict: _UPTIME.c[verdict] + 1}))


async def count_verdicts(session: AsyncSession, counts: dict[tuple[uuid.UUID, datetime], dict[str, int]]) -> None:
    """count_verdict for many judged runs in one statement: `counts` maps (monitor, hour) to how many
    runs of each verdict in JUDGED to add (each key once: a statement may not upsert a row twice)."""
    rows = [{"monitor_id": monitor_id, "hour": hour, **{v: int(n.get(v, 0)) for v in JUDGED}}
            for (monitor_id, hour), n in counts.items() if any(n.get(v, 0) for v in JUDGED)]
    if not rows:
        return
    dialect = postgresql if _postgres(session) else sqlite
    stmt = dialect.insert(_UPTIME).values(rows)
    await session.execute(stmt.on_conflict_do_update(index_elements=[_UPTIME.c.monitor_id, _UPTIME.c.hour],
                                                     set_={v: _UPTIME.c[v] + stmt.excluded[v] for v in JUDGED}))


def _encode_token(at: datetime, key: Any) -> str:
    raw = f"{at.astimezone(UTC).isoformat()}|{key}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_token(token: str) -> tuple[datetime, str]:
    try:
        at, sep, last = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        if not sep:
            raise ValueError(token)
        return datetime.fromisoformat(at), last
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(field="page_token", reason="is not a token from a previous response") from None


def _page_size(value: int, default: int, most: int) -> int:
    if value == 0:
        return default
    if not 1 <= value <= most:
        raise InvalidArgument(field="page_size", reason=f"must be 1-{most}")
    return value


async def start_run(session: AsyncSession, monitor_id: uuid.UUID, seq: int, check_id: uuid.UUID,
                    now: datetime) -> MonitorRunRow:
    """Marks a claimed run started as its check is opened (in OpenCheck's transaction).

    One conditional UPDATE, so two OpenChecks of one run (on any backend) start it once: the
    other gets ALREADY_EXISTS. NotFound when the monitor or run is gone (deleted meanwhile); the
    check must have the id chosen when the run was claimed.
    """
    # UPDATE ... RETURNING: the run in the same round trip (a run's check is opened 100 times a second).
    started = await session.scalar(update(MonitorRunRow).where(
        MonitorRunRow.monitor_id == monitor_id, MonitorRunRow.seq == seq, MonitorRunRow.started_at.is_(None),
        MonitorRunRow.verdict == "running", MonitorRunRow.check_id == check_id).values(started_at=now)
        .returning(MonitorRunRow).execution_options(populate_existing=True, synchronize_session=False))
    if started is not None:
        return started
    run = await session.scalar(select(MonitorRunRow).where(
        MonitorRunRow.monitor_id == monitor_id, MonitorRunRow.seq == seq).execution_options(populate_existing=True))
    if run is None:
        raise NotFound(f"run {seq} of monitor {monitor_id} not found (the monitor was deleted, or never "
                       f"claimed that run)")
    if run.started_at is not None:
        raise AlreadyExists(f"run {seq} of monitor {monitor_id} has a check already ({run.check_id})")
    if run.verdict != "running":
        raise FailedPrecondition(f"run {seq} of monitor {monitor_id} has ended {run.verdict} without a check")
    raise InvalidArgument(field="check_id", reason=f"run {seq} of monitor {monitor_id} must have the check id "
                                                   f"it was claimed with ({run.check_id})")


class MonitorStore:
    def __init__(self, sessions: async_sessionmaker) -> None:
        self.sessions = sessions

    # -- owners' API -------------------------------------------------------------------------

    async def create(self, values: MonitorValues, *, owner: uuid.UUID | None, per_key: int | None,
                     now: datetime | None = None) -> MonitorRow:
        """Stores a new monitor; `per_key`: how many the owner may have (None: no limit, the admin).

        The owner's count and the slug are checked in the insert's transaction, serialised per
        owner (its key's row lock) and per slug (an advisory lock) on Postgres.
        """
        now = now or utcnow()
        async with self.sessions() as session, session.begin():
            if _postgres(session):
                if owner is not None:
                    await session.execute(text("SELECT id FROM api_keys WHERE id = :id FOR UPDATE"), {"id": owner})
                if values.status_slug:
                    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:slug))"),
                                          {"slug": "monitor-slug:" + values.status_slug})
            if per_key is not None:
                count = await session.scalar(select(func.count()).select_from(MonitorRow).where(
                    _owned_by(owner)))
                if (count or 0) >= per_key:
                    raise ResourceExhausted(f"this API key has {count} monitors, the most one key may have; "
                                            f"delete one first", retry_after_s=3600)
            await self._refuse_taken_slug(session, values.status_slug, owner, None)
            row = MonitorRow(id=uuid.uuid4(), **values.columns(), webhook_secret=new_webhook_secret(),
                             created_by_key_id=owner, created_at=now, updated_at=now,
                             next_run_at=first_run_at(now, values.interval_s), run_seq=0,
                             state="paused" if values.paused else "pending", state_since=now, failing_runs=0,
                             last_evaluated_seq=0)
            session.add(row)
        return row

    async def _refuse_taken_slug(self, session: AsyncSession, slug: str | None, owner: uuid.UUID | None,
                                 monitor_id: uuid.UUID | None) -> None:
        """A status page belongs to one owner: a slug another owner's monitor uses is taken."""
        if not slug:
            return
        stmt = select(MonitorRow.id).where(MonitorRow.status_slug == slug, ~_owned_by(owner))
        if monitor_id is not None:
            stmt = stmt.where(MonitorRow.id != monitor_id)
        if await session.scalar(stmt.limit(1)) is not None:
            raise AlreadyExists(f"status_slug: {slug!r} is taken by another owner's status page")

    async def get(self, monitor_id: uuid.UUID) -> MonitorRow:
        async with self.sessions() as session:
            row = await session.get(MonitorRow, monitor_id)
        if row is None:
            raise NotFound(f"monitor {monitor_id} not found")
        return row

    async def list_monitors(self, *, owner: uuid.UUID | None, every_owner: bool, page_size: int, page_token: str,
                   state: str = "") -> tuple[list[MonitorRow], str]:
        """Newest first: `owner`'s monitors (None: the admin's own), or every monitor with `every_owner`."""
        page_size = _page_size(page_size, 50, 200)
        if state and state not in MONITOR_STATES:
            raise InvalidArgument(field="state", reason=f"must be one of {', '.join(MONITOR_STATES)}")
        stmt = select(MonitorRow)
        if not every_owner:
            stmt = stmt.where(_owned_by(owner))
        if state:
            stmt = stmt.where(MonitorRow.state == state)
        if page_token:
            created, last = _decode_token(page_token)
            try:
                last_id = uuid.UUID(last)
            except ValueError:
                raise InvalidArgument(field="page_token", reason="is not a token from a previous response") from None
            stmt = stmt.where(or_(MonitorRow.created_at < created,
                                  and_(MonitorRow.created_at == created, MonitorRow.id < last_id)))
        stmt = stmt.order_by(MonitorRow.created_at.desc(), MonitorRow.id.desc()).limit(page_size + 1)
        async with self.sessions() as session:
            rows = list((await session.scalars(stmt)).all())
        more = len(rows) > page_size
        rows = rows[:page_size]
        return rows, _encode_token(rows[-1].created_at, rows[-1].id) if more else ""

    async def update(self, monitor_id: uuid.UUID, values: MonitorValues, *, rotate_secret: bool = False,
                     now: datetime | None = None) -> Updated:
        """Writes the edited columns; pausing or resuming moves the state (and stores that event).

        Resuming makes the state `pending` and the next run due soon; a shorter interval brings the
        next run closer. The row is locked (Postgres) for the read-modify-write: the evaluator's
        state change and a claim wait for it, or it for them.
        """
        now = now or utcnow()
        async with self.sessions() as session, session.begin():
            row = await session.scalar(_lock(select(MonitorRow).where(MonitorRow.id == monitor_id), session))
            if row is None:
                raise NotFound(f"monitor {monitor_id} not found")
            await self._refuse_taken_slug(session, values.status_slug, row.created_by_key_id, monitor_id)
            changes = values.columns()
            changes["updated_at"] = now
            if rotate_secret:
                changes["webhook_secret"] = new_webhook_secret()
            event: MonitorEventRow | None = None
            if values.paused != row.paused:
                to_state = "paused" if values.paused else "pending"
                event = MonitorEventRow(id=uuid.uuid4(), monitor_id=monitor_id, from_state=row.state,
                                        to_state=to_state, at=now, run_seq=0, check_id=None, failing_agents=[],
                                        notification="none", payload=None, delivery_attempts=0,
                                        last_delivery_error="")
                changes.update(state=to_state, state_since=now)
                if not values.paused:
                    changes.update(next_run_at=first_run_at(now, values.interval_s), failing_runs=0)
                session.add(event)
            elif not row.paused and values.interval_s < row.interval_s:
                changes["next_run_at"] = min(aware(row.next_run_at), now + timedelta(seconds=values.interval_s))
            await session.execute(update(_MONITORS).where(_MONITORS.c.id == monitor_id).values(**changes))
            await session.flush()
            row = await session.scalar(select(MonitorRow).where(MonitorRow.id == monitor_id)
                                       .execution_options(populate_existing=True))
        return Updated(cast(MonitorRow, row), event)

    async def delete(self, monitor_id: uuid.UUID) -> None:
        """Deletes the monitor with its runs, events and uptime buckets (ON DELETE CASCADE); its checks stay."""
        async with self.sessions() as session, session.begin():
            # Explicitly too: a SQLite connection made without the foreign_keys pragma would not cascade.
            await session.execute(delete(MonitorEventRow).where(MonitorEventRow.monitor_id == monitor_id))
            await session.execute(delete(MonitorRunRow).where(MonitorRunRow.monitor_id == monitor_id))
            await session.execute(delete(MonitorUptimeRow).where(MonitorUptimeRow.monitor_id == monitor_id))
            result = await session.execute(delete(MonitorRow).where(MonitorRow.id == monitor_id))
            if not cast(CursorResult, result).rowcount:
                raise NotFound(f"monitor {monitor_id} not found")

    async def list_runs(self, monitor_id: uuid.UUID, *, page_size: int, page_token: str
                        ) -> tuple[list[MonitorRunRow], str]:
        """Newest first (by seq)."""
        page_size = _page_size(page_size, 50, 500)
        stmt = select(MonitorRunRow).where(MonitorRunRow.monitor_id == monitor_id)
        if page_token:
            _, last = _decode_token(page_token)
            if not last.isdigit():
                raise InvalidArgument(field="page_token", reason="is not a token from a previous response")
            stmt = stmt.where(MonitorRunRow.seq < int(last))
        async with self.sessions() as session:
            rows = list((await session.scalars(stmt.order_by(MonitorRunRow.seq.desc()).limit(page_size + 1))).all())
        more = len(rows) > page_size
        rows = rows[:page_size]
        return rows, _encode_token(rows[-1].scheduled_at, rows[-1].seq) if more else ""

    async def list_events(self, monitor_id: uuid.UUID, *, page_size: int, page_token: str
                          ) -> tuple[list[MonitorEventRow], str]:
        """Newest first."""
        page_size = _page_size(page_size, 50, 500)
        stmt = select(MonitorEventRow).where(MonitorEventRow.monitor_id == monitor_id)
        if page_token:
            at, last = _decode_token(page_token)
            try:
                last_id = uuid.UUID(last)
            except ValueError:
                raise InvalidArgument(field="page_token", reason="is not a token from a previous response") from None
            stmt = stmt.where(or_(MonitorEventRow.at < at, and_(MonitorEventRow.at == at, MonitorEventRow.id < last_id)))
        stmt = stmt.order_by(MonitorEventRow.at.desc(), MonitorEventRow.id.desc()).limit(page_size + 1)
        async with self.sessions() as session:
            rows = list((await session.scalars(stmt)).all())
        more = len(rows) > page_size
        rows = rows[:page_size]
        return rows, _encode_token(rows[-1].at, rows[-1].id) if more else ""

    async def last_runs(self, monitor_ids: list[uuid.UUID]) -> dict[uuid.UUID, MonitorRunRow]:
        """Each monitor's last evaluated run (none before its first is)."""
        if not monitor_ids:
            return {}
        async with self.sessions() as session:
            rows = (await session.scalars(select(MonitorRunRow).join(MonitorRow, and_(
                MonitorRow.id == MonitorRunRow.monitor_id, MonitorRow.last_evaluated_seq == MonitorRunRow.seq))
                .where(MonitorRow.id.in_(monitor_ids)))).all()
        return {r.monitor_id: r for r in rows}

    async def uptime(self, monitor_ids: list[uuid.UUID], now: datetime | None = None) -> dict[uuid.UUID, Uptime]:
        """Uptime over the last 24 hours and 7 days of each monitor, in whole hours: the last 24 (168)
        hourly buckets including the current one (see the module's docstring). One grouped query
        for all of them; a monitor without a judged run in the week is left out."""
        if not monitor_ids:
            return {}
        current = hour_of(now or utcnow())
        day = current - timedelta(hours=DAY_HOURS - 1)
        week = current - timedelta(hours=WEEK_HOURS - 1)
        c = _UPTIME.c
        up, judged = c.up + c.degraded, c.up + c.degraded + c.failing
        recent = c.hour >= day
        stmt = (select(c.monitor_id, func.sum(up), func.sum(judged),
                       func.sum(case((recent, up), else_=0)), func.sum(case((recent, judged), else_=0)))
                .where(c.monitor_id.in_(monitor_ids), c.hour >= week)
                .group_by(c.monitor_id))
        async with self.sessions() as session:
            rows = (await session.execute(stmt)).all()
        out = {}
        for monitor_id, week_up, week_all, day_up, day_all in rows:
            if not week_all:
                continue
            out[monitor_id] = Uptime(day=(day_up or 0) / day_all if day_all else None,
                                     week=(week_up or 0) / week_all)
        return out

    async def status_page(self, slug: str) -> list[MonitorRow]:
        """The monitors shown at /status/{slug}, by name (NotFound: none)."""
        async with self.sessions() as session:
            rows = list((await session.scalars(select(MonitorRow).where(MonitorRow.status_slug == slug)
                                               .order_by(MonitorRow.name, MonitorRow.id))).all())
        if not rows:
            raise NotFound(f"no status page {slug!r}")
        return rows

    # -- schedulers' API ---------------------------------------------------------------------

    async def claim_due_runs(self, scheduler_id: str, limit: int, now: datetime | None = None, *,
                             ahead_s: float = CLAIM_AHEAD_S) -> tuple[list[Claimed], datetime | None]:
        """Claims up to `limit` runs due by `ahead_s` from now (earliest first) in one transaction;
        returns them and when the earliest run not claimed now is due (None: no unpaused monitor).
        The scheduler starts a run claimed ahead at its time (ClaimedRun.scheduled_at).

        Each claimed monitor's next run is one interval after the claimed one, or one interval
        from now when that is past already (missed runs are skipped, not caught up).
        """
        now = now or utcnow()
        claimed: list[Claimed] = []
        async with self.sessions() as session, session.begin():
            due = list((await session.scalars(_lock(
                select(MonitorRow).where(MonitorRow.paused.is_(False),
                                         MonitorRow.next_run_at <= now + timedelta(seconds=ahead_s))
                .order_by(MonitorRow.next_run_at).limit(limit), session, skip_locked=True))).all())
            runs = []
            locked = _postgres(session)
            advances = []
            for monitor in due:
                seq = monitor.run_seq + 1
                scheduled = aware(monitor.next_run_at)
                following = scheduled + timedelta(seconds=monitor.interval_s)
                if following <= now:
                    following = now + timedelta(seconds=monitor.interval_s)
                if locked:
                    # Postgres: the row is ours (FOR UPDATE): all advances go in one executemany below.
                    advances.append({"m_id": monitor.id, "m_seq": seq, "m_next": following})
                else:
                    advanced = await session.execute(
                        update(_MONITORS).where(_MONITORS.c.id == monitor.id, _MONITORS.c.run_seq == monitor.run_seq,
                                                _MONITORS.c.paused.is_(False))
                        .values(run_seq=seq, next_run_at=following))
                    if not cast(CursorResult, advanced).rowcount:
                        continue  # another claimer took it (SQLite reads outside the write lock), or paused
                run = MonitorRunRow(monitor_id=monitor.id, seq=seq, check_id=uuid.uuid4(), scheduled_at=scheduled,
                                    claimed_at=now, claimed_by=scheduler_id[:128], started_at=None,
                                    finished_at=None, verdict="running", agents_total=0, agents_failing=0,
                                    agents=[], state_after="", reason="", evaluated=False)
                runs.append(run)
                claimed.append(Claimed(monitor, run))
            if advances:
                await session.execute(update(_MONITORS).where(_MONITORS.c.id == bindparam("m_id")).values(
                    run_seq=bindparam("m_seq"), next_run_at=bindparam("m_next")), advances)
            if runs:
                await session.execute(insert(_RUNS), [
                    {c.key: getattr(r, c.key) for c in _RUNS.columns} for r in runs])
            next_due = await session.scalar(select(func.min(MonitorRow.next_run_at))
                                            .where(MonitorRow.paused.is_(False)))
        for c in claimed:
            c.monitor.run_seq = c.run.seq
        return claimed, aware(next_due) if next_due is not None else None

    async def report_not_started(self, monitor_id: uuid.UUID, seq: int, code: str, reason: str,
                                 now: datetime | None = None) -> MonitorRunRow:
        """A claimed run whose check could not be created ends `unknown` with the reason (evaluated later,
        in order, like any run)."""
        now = now or utcnow()
        async with self.sessions() as session, session.begin():
            await session.execute(update(_RUNS).where(
                _RUNS.c.monitor_id == monitor_id, _RUNS.c.seq == seq, _RUNS.c.started_at.is_(None),
                _RUNS.c.verdict == "running").values(
                verdict="unknown", reason=(f"{code}: {reason}" if code else reason)[:2000], finished_at=now))
            run = await session.scalar(select(MonitorRunRow).where(
                MonitorRunRow.monitor_id == monitor_id, MonitorRunRow.seq == seq)
                .execution_options(populate_existing=True))
            if run is None:
                raise NotFound(f"run {seq} of monitor {monitor_id} not found")
            if run.started_at is not None:
                raise FailedPrecondition(f"run {seq} of monitor {monitor_id} has started (check {run.check_id})")
        return run


def _owned_by(owner: uuid.UUID | None):
    """Monitors of this key (None: the admin's own)."""
    if owner is None:
        return MonitorRow.created_by_key_id.is_(None)
    return MonitorRow.created_by_key_id == owner


async def delete_runs_before(sessions: async_sessionmaker, before: datetime, *, batch: int = 5000) -> int:
    """Retention: deletes monitor runs scheduled before `before` in batches; their monitors and
    events stay. Returns how many went."""
    deleted = 0
    for evaluated in (True, False):
        while True:
            async with sessions() as session, session.begin():
                chosen = (await session.execute(
                    select(MonitorRunRow.monitor_id, MonitorRunRow.seq)
                    .where(MonitorRunRow.evaluated.is_(evaluated), MonitorRunRow.scheduled_at < before)
                    .limit(batch))).all()
                by_monitor: dict[uuid.UUID, list[int]] = {}
                for monitor_id, seq in chosen:
                    by_monitor.setdefault(monitor_id, []).append(seq)
                for monitor_id, seqs in by_monitor.items():
                    await session.execute(delete(MonitorRunRow).where(
                        MonitorRunRow.monitor_id == monitor_id, MonitorRunRow.seq.in_(seqs)))
            deleted += len(chosen)
            if len(chosen) < batch:
                break
    return deleted



async def delete_uptime_before(sessions: async_sessionmaker, now: datetime) -> int:
    """Retention: deletes the uptime buckets of hours that ended more than 8 days before `now`
    (uptime looks back 7; the runs themselves may be kept longer or shorter). Small rows, one
    statement: about one bucket per monitor per hour goes."""
    async with sessions() as session, session.begin():
        result = await session.execute(delete(MonitorUptimeRow).where(
            MonitorUptimeRow.hour < hour_of(now - UPTIME_KEPT)))
    return cast(CursorResult, result).rowcount or 0
