"""Opening monitor runs' checks in batches (group commit): OpenCheck of a run at 100 runs a second.

Each scheduler replica starts its claimed runs many at once, so OpenChecks of runs arrive together.
One transaction per run (start the run, insert the check, insert its tasks: five round trips with
BEGIN and COMMIT) was the results service's largest cost per run. The RunOpener queues them and
opens what queued up while the previous batch was being written in one transaction: one UPDATE
starts every run (each still a compare-and-set: not started, still `running`, the claimed check
id), one INSERT the checks, one their tasks. The first request of a quiet moment goes at once
(a batch of one): batching never adds a wait, it only forms while a write is under way.

A request whose run the UPDATE did not start (already started, ended, deleted, another check id)
and every request of a batch the database refused are opened one by one with ResultsStore.open_check,
which answers each with its own error (ALREADY_EXISTS, NOT_FOUND, ...) exactly as before.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, tuple_, update

from hostcheck.services.results.models import CheckRow, TaskRow
from hostcheck.services.results.monitormodels import MonitorRunRow
from hostcheck.services.results.store import CheckSnapshot, PlannedTask, ResultsStore, TaskSnapshot
from hostcheck.services.storage.models import utcnow

log = logging.getLogger(__name__)

# Runs opened in one transaction at most.
BATCH = 200


@dataclass(frozen=True)
class RunCheck:
    """One OpenCheck of a monitor's run: ResultsStore.open_check's arguments."""

    check_id: uuid.UUID
    target: str
    check_types: list[str]
    request: dict
    tasks: list[PlannedTask]
    deadline: datetime
    client_ip: str
    created_by_key_id: uuid.UUID | None
    monitor_id: uuid.UUID
    monitor_run: int

    def snapshot(self, now: datetime, run: MonitorRunRow) -> CheckSnapshot:
        return CheckSnapshot(id=self.check_id, target=self.target, check_types=self.check_types, request=self.request,
                             status="in_progress" if self.tasks else "failed", created_at=now,
                             completed_at=None if self.tasks else now, deadline_at=self.deadline,
                             client_ip=self.client_ip, tasks=[t.pending(self.check_id, now) for t in self.tasks],
                             created_by_key_id=self.created_by_key_id, monitor_id=self.monitor_id,
                             monitor_run=self.monitor_run, started_run=run)


class RunOpener:
    """Opens runs' checks like ResultsStore.open_check, many in one transaction when they arrive together."""

    def __init__(self, store: ResultsStore) -> None:
        self.store = store
        self._queue: list[tuple[RunCheck, asyncio.Future[CheckSnapshot]]] = []
        self._writing: asyncio.Task | None = None

    async def open(self, run: RunCheck) -> CheckSnapshot:
        future: asyncio.Future[CheckSnapshot] = asyncio.get_running_loop().create_future()
        self._queue.append((run, future))
        if self._writing is None:
            self._writing = asyncio.create_task(self._write_queued(), name="open-runs")
        return await future

    async def _write_queued(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:BATCH], self._queue[BATCH:]
                await self._open_batch(batch)
        finally:
            self._writing = None

    async def _open_batch(self, batch: list[tuple[RunCheck, asyncio.Future[CheckSnapshot]]]) -> None:
        """Opens the batch in one transaction; what it could not open goes one by one (their own errors)."""
        alone: list[tuple[RunCheck, asyncio.Future[CheckSnapshot]]] = []
        opened: list[tuple[asyncio.Future[CheckSnapshot], CheckSnapshot]] = []
        try:
            opened, alone = await self._write(batch)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - one by one, each gets its own answer (or the outage)
            log.info("opening %d runs together failed (%s): one by one", len(batch), exc)
            alone = batch
        for future, snapshot in opened:
            if not future.done():
                future.set_result(snapshot)
        if alone:
            await asyncio.gather(*(self._open_alone(run, future) for run, future in alone))

    async def _open_alone(self, run: RunCheck, future: asyncio.Future[CheckSnapshot]) -> None:
        try:
            snapshot = await self.store.open_check(
                check_id=run.check_id, target=run.target, check_types=run.check_types, request=run.request,
                tasks=run.tasks, deadline=run.deadline, client_ip=run.client_ip,
                created_by_key_id=run.created_by_key_id, monitor_id=run.monitor_id, monitor_run=run.monitor_run)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            if not future.done():
                future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        if not future.done():
            future.set_result(snapshot)

    async def _write(self, batch: list[tuple[RunCheck, asyncio.Future[CheckSnapshot]]]
                     ) -> tuple[list[tuple[asyncio.Future[CheckSnapshot], CheckSnapshot]],
                                list[tuple[RunCheck, asyncio.Future[CheckSnapshot]]]]:
        """One transaction: starts the runs (compare-and-set, as monitors.start_run), inserts the checks
        of those started and their tasks. Returns the opened ones and those left to open alone."""
        runs = MonitorRunRow
        async with self.store.sessions() as session, session.begin():
            now = utcnow()
            started = (await session.scalars(
                update(runs).where(tuple_(runs.monitor_id, runs.seq, runs.check_id).in_(
                    [(r.monitor_id, r.monitor_run, r.check_id) for r, _ in batch]),
                    runs.started_at.is_(None), runs.verdict == "running")
                .values(started_at=now).returning(runs)
                .execution_options(populate_existing=True, synchronize_session=False))).all()
            by_run = {(r.monitor_id, r.seq): r for r in started}
            opened: list[tuple[asyncio.Future[CheckSnapshot], CheckSnapshot]] = []
            alone: list[tuple[RunCheck, asyncio.Future[CheckSnapshot]]] = []
            for request, future in batch:
                row = by_run.pop((request.monitor_id, request.monitor_run), None)
                if row is None:  # not startable (or asked twice in this batch): open_check says why
                    alone.append((request, future))
                else:
                    opened.append((future, request.snapshot(now, row)))
            if opened:
                await session.execute(insert(cast(Table, CheckRow.__table__)), [_check_row(c) for _, c in opened])
                task_rows = [_task_row(t, now) for _, c in opened for t in c.tasks]
                if task_rows:
                    await session.execute(insert(cast(Table, TaskRow.__table__)), task_rows)
        return opened, alone


def _check_row(check: CheckSnapshot) -> dict[str, Any]:
    return {"id": check.id, "target": check.target, "check_types": check.check_types, "request": check.request,
            "status": check.status, "created_at": check.created_at, "completed_at": check.completed_at,
            "deadline_at": check.deadline_at, "client_ip": check.client_ip,
            "created_by_key_id": check.created_by_key_id, "monitor_id": check.monitor_id,
            "monitor_run": check.monitor_run}


def _task_row(t: TaskSnapshot, now: datetime) -> dict[str, Any]:
    return {"id": t.id, "check_id": t.check_id, "agent_id": t.agent_id, "agent_name": t.agent_name,
            "location": t.location, "region": t.region, "country": t.country, "city": t.city,
            "check_type": t.check_type, "status": "pending", "reason": "", "created_at": now,
            "started_at": None, "completed_at": None, "deadline_at": t.deadline_at}
