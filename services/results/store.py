"""Persistence of checks, tasks and results: the rules that keep them correct.

- A result is stored at most once per task (resends are acknowledged, not duplicated).
- A task ends completed (probe succeeded), failed (probe failed) or timed_out
  (no result by its deadline plus grace); never pending forever.
- A check is terminal when its last task is: completed if any task produced a
  result, failed if none did.
- Changes to one check are serialised by locking its row, so two replicas
  storing results of the same check never both miss its completion.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import cast

import sqlalchemy.exc
from sqlalchemy import (
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hostcheck.core.errors import InvalidArgument, NotFound
from hostcheck.core.storable import MAX_ERROR_CHARS, escape
from hostcheck.services.results.models import (
    AGENT_NAME_LEN,
    CITY_LEN,
    COUNTRY_LEN,
    LOCATION_LEN,
    REGION_LEN,
    CheckRow,
    ResultRow,
    TaskRow,
)
from hostcheck.services.results.monitormodels import MonitorRunRow
from hostcheck.services.results.monitors import start_run
from hostcheck.services.storage import db
from hostcheck.services.storage.db import is_outage
from hostcheck.services.storage.models import utcnow
from hostcheck.v1 import checks_pb2

log = logging.getLogger(__name__)

TERMINAL_TASK = ("completed", "failed", "timed_out")
# The error code of a result stored in place of one that could not be stored as sent.
QUARANTINED = "quarantined"
# Not finished: pending (sent to its agent), running (its agent started it).
OPEN_TASK = ("pending", "running")
TERMINAL_CHECK = ("completed", "failed")
CHECK_STATUSES = ("pending", "in_progress", "completed", "failed")


@dataclass(frozen=True)
class AgentSnapshot:
    """Where a task runs: its agent as the scheduler saw it when planning (kept on the task)."""

    name: str = ""
    location: str = ""
    region: str = ""
    country: str = ""
    city: str = ""

    def fitted(self) -> AgentSnapshot:
        """Each field cut to its column's size (the registry holds agents to the same limits)."""
        return AgentSnapshot(name=self.name[:AGENT_NAME_LEN], location=self.location[:LOCATION_LEN],
                             region=self.region[:REGION_LEN], country=self.country[:COUNTRY_LEN],
                             city=self.city[:CITY_LEN])


@dataclass(frozen=True)
class PlannedTask:
    task_id: uuid.UUID
    agent_id: uuid.UUID
    check_type: str
    deadline: datetime
    agent: AgentSnapshot = field(default_factory=AgentSnapshot)

    def pending(self, check_id: uuid.UUID, now: datetime) -> TaskSnapshot:
        """The task as open_check writes it."""
        agent = self.agent.fitted()
        return TaskSnapshot(id=self.task_id, check_id=check_id, agent_id=self.agent_id, agent_name=agent.name,
                            location=agent.location, region=agent.region, country=agent.country, city=agent.city,
                            check_type=self.check_type, status="pending", reason="", created_at=now,
                            started_at=None, completed_at=None, deadline_at=self.deadline)


@dataclass(frozen=True)
class IncomingResult:
    agent_id: uuid.UUID
    task_id: uuid.UUID
    success: bool
    data: dict
    error: str
    error_code: str
    duration_ms: float
    started_at: datetime | None
    # The check type the agent says it ran ("": not said).
    check_type: str = ""
    # Why this stands in for a result that could not be stored as sent (a metric label); "": it is the result.
    quarantine: str = ""
    # `data` as JSON text when the caller encoded it already (ingest.judge does, to check its size):
    # stored as it is on Postgres instead of being encoded again. None: encoded when stored.
    data_json: str | None = field(default=None, compare=False, repr=False)
    # The check the agent says the task is of (None: not said, or not a UUID). Only narrows which
    # checks a write reads back for their done events; the task's own check is what counts.
    check_id: uuid.UUID | None = field(default=None, compare=False, repr=False)

    def quarantined(self, kind: str, message: str) -> IncomingResult:
        """The failed result stored in place of this one: error code QUARANTINED, `message` saying why."""
        return IncomingResult(agent_id=self.agent_id, task_id=self.task_id, success=False, data={},
                              error=f"result quarantined: {escape(message)}"[:MAX_ERROR_CHARS],
                              error_code=QUARANTINED, duration_ms=self.duration_ms, started_at=self.started_at,
                              quarantine=kind, check_id=self.check_id)


@dataclass
class _Write:
    """One result to store and its task's update (none when the task had ended: a late result)."""

    task: TaskSnapshot
    incoming: IncomingResult
    late: bool

    def result(self, now: datetime) -> ResultSnapshot:
        """The result as written, kept on its task's snapshot (live events are built from it)."""
        task, incoming = self.task, self.incoming
        task.result = ResultSnapshot(
            task_id=task.id, check_id=task.check_id, agent_id=task.agent_id, check_type=task.check_type,
            success=incoming.success, data=incoming.data, error=incoming.error or None,
            error_code=incoming.error_code, duration_ms=incoming.duration_ms,
            started_at=incoming.started_at, created_at=now, late=self.late)
        return task.result

    def result_row(self, now: datetime) -> dict:
        return {"id": uuid.uuid4(), **vars(self.result(now))}

    def data_json(self) -> str:
        """The result's data as the JSON text Postgres parses into the jsonb column."""
        encoded = self.incoming.data_json
        return encoded if encoded is not None else _JSON.encode(self.incoming.data)

    def task_update(self, now: datetime) -> dict | None:
        if self.late:
            return None
        task, incoming = self.task, self.incoming
        task.status = "completed" if incoming.success else "failed"
        task.started_at = incoming.started_at
        task.completed_at = now
        task.reason = "" if incoming.success else (incoming.error_code or "failed")
        return {"t_id": task.id, "t_status": task.status, "t_started_at": task.started_at,
                "t_completed_at": now, "t_reason": task.reason}


@dataclass
class ResultSnapshot:
    """A result as written, shaped like ResultRow for views.result_view."""

    task_id: uuid.UUID
    check_id: uuid.UUID
    agent_id: uuid.UUID
    check_type: str
    success: bool
    data: dict
    error: str | None
    error_code: str
    duration_ms: float
    started_at: datetime | None
    created_at: datetime
    late: bool


@dataclass
class TaskSnapshot:
    """A task as written, shaped like TaskRow for views.task_view."""

    id: uuid.UUID
    check_id: uuid.UUID
    agent_id: uuid.UUID
    agent_name: str
    location: str
    region: str
    country: str
    city: str
    check_type: str
    status: str
    reason: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    deadline_at: datetime
    result: ResultSnapshot | None = None


@dataclass
class CheckSnapshot:
    """A check as written, shaped like CheckRow for views.check_view."""

    id: uuid.UUID
    target: str
    check_types: list[str]
    request: dict
    status: str
    created_at: datetime
    completed_at: datetime | None
    deadline_at: datetime
    client_ip: str
    tasks: list[TaskSnapshot]
    created_by_key_id: uuid.UUID | None = None
    # A monitor's run (migration 0007), and that run as its check's opening left it (started).
    monitor_id: uuid.UUID | None = None
    monitor_run: int | None = None
    started_run: MonitorRunRow | None = None


@dataclass(frozen=True)
class CheckOwner:
    """Whose checks a listing shows: a key's (key_id), or an anonymous client's from `since` on."""

    key_id: uuid.UUID | None = None
    client_ip: str = ""
    since: datetime | None = None


@dataclass
class CheckState:
    """A check as the write that changed it left it (read under the check's lock).

    Live events are built from it, so a write does not read its checks back.
    """

    status: str
    tasks_done: int
    tasks_total: int
    # The tasks this write changed, with their result (TaskRow or TaskSnapshot).
    tasks: dict[uuid.UUID, TaskRow | TaskSnapshot] = field(default_factory=dict)


@dataclass
class Changes:
    """What a write changed, for live events."""

    stored: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    # Stored as quarantined failed results, and why (IncomingResult.quarantine, one per id).
    quarantined: list[str] = field(default_factory=list)
    quarantine_kinds: list[str] = field(default_factory=list)
    # (task id, why): refused by the database even as a quarantined result; nothing stored.
    rejected: list[tuple[str, str]] = field(default_factory=list)
    tasks: dict[uuid.UUID, list[uuid.UUID]] = field(default_factory=lambda: defaultdict(list))
    finished_checks: set[uuid.UUID] = field(default_factory=set)
    checks: dict[uuid.UUID, CheckState] = field(default_factory=dict)
    # Finished checks as the write left them, every task and result (read inside the write, on
    # Postgres, for checks of at most DONE_READ_TASKS tasks): their done events need no read.
    done: dict[uuid.UUID, CheckSnapshot] = field(default_factory=dict)


_TASKS = cast(Table, TaskRow.__table__)
_UPDATE_TASK = update(_TASKS).where(_TASKS.c.id == bindparam("t_id")).values(
    status=bindparam("t_status"), started_at=bindparam("t_started_at"), completed_at=bindparam("t_completed_at"),
    reason=bindparam("t_reason"))


# A batch's results, its tasks' updates and the checks it ends, in one statement (one round trip).
# The rows go as three JSON parameters (json.dumps is C): a row of parameters per result
# (SQLAlchemy's executemany) or an array parameter per column (psycopg dumps a list with a
# Python call per element) was most of a write's Python (issue 17). The checks ended are returned.
_WRITE = (
    "WITH r AS (INSERT INTO check_results (id, task_id, check_id, agent_id, check_type, success, data, error, "
    "error_code, duration_ms, started_at, created_at, late) "
    "SELECT gen_random_uuid(), v.task_id, v.check_id, v.agent_id, v.check_type, v.success, v.data, "
    "v.error, v.error_code, v.duration_ms, v.started_at, :now, v.late "
    "FROM json_to_recordset(CAST(:results AS json)) AS v(task_id uuid, check_id uuid, agent_id uuid, "
    "check_type varchar, success boolean, data jsonb, error text, error_code varchar, duration_ms float8, "
    "started_at timestamptz, late boolean)), "
    "t AS (UPDATE check_tasks SET status = v.status, started_at = v.started_at, completed_at = :now, "
    "reason = v.reason FROM json_to_recordset(CAST(:tasks AS json)) "
    "AS v(id uuid, status varchar, started_at timestamptz, reason text) WHERE check_tasks.id = v.id), "
    "c AS (UPDATE checks SET status = v.status, completed_at = :now "
    "FROM json_to_recordset(CAST(:checks AS json)) AS v(id uuid, status varchar) "
    "WHERE checks.id = v.id AND checks.status NOT IN ('completed', 'failed') RETURNING checks.id) "
    "SELECT id FROM c")
_WRITE_PG = text(_WRITE)


def _psycopg(sql: str) -> str:
    """A statement written with SQLAlchemy's :name parameters in psycopg's %(name)s style."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql)


# The raw statements of ResultsStore._record_pg and open_check (Postgres). Constant texts, so
# psycopg converts each once; the ids go as one uuid[] text parameter ('{a,b}'). Statements
# with such an array are not prepared (`prepare=False`): a prepared statement's generic plan
# searches the array row by row (`id = ANY($1)`), a custom plan hashes it once (a constant):
# prepared, Postgres took 4x the CPU when ingesting (issue 17).
_CHECK_COLUMNS = ("id, status, target, check_types, request, created_at, completed_at, deadline_at, client_ip, "
                  "created_by_key_id, monitor_id, monitor_run")
_TASK_COLUMNS = ("id, check_id, agent_id, agent_name, location, region, country, city, check_type, status, "
                 "reason, created_at, started_at, completed_at, deadline_at")
_RESULT_COLUMNS = "task_id, check_id, agent_id, check_type, success, data, error, error_code, duration_ms, " \
                  "started_at, created_at, late"
# The checks of these tasks, locked in id order (every writer locks in that order: no deadlock),
# with their task counts (total, open, ended with a result: kept on the row by triggers on
# check_tasks, migration 0008). Counting the checks' tasks here instead cost Postgres 21-36 ms
# per batch of 500 results of 40 checks of 1,000 tasks (issue 17).
# The tasks are found one id at a time (LATERAL ... LIMIT 1: an index probe each, whatever the
# statistics say): with `id = ANY(...)` the planner chose to scan every task of the partition
# once the checks' rows had been updated a few times (3.4-3.8 ms a batch, 1.4-1.7 probing).
_BY_ID = ("FROM unnest(CAST(%(ids)s AS uuid[])) AS u(id) "
          "JOIN LATERAL (SELECT * FROM check_tasks WHERE check_tasks.id = u.id LIMIT 1) t ON true")
_LOCK_SQL = (f"SELECT {_CHECK_COLUMNS}, tasks_total, tasks_open, tasks_produced FROM checks "
             f"WHERE id IN (SELECT t.check_id {_BY_ID}) ORDER BY id FOR UPDATE")
# Index of tasks_total in a _LOCK_SQL row (then tasks_open, tasks_produced).
_COUNTS_AT = len(_CHECK_COLUMNS.split(", "))
# A batch's write, decided and done by Postgres in one statement sent right after _LOCK_SQL in the
# same pipeline, and the COMMIT with them: the checks' locks are held only while Postgres works,
# never across a round trip or the results service's Python (issue 17: reading the tasks, planning
# and encoding a 500-result batch, 22 ms of CPU at load 7, ran under the locks between two round
# trips, so a second call's write waited for it as well as for Postgres). It runs
# once the locks are held, with a snapshot taken then, so no other write changes what it reads
# before this one commits. It makes the same decisions as _plan / _ends (which then build the
# events from the rows it returns, read in the same snapshot): a task not found, or not this
# agent's, is unknown (no row); a task with a result already is a resend (nothing written); a
# result of another check type than its task's (`sent_type`: the data's type, `claimed`: the
# agent's word) is stored quarantined, unless quarantined already; a result of an ended task is
# stored late, its task left as it is; a check whose last open task this ends is ended. The
# tasks are found by index probes (LATERAL ... LIMIT 1): with `id = ANY(...)` the planner chose to
# scan every task of the partition once the checks' rows had been updated a few times; as a
# join, Postgres hashed every stored result for each batch. The results' rows go as one JSON
# parameter (json.dumps is C), encoded before the transaction. Returns each task found (as it
# was before the write: _TASK_COLUMNS), whether it had a result, and its check's status if this
# write ended the check.
_RECORD_SQL = (
    "WITH v AS (SELECT " + ", ".join(f"t.{c}" for c in _TASK_COLUMNS.split(", ")) + ", "
    "r.id IS NOT NULL AS has_result, x.success, x.data, x.error, x.code, x.duration_ms, x.started, x.sent_type, "
    "x.claimed, x.quarantined "
    "FROM json_to_recordset(CAST(%(results)s AS json)) AS x(task_id uuid, agent uuid, success boolean, data jsonb, "
    "error text, code varchar, duration_ms float8, started timestamptz, sent_type varchar, claimed varchar, "
    "quarantined boolean) "
    "JOIN LATERAL (SELECT * FROM check_tasks WHERE check_tasks.id = x.task_id LIMIT 1) t ON t.agent_id = x.agent "
    "LEFT JOIN LATERAL (SELECT id FROM check_results WHERE check_results.task_id = t.id LIMIT 1) r ON true), "
    "w AS (SELECT v.*, v.status IN ('completed', 'failed', 'timed_out') AS late, NOT v.quarantined "
    "AND ((v.sent_type <> '' AND v.sent_type <> v.check_type) OR (v.claimed <> '' AND v.claimed <> v.check_type)) "
    "AS mismatch FROM v WHERE NOT v.has_result), "
    "ins AS (INSERT INTO check_results (id, task_id, check_id, agent_id, check_type, success, data, error, "
    "error_code, duration_ms, started_at, created_at, late) "
    "SELECT gen_random_uuid(), w.id, w.check_id, w.agent_id, w.check_type, w.success AND NOT w.mismatch, "
    "CASE WHEN w.mismatch THEN CAST('{}' AS jsonb) ELSE w.data END, "
    "CASE WHEN w.mismatch THEN 'result quarantined: a ' || COALESCE(NULLIF(w.sent_type, ''), w.claimed) "
    "|| ' result for a ' || w.check_type || ' task' ELSE w.error END, "
    f"CASE WHEN w.mismatch THEN '{QUARANTINED}' ELSE w.code END, w.duration_ms, w.started, %(now)s, w.late FROM w), "
    "upd AS (UPDATE check_tasks SET status = CASE WHEN w.success AND NOT w.mismatch THEN 'completed' ELSE 'failed' END, "
    "started_at = w.started, completed_at = %(now)s, reason = CASE WHEN w.success AND NOT w.mismatch THEN '' "
    f"WHEN w.mismatch THEN '{QUARANTINED}' ELSE COALESCE(NULLIF(w.code, ''), 'failed') END "
    "FROM w WHERE check_tasks.id = w.id AND NOT w.late), "
    "n AS (SELECT check_id, count(*) AS n FROM w WHERE NOT w.late GROUP BY check_id), "
    "ends AS (UPDATE checks SET status = CASE WHEN checks.tasks_produced + n.n > 0 THEN 'completed' ELSE 'failed' END, "
    "completed_at = %(now)s FROM n WHERE checks.id = n.check_id AND checks.tasks_total > 0 "
    "AND checks.tasks_open = n.n AND checks.status NOT IN ('completed', 'failed') RETURNING checks.id, checks.status) "
    "SELECT " + ", ".join(f"v.{c}" for c in _TASK_COLUMNS.split(", ")) + ", v.has_result, ends.status "
    "FROM v LEFT JOIN ends ON ends.id = v.check_id")
# These checks, and every task of them with its result (read_checks; and in a write that ends
# small checks, after the write: what their done events carry).
_CHECKS_SQL = f"SELECT {_CHECK_COLUMNS} FROM checks WHERE id = ANY(CAST(%(ids)s AS uuid[]))"
_CHECKS_TASKS_SQL = (
    "SELECT " + ", ".join(f"t.{c}" for c in _TASK_COLUMNS.split(", ")) + ", "
    + ", ".join(f"r.{c}" for c in _RESULT_COLUMNS.split(", ")) + " FROM check_tasks t "
    "LEFT JOIN check_results r ON r.task_id = t.id WHERE t.check_id = ANY(CAST(%(ids)s AS uuid[])) "
    "ORDER BY t.created_at")
# Ended checks of at most this many tasks are read back inside the write that ends them (their
# done events then need no read); bigger ones are read after the write, and only when watched.
DONE_READ_TASKS = 64
# The checks this write ended that have at most DONE_READ_TASKS tasks, with every task and result
# (what their done events carry), read after _RECORD_SQL in the same pipeline. The write's checks
# are those its results name (`checks`: the agents' word, only narrowing the read: ended ones are
# told by _RECORD_SQL), or, when a result names none, found from the tasks as _LOCK_SQL finds them.
# The checks first, then their tasks by the index on check_id (LATERAL ... OFFSET 0: not flattened
# into a join): as a join, Postgres sorted every task of the partition by created_at and merged
# them with the (no) checks found, ~100 ms a batch when ingesting (issue 17).
_DONE_COLUMNS = (", ".join(f"t.{c}" for c in _TASK_COLUMNS.split(", ")) + ", "
                 + ", ".join(f"r.{c}" for c in _RESULT_COLUMNS.split(", ")))
_DONE_FROM = (f"SELECT {_DONE_COLUMNS} FROM checks c "
              "CROSS JOIN LATERAL (SELECT * FROM check_tasks WHERE check_tasks.check_id = c.id OFFSET 0) t "
              "LEFT JOIN LATERAL (SELECT * FROM check_results WHERE check_results.task_id = t.id LIMIT 1) r ON true ")
_DONE_WHERE = (f"c.completed_at = %(now)s AND c.tasks_total <= {DONE_READ_TASKS} "
               "AND c.status IN ('completed', 'failed') ORDER BY t.created_at")
_DONE_SQL = f"{_DONE_FROM}WHERE c.id = ANY(CAST(%(checks)s AS uuid[])) AND {_DONE_WHERE}"
_DONE_BY_TASKS_SQL = f"{_DONE_FROM}WHERE c.id IN (SELECT t.check_id {_BY_ID}) AND {_DONE_WHERE}"
# A check and its pending tasks in one statement (OpenCheck). A check id taken already is
# refused by the primary key (no SELECT first: one round trip less per check, issue 17).
_OPEN_SQL = (
    f"WITH c AS (INSERT INTO checks ({_CHECK_COLUMNS}) VALUES (%(id)s, %(status)s, %(target)s, "
    "CAST(%(check_types)s AS jsonb), CAST(%(request)s AS jsonb), %(now)s, %(completed_at)s, %(deadline)s, "
    "%(client_ip)s, %(key)s, NULL, NULL)) "
    f"INSERT INTO check_tasks ({_TASK_COLUMNS}) SELECT v.id, %(id)s, v.agent_id, v.agent_name, v.location, "
    "v.region, v.country, v.city, v.check_type, 'pending', '', %(now)s, NULL, NULL, v.deadline_at "
    "FROM json_to_recordset(CAST(%(tasks)s AS json)) AS v(id uuid, agent_id uuid, agent_name varchar, "
    "location varchar, region varchar, country varchar, city varchar, check_type varchar, deadline_at timestamptz)")

_CHECKS = cast(Table, CheckRow.__table__)
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _uuid_array(ids) -> str:
    """Ids as the text of a Postgres uuid[] ('{a,b}'): one text parameter, whatever their number
    (a list parameter is dumped with a Python call per element; IN lists make the text vary)."""
    return "{" + ",".join(map(str, ids)) + "}"


def _found(rows, found: dict[uuid.UUID, tuple[TaskSnapshot, bool]]) -> None:
    """Rows of (a task's 15 columns, its result's id or None)."""
    for r in rows:
        found[r[0]] = (TaskSnapshot(*r[:15]), r[15] is not None)


def _plan(by_task: dict[uuid.UUID, IncomingResult], found: dict[uuid.UUID, tuple[TaskSnapshot, bool]],
          changes: Changes) -> list[_Write]:
    """What to write of a batch: unknown tasks and resends noted in `changes`, a result of another
    check type than its task's quarantined, a result of an ended task late."""
    writes: list[_Write] = []
    for task_id, incoming in by_task.items():
        task, has_result = found.get(task_id, (None, False))
        if task is None or task.agent_id != incoming.agent_id:
            # Deleted check, or a task that is not this agent's: nothing to store.
            changes.unknown.append(str(task_id))
            continue
        if has_result:
            changes.stored.append(str(task_id))  # a resend: stored before
            continue
        sent_type = next(iter(incoming.data), None)
        if not incoming.quarantine and (sent_type not in (None, task.check_type)
                                        or incoming.check_type not in ("", task.check_type)):
            incoming = incoming.quarantined(
                "data_type", f"a {sent_type or incoming.check_type} result for a {task.check_type} task")
        writes.append(_Write(task, incoming, task.status in TERMINAL_TASK))
    return writes


def _ends(writes: list[_Write], counts: dict[uuid.UUID, tuple[int, int, int]], statuses: dict[uuid.UUID, str]
          ) -> tuple[dict[uuid.UUID, tuple[int, int, int]], dict[uuid.UUID, str]]:
    """Each check's (tasks, open, ended with a result) once written, and the checks the write ends
    (check id -> status): each write that is not late ends an open task of its check with a result."""
    ending = Counter(w.task.check_id for w in writes if not w.late)
    after = {c: (total, still_open - ending[c], produced + ending[c])
             for c, (total, still_open, produced) in counts.items()}
    ends = {c: "completed" if produced else "failed" for c, (total, still_open, produced) in after.items()
            if c in ending and total and not still_open and statuses.get(c) not in TERMINAL_CHECK}
    return after, ends


def _note(changes: Changes, writes: list[_Write], after: dict[uuid.UUID, tuple[int, int, int]],
          statuses: dict[uuid.UUID, str], ended: dict[uuid.UUID, str],
          found: dict[uuid.UUID, tuple[TaskSnapshot, bool]]) -> None:
    """What the write stored and the state it left each check in, for the reply and live events."""
    for w in writes:
        (changes.quarantined if w.incoming.quarantine else changes.stored).append(str(w.task.id))
        if w.incoming.quarantine:
            changes.quarantine_kinds.append(w.incoming.quarantine)
        changes.tasks[w.task.check_id].append(w.task.id)
    for check_id, task_ids in changes.tasks.items():
        total, still_open, _ = after.get(check_id, (0, 0, 0))
        status = statuses.get(check_id, "in_progress")
        if check_id in ended:
            changes.finished_checks.add(check_id)
            status = ended[check_id]
        changes.checks[check_id] = CheckState(
            status=status, tasks_done=total - still_open, tasks_total=total,
            tasks={t: found[t][0] for t in task_ids if t in found})


def _write_params(writes: list[_Write], now: datetime, ending: dict[uuid.UUID, str]) -> dict | None:
    """The parameters of _WRITE (None: nothing to write). Makes each write's result snapshot and
    task update (what live events are built from)."""
    if not writes and not ending:
        return None
    rows, tasks = [], []
    for w in writes:
        r = w.result(now)  # the snapshot live events are built from
        # The data's JSON goes in as it is, not as a string in the row's JSON (escaped and parsed twice).
        rows.append(_JSON.encode({
            "task_id": str(r.task_id), "check_id": str(r.check_id), "agent_id": str(r.agent_id),
            "check_type": r.check_type, "success": r.success, "error": r.error, "error_code": r.error_code,
            "duration_ms": r.duration_ms, "started_at": r.started_at.isoformat() if r.started_at else None,
            "late": r.late})[:-1] + ',"data":' + w.data_json() + "}")
        if w.task_update(now) is not None:
            t = w.task
            tasks.append({"id": str(t.id), "status": t.status, "reason": t.reason,
                          "started_at": t.started_at.isoformat() if t.started_at else None})
    return {"now": now, "results": "[" + ",".join(rows) + "]", "tasks": _JSON.encode(tasks),
            "checks": _JSON.encode([{"id": str(c), "status": s} for c, s in ending.items()])}


def _record_rows(results) -> str:
    """The results as _RECORD_SQL's JSON parameter: each as the agent sent it (judged), with its
    data's type (the data's one key) and the check type the agent says; its task decides the rest.
    Each row formatted directly, its strings encoded by json (half the CPU of a dict per row encoded)."""
    enc = _JSON.encode
    rows = []
    for r in results:
        # The data's JSON goes in as it is, not as a string in the row's JSON (escaped and parsed twice).
        data = r.data_json if r.data_json is not None else enc(r.data)
        sent_type = next(iter(r.data), "")
        rows.append(
            f'{{"task_id":"{r.task_id}","agent":"{r.agent_id}","success":{"true" if r.success else "false"},'
            f'"error":{enc(r.error) if r.error else "null"},"code":{enc(r.error_code) if r.error_code else _EMPTY},'
            f'"duration_ms":{float.__repr__(float(r.duration_ms))},'
            f'"started":{enc(r.started_at.isoformat()) if r.started_at else "null"},'
            f'"sent_type":{enc(sent_type) if sent_type else _EMPTY},'
            f'"claimed":{enc(r.check_type) if r.check_type else _EMPTY},'
            f'"quarantined":{"true" if r.quarantine else "false"},"data":{data}}}')
    return "[" + ",".join(rows) + "]"


_EMPTY = '""'


def _snapshots(checks, rows, ended: dict[uuid.UUID, str] | None = None, now: datetime | None = None
               ) -> dict[uuid.UUID, CheckSnapshot]:
    """Checks as read_checks reads them: `checks` their rows (_CHECK_COLUMNS), `rows` their tasks with
    results (_CHECKS_TASKS_SQL). With `ended` (check id -> status), only those checks, ended at `now`
    by the write that read them (their rows were read, locked, before it)."""
    done: dict[uuid.UUID, CheckSnapshot] = {}
    for c in checks:
        if ended is not None and c[0] not in ended:
            continue
        status, completed_at = (ended[c[0]], now) if ended is not None else (c[1], c[6])
        done[c[0]] = CheckSnapshot(
            id=c[0], target=c[2], check_types=c[3], request=c[4], status=status, created_at=c[5],
            completed_at=completed_at, deadline_at=c[7], client_ip=c[8], tasks=[], created_by_key_id=c[9],
            monitor_id=c[10], monitor_run=c[11])
    for r in rows:
        check = done.get(r[1])
        if check is None:
            continue
        task = TaskSnapshot(*r[:15])
        if r[15] is not None:
            task.result = ResultSnapshot(*r[15:27])
        check.tasks.append(task)
    return done

def _db_error(exc: sqlalchemy.exc.DBAPIError) -> str:
    """The database's error in one short line (its first: later lines may quote the refused value)."""
    orig = exc.orig if exc.orig is not None else exc
    first = (str(orig).strip().splitlines() or [""])[0]
    return escape(f"{type(orig).__name__}: {first}")[:200]


def _lock(stmt, session: AsyncSession, *, skip_locked: bool = False):
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update(skip_locked=skip_locked)
    return stmt  # SQLite serialises writers itself


class ResultsStore:
    def __init__(self, sessions: async_sessionmaker) -> None:
        self.sessions = sessions
        self.engine: AsyncEngine = sessions.kw["bind"]
        # Postgres: the hot writes (open_check, record_results) go as raw statements (db.pg_transaction).
        self.postgres = self.engine.dialect.name == "postgresql"

    async def open_check(self, *, check_id: uuid.UUID, target: str, check_types: list[str], request: dict,
                         tasks: list[PlannedTask], deadline: datetime, client_ip: str,
                         created_by_key_id: uuid.UUID | None = None, monitor_id: uuid.UUID | None = None,
                         monitor_run: int | None = None) -> CheckSnapshot:
        """Stores a check and its pending tasks; returns them as written.

        Plain inserts, no ORM objects: a check may have a thousand tasks. A monitor's run
        (`monitor_id`, `monitor_run`) is marked started in the same transaction, which refuses a
        second check of the run (monitors.start_run).
        """
        if self.postgres and monitor_id is None:
            return await self._open_check_pg(check_id=check_id, target=target, check_types=check_types,
                                             request=request, tasks=tasks, deadline=deadline, client_ip=client_ip,
                                             created_by_key_id=created_by_key_id)
        async with self.sessions() as session, session.begin():
            now = utcnow()
            run = None
            if monitor_id is not None:
                run = await start_run(session, monitor_id, monitor_run or 0, check_id, now)
            # A run's check id was made (uuid4) with the run and start_run matched it: no other check has it.
            if run is None and await session.scalar(select(CheckRow.id).where(CheckRow.id == check_id)) is not None:
                raise InvalidArgument(field="check_id", reason=f"check {check_id} exists already")
            check = CheckSnapshot(id=check_id, target=target, check_types=check_types, request=request,
                                  status="in_progress" if tasks else "failed", created_at=now,
                                  completed_at=None if tasks else now, deadline_at=deadline, client_ip=client_ip,
                                  tasks=[t.pending(check_id, now) for t in tasks], created_by_key_id=created_by_key_id,
                                  monitor_id=monitor_id, monitor_run=monitor_run if monitor_id else None,
                                  started_run=run)
            await session.execute(insert(cast(Table, CheckRow.__table__)), [{
                "id": check.id, "target": target, "check_types": check_types, "request": request,
                "status": check.status, "created_at": now, "completed_at": check.completed_at,
                "deadline_at": deadline, "client_ip": client_ip, "created_by_key_id": created_by_key_id,
                "monitor_id": check.monitor_id, "monitor_run": check.monitor_run}])
            if tasks:
                await session.execute(insert(cast(Table, TaskRow.__table__)), [{
                    "id": t.id, "check_id": check_id, "agent_id": t.agent_id, "agent_name": t.agent_name,
                    "location": t.location, "region": t.region, "country": t.country, "city": t.city,
                    "check_type": t.check_type, "status": "pending", "reason": "", "created_at": now,
                    "started_at": None, "completed_at": None, "deadline_at": t.deadline_at} for t in check.tasks])
        return check

    async def _open_check_pg(self, *, check_id: uuid.UUID, target: str, check_types: list[str], request: dict,
                             tasks: list[PlannedTask], deadline: datetime, client_ip: str,
                             created_by_key_id: uuid.UUID | None) -> CheckSnapshot:
        """open_check of a check that is not a monitor's run, on Postgres: one statement (_OPEN_SQL),
        its BEGIN and COMMIT in one round trip. Through SQLAlchemy it was a SELECT (does the id
        exist?) and two inserts, 3.3 ms in the check's trace (issue 17); the primary key refuses a
        taken id instead, with the same INVALID_ARGUMENT."""
        now = utcnow()
        check = CheckSnapshot(id=check_id, target=target, check_types=check_types, request=request,
                              status="in_progress" if tasks else "failed", created_at=now,
                              completed_at=None if tasks else now, deadline_at=deadline, client_ip=client_ip,
                              tasks=[t.pending(check_id, now) for t in tasks], created_by_key_id=created_by_key_id)
        params = {"id": check_id, "status": check.status, "target": target, "check_types": _JSON.encode(check_types),
                  "request": _JSON.encode(request), "now": now, "completed_at": check.completed_at,
                  "deadline": deadline, "client_ip": client_ip, "key": created_by_key_id,
                  "tasks": _JSON.encode([{
                      "id": str(t.id), "agent_id": str(t.agent_id), "agent_name": t.agent_name,
                      "location": t.location, "region": t.region, "country": t.country, "city": t.city,
                      "check_type": t.check_type,
                      "deadline_at": t.deadline_at.isoformat() if t.deadline_at else None} for t in check.tasks])}
        try:
            async with db.pg_transaction(self.engine) as pg:
                await pg.execute(_OPEN_SQL, params)
        except sqlalchemy.exc.IntegrityError as exc:
            if getattr(getattr(exc.orig, "diag", None), "constraint_name", None) == "checks_pkey":
                raise InvalidArgument(field="check_id", reason=f"check {check_id} exists already") from None
            raise
        return check

    async def get_check(self, check_id: uuid.UUID) -> CheckRow:
        """The check with its tasks and results: a snapshot shaped like the rows (read_checks; the
        ORM load of the same cost a watcher's snapshot several times more), for reading only."""
        row = (await self.read_checks([check_id])).get(check_id)
        if row is None:
            raise NotFound(f"check {check_id} not found")
        return cast(CheckRow, row)

    async def list_checks(self, *, page_size: int, page_token: str, status: str, target: str,
                          owner: CheckOwner | None = None, monitor_id: uuid.UUID | None = None
                          ) -> tuple[list[tuple[CheckRow, dict[str, int]]], str]:
        """Newest first; `owner` narrows to one caller's checks (None: every check, for the admin),
        `monitor_id` to that monitor's runs."""
        if page_size == 0:
            page_size = 50
        if not 1 <= page_size <= 200:
            raise InvalidArgument(field="page_size", reason="must be 1-200")
        if status and status not in CHECK_STATUSES:
            raise InvalidArgument(field="status", reason=f"must be one of {', '.join(CHECK_STATUSES)}")
        if len(target) > 255:
            raise InvalidArgument(field="target", reason="must be at most 255 characters")
        stmt = select(CheckRow)
        if owner is not None and owner.key_id is not None:
            stmt = stmt.where(CheckRow.created_by_key_id == owner.key_id)
        elif owner is not None:
            stmt = stmt.where(CheckRow.created_by_key_id.is_(None), CheckRow.client_ip == owner.client_ip,
                              CheckRow.created_at >= owner.since)
        if status:
            stmt = stmt.where(CheckRow.status == status)
        if target:
            stmt = stmt.where(CheckRow.target == target)
        if monitor_id is not None:
            stmt = stmt.where(CheckRow.monitor_id == monitor_id)
        if page_token:
            created, last_id = _decode_token(page_token)
            stmt = stmt.where(or_(CheckRow.created_at < created,
                                  and_(CheckRow.created_at == created, CheckRow.id < last_id)))
        stmt = stmt.order_by(CheckRow.created_at.desc(), CheckRow.id.desc()).limit(page_size + 1)
        async with self.sessions() as session:
            rows = list((await session.scalars(stmt)).all())
            more = len(rows) > page_size
            rows = rows[:page_size]
            counts: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
            if rows:
                q = (select(TaskRow.check_id, TaskRow.status, func.count())
                     .where(TaskRow.check_id.in_([r.id for r in rows])).group_by(TaskRow.check_id, TaskRow.status))
                for check_id, task_status, n in (await session.execute(q)).all():
                    counts[check_id][task_status] = n
        token = _encode_token(rows[-1]) if more else ""
        return [(r, counts.get(r.id, {})) for r in rows], token

    async def check_owner(self, check_id: uuid.UUID) -> uuid.UUID | None:
        """The key that created the check (None: anonymous); NotFound when there is no such check."""
        async with self.sessions() as session:
            found = (await session.execute(select(CheckRow.created_by_key_id).where(CheckRow.id == check_id))).first()
        if found is None:
            raise NotFound(f"check {check_id} not found")
        return found[0]

    async def delete_check(self, check_id: uuid.UUID) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """Deletes a check with its tasks and results; returns the (agent, task) pairs still pending."""
        async with self.sessions() as session, session.begin():
            check = await session.scalar(_lock(select(CheckRow).where(CheckRow.id == check_id), session))
            if check is None:
                raise NotFound(f"check {check_id} not found")
            pending = (await session.execute(select(TaskRow.agent_id, TaskRow.id).where(
                TaskRow.check_id == check_id, TaskRow.status.in_(OPEN_TASK)))).all()
            await session.execute(delete(ResultRow).where(ResultRow.check_id == check_id))
            await session.execute(delete(TaskRow).where(TaskRow.check_id == check_id))
            await session.execute(delete(CheckRow).where(CheckRow.id == check_id))
        return [(a, t) for a, t in pending]

    async def record_results(self, results: list[IncomingResult]) -> Changes:
        """Stores a batch of results in one transaction, each on its own merit; idempotent by task id.

        A result of another check type than its task's is stored quarantined (a failed result
        saying why). The batch goes in bulk; if the database refuses it (a value it cannot hold
        that the service's checks missed), the batch is stored again with each result in its own
        savepoint, and a result refused on its own is stored quarantined instead; one whose
        quarantine is refused too is dead-lettered (`changes.rejected`). An outage is raised.
        """
        if not results:
            return Changes()
        # The last word for a task id within one batch wins; resends carry the same content.
        by_task = {r.task_id: r for r in results}
        try:
            if self.postgres:
                return await self._record_pg(by_task)
            return await self._record(by_task, isolate=False)
        except sqlalchemy.exc.DBAPIError as exc:
            if is_outage(exc):
                raise
            log.warning("a batch of %d results was refused as a whole (%s); storing each on its own",
                        len(by_task), _db_error(exc))
        return await self._record(by_task, isolate=True)

    async def _record(self, by_task: dict[uuid.UUID, IncomingResult], *, isolate: bool) -> Changes:
        """Four statements however big the batch: the checks' locks (with their task counts), their
        tasks (with whether each has a result), the write, the commit (issue 17: a write was
        eight round trips and one more per check it ended). Postgres goes by `_record_pg` unless
        the batch must be written result by result (`isolate`)."""
        changes = Changes()
        async with self.sessions() as session, session.begin():
            # The checks of these tasks, locked in id order (one statement: this is every result's path),
            # with their task counts before this write: check id -> (its tasks, those still open, those
            # that ended with a result), kept on the row by triggers (migration 0008). Read under the
            # checks' locks, so no other write changes them before ours commits.
            locked = (await session.execute(_lock(
                select(CheckRow.id, CheckRow.status, CheckRow.tasks_total, CheckRow.tasks_open, CheckRow.tasks_produced)
                .where(CheckRow.id.in_(select(TaskRow.check_id).where(TaskRow.id.in_(by_task))))
                .order_by(CheckRow.id), session))).all()
            statuses: dict[uuid.UUID, str] = {r[0]: r[1] for r in locked}
            counts: dict[uuid.UUID, tuple[int, int, int]] = {r[0]: (r[2], r[3], r[4]) for r in locked}
            # task id -> (the task, whether it has a result already)
            found: dict[uuid.UUID, tuple[TaskSnapshot, bool]] = {}
            if statuses:
                # Plain rows, no ORM objects: a batch has hundreds.
                rows = (await session.execute(
                    select(TaskRow.id, TaskRow.check_id, TaskRow.agent_id, TaskRow.agent_name, TaskRow.location,
                           TaskRow.region, TaskRow.country, TaskRow.city, TaskRow.check_type, TaskRow.status,
                           TaskRow.reason, TaskRow.created_at, TaskRow.started_at, TaskRow.completed_at,
                           TaskRow.deadline_at, ResultRow.id)
                    .outerjoin(ResultRow, ResultRow.task_id == TaskRow.id)
                    .where(TaskRow.id.in_(by_task)))).all()
                _found(rows, found)
            now = utcnow()
            writes = _plan(by_task, found, changes)
            if isolate:
                writes = await self._write_each(session, writes, now, changes)
            after, ends = _ends(writes, counts, statuses)
            if isolate:
                ended = await self._end_checks(session, ends, now)
            else:
                ended = await self._write(session, writes, now, ends)
            _note(changes, writes, after, statuses, ended, found)
        return changes

    async def _record_pg(self, by_task: dict[uuid.UUID, IncomingResult]) -> Changes:
        """`_record` on Postgres in raw psycopg statements of constant text, in one round trip: the
        checks' locks, the write (_RECORD_SQL: Postgres decides what to store, as _plan would), the
        read of the small checks it ends and the COMMIT, pipelined, so the locks are held only while
        Postgres works (issue 17). Everything the write sends is encoded before the transaction, and
        what the events are built from (_plan, _ends, the snapshots) is made from its rows after it.

        The checks it ends with at most DONE_READ_TASKS tasks are read back inside the write's
        transaction, after the write: their done events (`changes.done`) need no read afterwards.
        """
        changes = Changes()
        ids = _uuid_array(by_task)
        now = utcnow()
        params = {"results": _record_rows(by_task.values()), "now": now}
        named = {r.check_id for r in by_task.values()}
        done_params = {"ids": ids, "now": now} if None in named else {"checks": _uuid_array(named), "now": now}
        async with db.pg_transaction(self.engine) as pg:
            locked = await pg.execute(_LOCK_SQL, {"ids": ids}, prepare=False)
            wrote = await pg.execute(_RECORD_SQL, params)
            done_read = await pg.execute(_DONE_BY_TASKS_SQL if None in named else _DONE_SQL, done_params,
                                         prepare=False)
            await pg.commit()  # sent with them: one round trip
            checks = {r[0]: r for r in await locked.fetchall()}
            rows = await wrote.fetchall()
            done_rows = await done_read.fetchall()
        statuses = {c: r[1] for c, r in checks.items()}
        # check id -> (its tasks, those still open, those that ended with a result), before this write
        counts = {c: (r[_COUNTS_AT], r[_COUNTS_AT + 1], r[_COUNTS_AT + 2]) for c, r in checks.items()}
        found: dict[uuid.UUID, tuple[TaskSnapshot, bool]] = {}
        ended: dict[uuid.UUID, str] = {}
        for r in rows:
            found[r[0]] = (TaskSnapshot(*r[:15]), r[15])
            if r[16] is not None:
                ended[r[1]] = r[16]
        writes = _plan(by_task, found, changes)
        after, _ = _ends(writes, counts, statuses)
        for w in writes:  # the snapshots live events are built from, as written
            w.result(now)
            w.task_update(now)
        if done_rows:
            changes.done = _snapshots(checks.values(), done_rows, ended, now)
        _note(changes, writes, after, statuses, ended, found)
        return changes

    async def _write(self, session: AsyncSession, writes: list[_Write], now: datetime,
                     ending: dict[uuid.UUID, str] | None = None) -> dict[uuid.UUID, str]:
        """The results, their tasks' updates and the checks they end (`ending`: check id -> status);
        returns the checks ended. On Postgres one statement (_WRITE_PG), on SQLite a few."""
        ending = ending or {}
        if not writes and not ending:
            return {}
        if session.get_bind().dialect.name != "postgresql":
            new_results = [w.result_row(now) for w in writes]
            task_updates = [u for u in (w.task_update(now) for w in writes) if u is not None]
            if new_results:
                await session.execute(insert(cast(Table, ResultRow.__table__)), new_results)
            if task_updates:
                await session.execute(_UPDATE_TASK, task_updates)
            return await self._end_checks(session, ending, now)
        params = _write_params(writes, now, ending)
        if params is None:
            return {}
        ended = (await session.execute(_WRITE_PG, params)).scalars().all()
        return {c: ending[c] for c in ended}

    async def _end_checks(self, session: AsyncSession, ending: dict[uuid.UUID, str], now: datetime
                          ) -> dict[uuid.UUID, str]:
        """Ends these checks (check id -> status) unless already ended; returns those it ended."""
        ended: dict[uuid.UUID, str] = {}
        for status in sorted(set(ending.values())):
            ids = [c for c, s in ending.items() if s == status]
            result = await session.execute(
                update(_CHECKS).where(_CHECKS.c.id.in_(ids), _CHECKS.c.status.not_in(TERMINAL_CHECK))
                .values(status=status, completed_at=now).returning(_CHECKS.c.id))
            ended.update((c, status) for c in result.scalars().all())
        return ended

    async def _write_each(self, session: AsyncSession, writes: list[_Write], now: datetime,
                          changes: Changes) -> list[_Write]:
        """Each write in its own savepoint; a refused one quarantined, then dead-lettered. Returns those written."""
        written: list[_Write] = []
        for w in writes:
            refused = await self._try_write(session, w, now)
            if not refused:
                written.append(w)
                continue
            stand_in = _Write(w.task, w.incoming.quarantined("storage", f"the database refused it ({refused})"), w.late)
            refused = await self._try_write(session, stand_in, now)
            if refused:
                changes.rejected.append((str(w.task.id), f"the database refused its quarantine too ({refused})"))
            else:
                written.append(stand_in)
        return written

    async def _try_write(self, session: AsyncSession, write: _Write, now: datetime) -> str:
        """Writes one result in a savepoint; returns why the database refused it ("": written)."""
        try:
            async with session.begin_nested():
                await self._write(session, [write], now)
        except sqlalchemy.exc.DBAPIError as exc:
            if is_outage(exc):
                raise
            return _db_error(exc)
        return ""

    async def _finish_checks(self, session: AsyncSession, check_ids: list[uuid.UUID], now: datetime,
                             changes: Changes, statuses: dict[uuid.UUID, str],
                             tasks: dict[uuid.UUID, TaskRow | TaskSnapshot]) -> None:
        """Ends the checks whose last task just ended; records each check's state in `changes.checks`.

        `statuses` are the checks' statuses read under their locks, `tasks` the rows this write changed.
        """
        if not check_ids:
            return
        # The counts the triggers left after this transaction's task updates (migration 0008).
        counts = {c: (total, still_open, produced) for c, total, still_open, produced in (await session.execute(
            select(CheckRow.id, CheckRow.tasks_total, CheckRow.tasks_open, CheckRow.tasks_produced)
            .where(CheckRow.id.in_(check_ids)))).all()}
        ending: dict[uuid.UUID, str] = {}
        for check_id in check_ids:
            total, still_open, produced = counts.get(check_id, (0, 0, 0))
            changes.checks[check_id] = CheckState(
                status=statuses.get(check_id, "in_progress"), tasks_done=total - still_open, tasks_total=total,
                tasks={t: tasks[t] for t in changes.tasks[check_id] if t in tasks})
            if check_id in counts and not still_open:
                ending[check_id] = "completed" if produced else "failed"
        for check_id, status in (await self._end_checks(session, ending, now)).items():
            changes.finished_checks.add(check_id)
            changes.checks[check_id].status = status

    async def mark_running(self, started: dict[uuid.UUID, tuple[uuid.UUID, datetime]]) -> Changes:
        """Marks pending tasks running: task id -> (the agent that says it started it, when).

        A task of another agent, or one already running or finished (its result came first), is
        left as it is: the update is conditional, so it never undoes a result stored meanwhile.
        """
        changes = Changes()
        if not started:
            return changes
        async with self.sessions() as session, session.begin():
            # The checks' locks first, in id order, as every other write takes them: no deadlock.
            await session.execute(_lock(select(CheckRow.id).where(CheckRow.id.in_(
                select(TaskRow.check_id).where(TaskRow.id.in_(started)))).order_by(CheckRow.id), session))
            tasks_table = cast(Table, TaskRow.__table__)
            marked: list[uuid.UUID] = []
            for task_id, (agent_id, at) in started.items():
                result = await session.execute(
                    update(tasks_table).where(tasks_table.c.id == task_id, tasks_table.c.agent_id == agent_id,
                                              tasks_table.c.status == "pending")
                    .values(status="running", started_at=at))
                if cast(CursorResult, result).rowcount:
                    marked.append(task_id)
            if not marked:
                return changes
            tasks = (await session.scalars(select(TaskRow).where(TaskRow.id.in_(marked))
                                           .execution_options(populate_existing=True))).unique().all()
            by_id = {t.id: t for t in tasks}
            for task in tasks:
                changes.tasks[task.check_id].append(task.id)
            # Running is still open: the counts on the check rows (migration 0008) did not change.
            for check_id, check_status, total, still_open in (await session.execute(
                    select(CheckRow.id, CheckRow.status, CheckRow.tasks_total, CheckRow.tasks_open)
                    .where(CheckRow.id.in_(list(changes.tasks))))).all():
                changes.checks[check_id] = CheckState(
                    status=check_status, tasks_done=total - still_open, tasks_total=total,
                    tasks={t: by_id[t] for t in changes.tasks[check_id]})
        return changes

    async def open_tasks(self, task_ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[uuid.UUID, uuid.UUID]]:
        """Task id -> (its check, its agent) of these tasks that are still pending or running."""
        if not task_ids:
            return {}
        async with self.sessions() as session:
            rows = (await session.execute(select(TaskRow.id, TaskRow.check_id, TaskRow.agent_id).where(
                TaskRow.id.in_(task_ids), TaskRow.status.in_(OPEN_TASK)))).all()
        return {t: (c, a) for t, c, a in rows}

    async def overdue_tasks(self, now: datetime, limit: int = 1000) -> list[tuple[uuid.UUID, uuid.UUID]]:
        """(task id, agent id) of pending tasks past their deadline."""
        async with self.sessions() as session:
            rows = (await session.execute(
                select(TaskRow.id, TaskRow.agent_id).where(TaskRow.status.in_(OPEN_TASK), TaskRow.deadline_at < now)
                .order_by(TaskRow.deadline_at).limit(limit))).all()
        return [(t, a) for t, a in rows]

    async def pending_agents(self) -> list[uuid.UUID]:
        """Agents that have pending tasks."""
        async with self.sessions() as session:
            return list((await session.scalars(
                select(TaskRow.agent_id).where(TaskRow.status.in_(OPEN_TASK)).distinct())).all())

    async def pending_tasks_of(self, agent_ids: list[uuid.UUID]) -> list[tuple[uuid.UUID, uuid.UUID]]:
        async with self.sessions() as session:
            rows = (await session.execute(select(TaskRow.id, TaskRow.agent_id).where(
                TaskRow.status.in_(OPEN_TASK), TaskRow.agent_id.in_(agent_ids)))).all()
        return [(t, a) for t, a in rows]

    async def time_out(self, reasons: dict[uuid.UUID, str], now: datetime) -> Changes:
        """Marks these pending tasks timed out (each with its reason); safe with several replicas."""
        changes = Changes()
        if not reasons:
            return changes
        async with self.sessions() as session, session.begin():
            check_ids = sorted(set((await session.scalars(
                select(TaskRow.check_id).where(TaskRow.id.in_(reasons), TaskRow.status.in_(OPEN_TASK)))).all()))
            if not check_ids:
                return changes
            # Another replica sweeping the same checks holds their locks: leave those to it.
            statuses = dict((await session.execute(_lock(
                select(CheckRow.id, CheckRow.status).where(CheckRow.id.in_(check_ids)).order_by(CheckRow.id),
                session, skip_locked=True))).all())
            tasks = (await session.scalars(select(TaskRow).where(
                TaskRow.id.in_(reasons), TaskRow.status.in_(OPEN_TASK), TaskRow.check_id.in_(statuses))
                .execution_options(populate_existing=True))).unique().all()
            for task in tasks:
                task.status = "timed_out"
                task.reason = reasons[task.id]
                task.completed_at = now
                changes.tasks[task.check_id].append(task.id)
            await session.flush()
            await self._finish_checks(session, list(changes.tasks), now, changes, statuses,
                                      {t.id: t for t in tasks})
        return changes

    async def read_checks(self, check_ids: list[uuid.UUID]) -> dict[uuid.UUID, CheckSnapshot]:
        """These checks with their tasks and results, as plain snapshots (views.check_view reads them).

        Three statements however many checks, no ORM objects: the done events of a write that
        finished many checks were one ORM load (check, tasks, results) each, one after another,
        ahead of every later write's events (issue 17). A deleted check is missing from the answer.
        """
        if not check_ids:
            return {}
        if self.postgres:  # two raw statements in one round trip (db.pg_transaction)
            ids = _uuid_array(check_ids)
            async with db.pg_transaction(self.engine) as pg:
                read_checks = await pg.execute(_CHECKS_SQL, {"ids": ids}, prepare=False)
                read_tasks = await pg.execute(_CHECKS_TASKS_SQL, {"ids": ids}, prepare=False)
                await pg.commit()
                return _snapshots(await read_checks.fetchall(), await read_tasks.fetchall())
        checks: dict[uuid.UUID, CheckSnapshot] = {}
        tasks: dict[uuid.UUID, TaskSnapshot] = {}
        results = cast(Table, ResultRow.__table__)
        async with self.sessions() as session:
            for r in (await session.execute(select(
                    CheckRow.id, CheckRow.target, CheckRow.check_types, CheckRow.request, CheckRow.status,
                    CheckRow.created_at, CheckRow.completed_at, CheckRow.deadline_at, CheckRow.client_ip,
                    CheckRow.created_by_key_id, CheckRow.monitor_id, CheckRow.monitor_run)
                    .where(CheckRow.id.in_(check_ids)))).all():
                checks[r[0]] = CheckSnapshot(
                    id=r[0], target=r[1], check_types=r[2], request=r[3], status=r[4], created_at=r[5],
                    completed_at=r[6], deadline_at=r[7], client_ip=r[8], tasks=[], created_by_key_id=r[9],
                    monitor_id=r[10], monitor_run=r[11])
            if not checks:
                return {}
            # In the order of CheckRow.tasks (by created_at).
            for r in (await session.execute(select(
                    TaskRow.id, TaskRow.check_id, TaskRow.agent_id, TaskRow.agent_name, TaskRow.location,
                    TaskRow.region, TaskRow.country, TaskRow.city, TaskRow.check_type, TaskRow.status,
                    TaskRow.reason, TaskRow.created_at, TaskRow.started_at, TaskRow.completed_at,
                    TaskRow.deadline_at).where(TaskRow.check_id.in_(checks)).order_by(TaskRow.created_at))).all():
                task = TaskSnapshot(*r)
                tasks[task.id] = task
                checks[task.check_id].tasks.append(task)
            for r in (await session.execute(select(
                    results.c.task_id, results.c.check_id, results.c.agent_id, results.c.check_type,
                    results.c.success, results.c.data, results.c.error, results.c.error_code, results.c.duration_ms,
                    results.c.started_at, results.c.created_at, results.c.late)
                    .where(results.c.check_id.in_(checks)))).all():
                found = tasks.get(r[0])
                if found is not None:
                    found.result = ResultSnapshot(*r)
        return checks

    async def check_progress(self, check_id: uuid.UUID) -> tuple[str, dict[str, int]] | None:
        """The check's status and its tasks' count by status (None: no such check): what a watcher's
        resync compares before reading the whole check."""
        async with self.sessions() as session:
            status = await session.scalar(select(CheckRow.status).where(CheckRow.id == check_id))
            if status is None:
                return None
            counts = (await session.execute(select(TaskRow.status, func.count())
                                            .where(TaskRow.check_id == check_id).group_by(TaskRow.status))).all()
        return status, {s: n for s, n in counts}

    async def agent_names(self, agent_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        """Each agent's name as its pending tasks recorded it (the agents to name here have some)."""
        async with self.sessions() as session:
            rows = (await session.execute(
                select(TaskRow.agent_id, func.max(TaskRow.agent_name))
                .where(TaskRow.agent_id.in_(agent_ids), TaskRow.status.in_(OPEN_TASK), TaskRow.agent_name != "")
                .group_by(TaskRow.agent_id))).all()
        return dict(rows)

    async def agent_stats(self, agent_id: uuid.UUID) -> tuple[list[checks_pb2.CheckResult], dict]:
        async with self.sessions() as session:
            rows = (await session.execute(
                select(ResultRow.check_type, func.count(), func.count().filter(ResultRow.success.is_(True)),
                       func.avg(ResultRow.duration_ms))
                .where(ResultRow.agent_id == agent_id).group_by(ResultRow.check_type))).all()
            timed_out = await session.scalar(select(func.count()).select_from(TaskRow).where(
                TaskRow.agent_id == agent_id, TaskRow.status == "timed_out"))
        return rows, {"timed_out": timed_out or 0}


def _encode_token(row: CheckRow) -> str:
    raw = f"{row.created_at.astimezone(UTC).isoformat()}|{row.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_token(token: str) -> tuple[datetime, uuid.UUID]:
    try:
        created, _, last = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        return datetime.fromisoformat(created), uuid.UUID(last)
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument(field="page_token", reason="is not a token from a previous response") from None
