"""Dispatching a planned check: the results service stores it first (OpenCheck), then each
agent is sent its tasks, so no result can arrive for a task the results service does not know."""

from __future__ import annotations

import asyncio
import contextlib

import grpc

from hostcheck.core import telemetry
from hostcheck.core.errors import Unavailable
from hostcheck.core.metrics import SchedulerMetrics
from hostcheck.core.timestamps import ts
from hostcheck.services.scheduler.planning import AgentTasks, Plan
from hostcheck.services.scheduler.routing import Router
from hostcheck.services.storage.livestate import LiveState
from hostcheck.v1 import results_pb2, results_pb2_grpc, scheduler_pb2


class NotOpened(Unavailable):
    """The results service did not store the check; `rpc_code` says why (its status code's name: for a
    monitor run, NOT_FOUND when the monitor was deleted meanwhile, ALREADY_EXISTS when the run has its check)."""

    def __init__(self, message: str, *, rpc_code: str) -> None:
        super().__init__(message)
        self.rpc_code = rpc_code


def _retrieve(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


class Dispatcher:
    def __init__(self, results: results_pb2_grpc.ResultsIngestServiceStub, live: LiveState, router: Router,
                 metrics: SchedulerMetrics) -> None:
        self.results = results
        self.live = live
        self.router = router
        self.metrics = metrics

    async def dispatch(self, plan: Plan) -> results_pb2.OpenCheckResponse:
        """Stores the check with its tasks, then pushes each agent its share; returns the stored check.

        What sending needs and does not depend on the check being stored (where each agent's
        stream is, the in-flight record) is done while OpenCheck is out, not after it returns
        (issue 17: ~1.4 ms of create -> completed); no task is sent before the check is stored.
        """
        prepared = asyncio.ensure_future(self._prepare(plan.by_agent))
        prepared.add_done_callback(_retrieve)  # its error is raised below, or moot when OpenCheck failed
        try:
            opened = await self.results.OpenCheck(results_pb2.OpenCheckRequest(
                check_id=plan.check_id, request=plan.request, tasks=plan.tasks, deadline=ts(plan.deadline),
                client_ip=plan.client_ip, created_by_key_id=plan.created_by_key_id, monitor_id=plan.monitor_id,
                monitor_run=plan.monitor_run), timeout=15, metadata=telemetry.grpc_metadata())
        except grpc.aio.AioRpcError as exc:
            with contextlib.suppress(Exception):
                await prepared
                await self.live.remove_inflight_many({agent_id: [t.task_id for t in share.tasks]
                                                      for agent_id, share in plan.by_agent.items()})
            raise NotOpened(f"cannot store the check: results service {exc.code().name}: {exc.details()}",
                            rpc_code=exc.code().name) from None
        except BaseException:
            prepared.cancel()
            raise
        await self.push(plan.by_agent, await prepared)
        self.metrics.checks_created.inc()
        # The agents' streams write their tasks before the reply to the caller is built and sent: the
        # caller's next step (a watch) waits for the tasks' results anyway.
        await asyncio.sleep(0)
        return opened

    async def _prepare(self, by_agent: dict[str, AgentTasks]) -> dict[str, str]:
        """Records the tasks in flight and returns the replica holding each agent (see Router.holders)."""
        async def record() -> None:
            with contextlib.suppress(Exception):  # in-flight bookkeeping is advisory; a Redis blip must not stop dispatch
                await self.live.add_inflight({agent_id: {t.task_id: t.deadline.seconds for t in share.tasks}
                                              for agent_id, share in by_agent.items()})
        holders, _ = await asyncio.gather(
            self.router.holders({agent_id: share.holder for agent_id, share in by_agent.items()}), record())
        return holders

    async def push(self, by_agent: dict[str, AgentTasks], holders: dict[str, str]) -> None:
        """Sends each agent its tasks, down its stream here or through the replica that holds it."""
        for agent_id, share in by_agent.items():
            with telemetry.span("dispatch", attributes={"hostcheck.check_id": share.tasks[0].check_id,
                                                        "hostcheck.agent_id": agent_id,
                                                        "hostcheck.tasks": len(share.tasks)}):
                for task in share.tasks:  # the agent's run of each task is a child of this span
                    telemetry.inject(task.trace_context)
                    self.metrics.tasks_dispatched.labels(task.check_type).inc()
                await self.router.send(agent_id, scheduler_pb2.TaskBatch(tasks=share.tasks), holders[agent_id])
