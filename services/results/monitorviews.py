"""Monitor rows to protobuf messages (what clients, watchers and schedulers see)."""

from __future__ import annotations

import logging
from typing import Any

from google.protobuf import json_format

from hostcheck.core.timestamps import ts_or_none
from hostcheck.services.results.monitormodels import MonitorEventRow, MonitorRow, MonitorRunRow
from hostcheck.v1 import monitors_pb2, scheduler_pb2

log = logging.getLogger(__name__)


def check_request_of(spec: dict[str, Any] | None) -> scheduler_pb2.CreateCheckRequest:
    """The check each run sends, from the monitor's stored spec (MessageToDict with proto field names).

    Fields this version does not know are skipped (a spec written by a newer version); a spec
    that no longer parses gives an empty request rather than failing every read of the monitor.
    """
    request = scheduler_pb2.CreateCheckRequest()
    try:
        json_format.ParseDict(spec or {}, request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        log.warning("stored monitor spec does not parse, shown empty: %s", exc)
        request.Clear()
    return request


def run_agent_view(stored: dict[str, Any]) -> monitors_pb2.MonitorRunAgent:
    """One agent's part of a run as stored (MonitorRunAgent as JSON) as a message."""
    agent = monitors_pb2.MonitorRunAgent()
    try:
        json_format.ParseDict(stored or {}, agent, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        log.warning("stored monitor run agent does not parse, shown empty: %s", exc)
        agent.Clear()
    return agent


def run_view(row: MonitorRunRow) -> monitors_pb2.MonitorRun:
    return monitors_pb2.MonitorRun(
        seq=row.seq, check_id=str(row.check_id), scheduled_at=ts_or_none(row.scheduled_at),
        started_at=ts_or_none(row.started_at), finished_at=ts_or_none(row.finished_at), verdict=row.verdict,
        agents_total=row.agents_total or 0, agents_failing=row.agents_failing or 0,
        agents=[run_agent_view(a) for a in row.agents or []], state=row.state_after or "", reason=row.reason or "")


def event_view(row: MonitorEventRow) -> monitors_pb2.MonitorEvent:
    return monitors_pb2.MonitorEvent(
        event_id=str(row.id), monitor_id=str(row.monitor_id), from_state=row.from_state, to_state=row.to_state,
        at=ts_or_none(row.at), run_seq=row.run_seq or 0, check_id=str(row.check_id) if row.check_id else "",
        failing_agents=[run_agent_view(a) for a in row.failing_agents or []], notification=row.notification,
        delivery_attempts=row.delivery_attempts or 0, delivered_at=ts_or_none(row.delivered_at),
        last_delivery_error=row.last_delivery_error or "")


def monitor_view(row: MonitorRow, *, last_run: MonitorRunRow | None = None, uptime_24h: float | None = None,
                 uptime_7d: float | None = None, secret: bool = False) -> monitors_pb2.Monitor:
    """The monitor; its webhook secret only with `secret` (Create's response, or a rotation)."""
    view = monitors_pb2.Monitor(
        monitor_id=str(row.id), name=row.name, check=check_request_of(row.spec), interval_s=row.interval_s,
        alert=monitors_pb2.MonitorAlert(quorum=row.quorum, for_runs=row.for_runs, webhook_url=row.webhook_url or ""),
        state=row.state, state_since=ts_or_none(row.state_since), paused=row.paused,
        status_slug=row.status_slug or "", created_at=ts_or_none(row.created_at),
        updated_at=ts_or_none(row.updated_at), next_run_at=None if row.paused else ts_or_none(row.next_run_at),
        runs_total=row.run_seq or 0, failing_runs=row.failing_runs or 0,
        created_by_key_id=str(row.created_by_key_id) if row.created_by_key_id else "",
        webhook_secret=row.webhook_secret if secret else "")
    if last_run is not None:
        view.last_run.CopyFrom(run_view(last_run))
    if uptime_24h is not None:
        view.uptime_24h = uptime_24h
    if uptime_7d is not None:
        view.uptime_7d = uptime_7d
    return view


def public_view(row: MonitorRow, *, last_run_at=None, uptime_24h: float | None = None,
                uptime_7d: float | None = None) -> monitors_pb2.PublicMonitor:
    """What a public status page shows of a monitor: no id, target, agents, owner or webhook."""
    view = monitors_pb2.PublicMonitor(
        name=row.name, state=row.state, state_since=ts_or_none(row.state_since), last_run_at=ts_or_none(last_run_at),
        interval_s=row.interval_s, check_types=list(row.check_types or []))
    if uptime_24h is not None:
        view.uptime_24h = uptime_24h
    if uptime_7d is not None:
        view.uptime_7d = uptime_7d
    return view
