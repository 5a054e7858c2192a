"""Running monitors: claim their due runs from the results service and create each run's check.

Every scheduler replica runs a MonitorRunner. ClaimDueRuns (results service, one transaction with row
locks) hands each due run to exactly one claimer, with the check id its check must have; this replica
then plans and dispatches it as CreateCheck would, as the check of the monitor's owner, without
charging the owner's rate limit or quota (monitors are bounded by their number per key and their
minimum interval). A run that cannot start (no agent matches, target refused...) is reported with
ReportRunNotStarted and ends `unknown`. A replica that dies after claiming loses only the runs it
claimed (the results service ends them `missed`); no run is ever started twice, since OpenCheck
refuses a second check of one run.

Runs start on time: the loop asks again as soon as the next run is due (at most `poll_s` later), the
results service hands out runs due within the next quarter second (each is started at its
scheduled time), and claimed runs are started concurrently (up to `concurrency` at once) rather than
one after another.
At most `batch` runs are claimed and not yet started: while the results service or Redis is slow,
claiming waits instead of piling up runs this replica cannot start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

import grpc

from hostcheck.core import telemetry
from hostcheck.core.errors import HostcheckError
from hostcheck.core.metrics import SchedulerMetrics
from hostcheck.services.auth import ADMIN, KEY, Caller
from hostcheck.services.scheduler.dispatch import Dispatcher, NotOpened
from hostcheck.services.scheduler.planning import Planner
from hostcheck.v1 import monitors_pb2, monitors_pb2_grpc

log = logging.getLogger(__name__)

# Runs being planned and dispatched at once.
CONCURRENCY = 64
# Seconds an RPC to the results service may take.
RPC_TIMEOUT_S = 10.0
# The least pause between claims that came back short: runs due but not handed out are locked by
# another replica's claim right now; asking again at once would only spin.
MIN_PAUSE_S = 0.02
# The next claim is made this long before the next run is due: the results service hands out runs
# due within its CLAIM_AHEAD_S (0.25 s), and start_run starts each at its time, so the claim's round
# trip is not in the run's lateness.
WAKE_AHEAD_S = 0.2
# Up to this much earlier still, at random (within the results service's CLAIM_AHEAD_S, 0.25 s).
WAKE_JITTER_S = 0.04
# OpenCheck refusals that mean the run needs nothing more: the monitor was deleted meanwhile, or the
# run already has its check.
RUN_GONE = frozenset({"NOT_FOUND", "ALREADY_EXISTS"})


def owner_of(run: monitors_pb2.ClaimedRun) -> Caller:
    """Who a run's check is created as: the monitor's key, or the admin (a monitor made with the admin token)."""
    if run.created_by_key_id:
        return Caller(role=KEY, ip="", key_id=run.created_by_key_id)
    return Caller(role=ADMIN, ip="")


class MonitorRunner:
    """Claims due monitor runs and starts them, until stopped."""

    def __init__(self, runs: monitors_pb2_grpc.MonitorRunsServiceStub, planner: Planner, dispatcher: Dispatcher,
                 metrics: SchedulerMetrics, *, scheduler_id: str, poll_s: float = 0.5, batch: int = 200,
                 concurrency: int = CONCURRENCY, clock: Callable[[], float] = time.time) -> None:
        if not 1 <= batch <= 1000:
            raise ValueError(f"monitor_batch must be 1-1000, not {batch}")
        self.runs = runs
        self.planner = planner
        self.dispatcher = dispatcher
        self.metrics = metrics
        self.scheduler_id = scheduler_id
        self.poll_s = poll_s
        self.batch = batch
        self._clock = clock
        self._slots = asyncio.Semaphore(concurrency)
        self._stopping = asyncio.Event()
        # Runs claimed and not yet started (or reported).
        self._starting: set[asyncio.Task] = set()
        self._loop: asyncio.Task | None = None
        self._failing = False
        # The due time of the run the last early claim was made for (None: none).
        self._asked_early_for: float | None = None

    def start(self) -> None:
        self._loop = asyncio.create_task(self.run(), name="monitor-runner")

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Stops claiming at once, then gives the runs already claimed `timeout_s` to start."""
        self._stopping.set()
        deadline = asyncio.get_running_loop().time() + timeout_s
        if self._loop is not None:
            # A claim under way finishes (its runs are ours), unless the results service hangs.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._loop), timeout_s)
        left = deadline - asyncio.get_running_loop().time()
        if self._starting:
            await asyncio.wait(set(self._starting), timeout=max(left, 0.0))
        for task in [*self._starting, *([self._loop] if self._loop else [])]:
            task.cancel()
        for task in [*self._starting, *([self._loop] if self._loop else [])]:
            with contextlib.suppress(BaseException):
                await task

    async def run(self) -> None:
        while not self._stopping.is_set():
            room = self.batch - len(self._starting)
            if room <= 0:
                await asyncio.wait(set(self._starting), return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                pause = await self.claim_and_start(room)
            except Exception:  # noqa: BLE001 - a bug must not stop monitors for good
                log.exception("claiming monitor runs failed")
                pause = self.poll_s
            if pause:
                await self._pause(pause)

    async def claim_and_start(self, room: int) -> float:
        """Claims up to `room` due runs and sets them starting; returns how long to wait before the next claim."""
        reply = await self._claim(room)
        if reply is None:
            return self.poll_s
        for claimed in reply.runs:
            task = asyncio.create_task(self.start_run(claimed), name=f"monitor-run-{claimed.monitor_id}")
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)
        if len(reply.runs) >= room:
            return 0.0  # there may be more due now
        pause = self.poll_s
        if reply.HasField("next_due_at"):
            due = reply.next_due_at.ToMicroseconds() / 1e6
            if reply.runs or due != self._asked_early_for:
                # Early by WAKE_AHEAD_S plus a random bit, so replicas take turns claiming (the
                # one that woke first takes what is due within CLAIM_AHEAD_S; without the jitter a
                # replica that once lost always woke after the winner and never claimed again).
                ahead = WAKE_AHEAD_S + random.uniform(0.0, WAKE_JITTER_S)
                self._asked_early_for = due
            else:
                # Asked early for this very run and got nothing: that results service hands out
                # nothing ahead (an older one), and asking again before the run is due would spin.
                ahead = 0.0
            pause = min(pause, due - ahead - self._clock())
        return max(pause, MIN_PAUSE_S)

    async def _claim(self, limit: int) -> monitors_pb2.ClaimDueRunsResponse | None:
        try:
            reply = await self.runs.ClaimDueRuns(
                monitors_pb2.ClaimDueRunsRequest(scheduler_id=self.scheduler_id, limit=limit), timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            if not self._failing:  # once per outage, not every poll
                log.warning("cannot claim monitor runs: results service %s: %.200s", exc.code().name, exc.details())
            self._failing = True
            return None
        if self._failing:
            log.info("claiming monitor runs again")
            self._failing = False
        return reply

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def start_run(self, run: monitors_pb2.ClaimedRun) -> None:
        """Plans one claimed run and dispatches it at its time; reports it not started when it cannot be."""
        async with self._slots:
            with telemetry.span("monitor run", attributes={"hostcheck.monitor_id": run.monitor_id,
                                                           "hostcheck.monitor_run": run.seq,
                                                           "hostcheck.check_id": run.check_id}):
                try:
                    plan = await self.planner.plan(run.check, owner_of(run), check_id=run.check_id, charge=False)
                except HostcheckError as exc:
                    await self.not_started(run, exc.code, exc.message)
                    return
                except Exception as exc:  # noqa: BLE001 - a bug in one run must not stop the others
                    log.exception("planning run %d of monitor %s failed", run.seq, run.monitor_id)
                    await self.not_started(run, "INTERNAL", f"planning failed: {type(exc).__name__}")
                    return
                plan.monitor_id, plan.monitor_run = run.monitor_id, run.seq
                # Claimed a little ahead (the results service's CLAIM_AHEAD_S) and planned already: its
                # check is opened when due, not early (unless this replica is stopping: then at once,
                # rather than lost).
                early = run.scheduled_at.ToMicroseconds() / 1e6 - self._clock()
                if early > 0:
                    await self._pause(early)
                try:
                    await self.dispatcher.dispatch(plan)
                except NotOpened as exc:
                    if exc.rpc_code in RUN_GONE:
                        log.info("run %d of monitor %s not started: %s", run.seq, run.monitor_id, exc.message)
                    else:
                        await self.not_started(run, exc.code, exc.message)
                    return
                except Exception:  # noqa: BLE001 - the check is stored: its undelivered tasks time out
                    log.exception("sending run %d of monitor %s to its agents failed", run.seq, run.monitor_id)
            self.metrics.monitor_runs_started.inc()
            due = run.scheduled_at.ToMicroseconds() / 1e6
            self.metrics.monitor_run_lateness.observe(max(self._clock() - due, 0.0))

    async def not_started(self, run: monitors_pb2.ClaimedRun, code: str, reason: str) -> None:
        """Has the run end `unknown` with why; if even that fails, the results service ends it `missed`."""
        self.metrics.monitor_runs_not_started.labels(code).inc()
        try:
            await self.runs.ReportRunNotStarted(monitors_pb2.ReportRunNotStartedRequest(
                monitor_id=run.monitor_id, seq=run.seq, code=code, reason=reason[:1000]), timeout=RPC_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            log.warning("run %d of monitor %s not started (%s) and not reported: %s", run.seq, run.monitor_id, code,
                        exc.code().name)
