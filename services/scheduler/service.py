"""The scheduler: holds agent streams, keeps their live state, creates checks and dispatches tasks.

Flow of a check: CreateCheck validates, picks agents from live state and plans the tasks
(planning.py), has the results service persist the check and its tasks (OpenCheck), then
pushes each agent its tasks (dispatch.py): down the local stream when this replica holds
the agent, else through live state to the replica that does (routing.py). Results come up
the streams (sessions.py), are forwarded to the results service in batches (retried while
it is down, never dropped) and acknowledged to the agent only once stored (forwarder.py).

The servicers here only adapt gRPC to those units; `start` wires them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid

import grpc

from hostcheck.core import telemetry
from hostcheck.core.config import SchedulerConfig
from hostcheck.core.errors import NotFound, Unavailable
from hostcheck.core.metrics import MetricsServer, SchedulerMetrics, serve_metrics
from hostcheck.core.rpc import channel
from hostcheck.core.targets import TargetGuard
from hostcheck.services.auth import RemoteVerifier, Verify, caller_of
from hostcheck.services.grpcserver import PUBLIC_SERVICES, Server, start_server
from hostcheck.services.restbody import refuse_unknown_fields
from hostcheck.services.rpcerrors import grpc_errors, translate
from hostcheck.services.scheduler.dispatch import Dispatcher
from hostcheck.services.scheduler.forwarder import ProgressForwarder, ResultForwarder
from hostcheck.services.scheduler.monitors import MonitorRunner
from hostcheck.services.scheduler.planning import CheckAgents, OnlineAgents, Planner, RateLimit
from hostcheck.services.scheduler.routing import Router
from hostcheck.services.scheduler.sessions import AgentSessions, authenticate
from hostcheck.services.storage.livestate import LiveState, create_live_state
from hostcheck.v1 import (
    monitors_pb2_grpc,
    registry_pb2_grpc,
    results_pb2,
    results_pb2_grpc,
    scheduler_pb2,
    scheduler_pb2_grpc,
)


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, planner: Planner, dispatcher: Dispatcher, verify: Verify) -> None:
        self.planner = planner
        self.dispatcher = dispatcher
        self.verify = verify

    @grpc_errors
    async def CreateCheck(self, request, context):
        refuse_unknown_fields(scheduler_pb2.CreateCheckRequest, context.invocation_metadata())
        with telemetry.span("create", parent=telemetry.metadata_of(context), kind=telemetry.SpanKind.SERVER) as span:
            plan = await self.planner.plan(request, await caller_of(context, self.verify))
            span.set_attribute("hostcheck.check_id", plan.check_id)
            opened = await self.dispatcher.dispatch(plan)
        return scheduler_pb2.CreateCheckResponse(check_id=opened.check.check_id, check=opened.check)


def check_agents_of(results: results_pb2_grpc.ResultsServiceStub) -> CheckAgents:
    """The agents of an earlier check (AgentSelector.same_as), from the results service."""
    async def agents(check_id: str) -> list[str]:
        try:
            reply = await results.GetCheck(results_pb2.GetCheckRequest(check_id=check_id), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise NotFound(f"check {check_id} (agents.same_as) not found") from None
            raise Unavailable(f"results service unavailable: {exc.code().name}") from None
        return list(dict.fromkeys(t.agent_id for t in reply.check.tasks))
    return agents


class AgentStreamServicer(scheduler_pb2_grpc.AgentStreamServiceServicer):
    def __init__(self, auth: registry_pb2_grpc.AgentAuthServiceStub, sessions: AgentSessions) -> None:
        self.auth = auth
        self.sessions = sessions

    async def Connect(self, request_iterator, context):
        try:
            agent = await authenticate(self.auth, context.invocation_metadata())
            await self.sessions.serve(agent, request_iterator, context.write)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:  # noqa: BLE001 - one place turns errors into statuses
            await context.abort_with_status(translate(exc))


class SchedulerService:
    """A running scheduler replica: its server, its units and their background tasks."""

    def __init__(self, *, server: Server, sessions: AgentSessions, forwarder: ResultForwarder,
                 metrics_server: MetricsServer, background: list[asyncio.Task],
                 channels: list[grpc.aio.Channel], live: LiveState, owns_live: bool,
                 monitors: MonitorRunner | None = None) -> None:
        self.server = server
        self.monitors = monitors
        self.sessions = sessions
        self.forwarder = forwarder
        self.metrics_server = metrics_server
        self.background = background
        self.channels = channels
        self.live = live
        self.owns_live = owns_live

    @property
    def id(self) -> str:
        return self.sessions.scheduler_id

    @property
    def port(self) -> int:
        return self.server.port

    async def stop(self, *, drain_s: float = 2.0) -> None:
        """Stops claiming monitor runs, tells every agent to reconnect elsewhere, stores what they sent, then stops."""
        # First, so the other replicas claim the next runs; runs claimed already start while agents are here.
        if self.monitors is not None:
            await self.monitors.stop(drain_s)
        await self.server.set_serving(False)
        self.sessions.drain("scheduler shutting down")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.sessions.wait_empty(), drain_s)
        # Results already received are stored before we go (the agents would resend them anyway).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.forwarder.join(), drain_s)
        for task in self.background:
            task.cancel()
        for task in self.background:
            with contextlib.suppress(BaseException):
                await task
        await self.metrics_server.stop()
        await self.server.stop(grace=1.0)
        for ch in self.channels:
            await ch.close()
        if self.owns_live:
            await self.live.close()


async def start(config: SchedulerConfig, *, live: LiveState | None = None) -> SchedulerService:
    owns_live = live is None
    live = live or create_live_state(config.live_state_url, config.live_state_prefix)
    scheduler_id = config.scheduler_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    registry_channel = channel(config.registry_addr)
    results_channel = channel(config.results_addr)
    results = results_pb2_grpc.ResultsIngestServiceStub(results_channel)

    forwarder = ResultForwarder(results, live)
    progress = ProgressForwarder(results)
    metrics = SchedulerMetrics(connected_agents=lambda: len(sessions),
                                         forwarder_queue=forwarder.pending)
    sessions = AgentSessions(live, scheduler_id=scheduler_id, on_results=forwarder.submit,
                             on_open=metrics.agent_streams.inc, on_heartbeat=metrics.heartbeats.inc,
                             heartbeat_interval_s=config.heartbeat_interval_s,
                             offline_after_s=config.offline_after_s, on_progress=progress.submit,
                             on_deliver=forwarder.expect,
                             max_age_s=config.agent_stream_max_age_s)
    router = Router(live, sessions)
    rate_limit = RateLimit(live, limit=config.rate_limit, window_s=config.rate_limit_window_s)
    planner = Planner(OnlineAgents(live), guard=TargetGuard.from_cidrs(config.allow_targets), rate_limit=rate_limit,
                      dispatch_grace_s=config.dispatch_grace_s,
                      check_agents=check_agents_of(results_pb2_grpc.ResultsServiceStub(results_channel)))
    dispatcher = Dispatcher(results, live, router, metrics)

    subscribed = asyncio.Event()
    background = [asyncio.create_task(forwarder.run(), name="result-forwarder"),
                  asyncio.create_task(progress.run(), name="progress-forwarder"),
                  asyncio.create_task(sessions.write_presences(), name="presence-writer"),
                  asyncio.create_task(router.run(subscribed), name="scheduler-routing")]
    # Routed tasks, cancels and revocations published from now on reach this replica.
    await subscribed.wait()
    metrics_server = await serve_metrics(metrics.registry, config.metrics_port, near=config.listen)
    monitors = None
    if config.monitors:
        monitors = MonitorRunner(monitors_pb2_grpc.MonitorRunsServiceStub(results_channel), planner, dispatcher,
                                 metrics, scheduler_id=scheduler_id, poll_s=config.monitor_poll_s,
                                 batch=config.monitor_batch)
    server = await start_server(config.listen, [
        (scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server,
         SchedulerServicer(planner, dispatcher, RemoteVerifier(results_channel))),
        (scheduler_pb2_grpc.add_AgentStreamServiceServicer_to_server,
         AgentStreamServicer(registry_pb2_grpc.AgentAuthServiceStub(registry_channel), sessions)),
    ], [scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name,
        scheduler_pb2.DESCRIPTOR.services_by_name["AgentStreamService"].full_name], reflect=PUBLIC_SERVICES,
        tls=config, trusted_hops=config.trusted_hops)
    if monitors is not None:
        monitors.start()
    return SchedulerService(server=server, sessions=sessions, forwarder=forwarder, metrics_server=metrics_server,
                            background=background, channels=[registry_channel, results_channel], live=live,
                            owns_live=owns_live, monitors=monitors)
