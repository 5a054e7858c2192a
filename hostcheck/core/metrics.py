"""Prometheus metrics of every process kind, served at /metrics on HOSTCHECK_METRICS_PORT.

Each service instance and agent has its own registry (several live in one process in
`hostcheck dev` and in tests). Imported only by what serves metrics: an agent with the
port at 0 (the default) never loads this module nor prometheus_client (~2-4 MB of RSS).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from hostcheck.core.checktypes import CHECK_TYPES, ProbeHistogram

log = logging.getLogger(__name__)

# Seconds; spans probes of a few ms to traceroutes of a minute.
PROBE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Seconds a monitor run starts after it was due (the goal: p99 <= 1 s).
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
CHECK_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


class _Callbacks:
    """Counters and gauges read from the component's own state at scrape time."""

    def __init__(self, metrics: list[tuple[str, str, str, Callable[[], float]]]) -> None:
        self.metrics = metrics  # (counter|gauge, name, help, read)

    def collect(self):
        for kind, name, text, read in self.metrics:
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(name, text, value=read())


class SchedulerMetrics:
    def __init__(self, *, connected_agents: Callable[[], float], forwarder_queue: Callable[[], float]) -> None:
        self.registry = r = _registry()
        self.checks_created = Counter("hostcheck_checks_created", "Checks created by this replica.", registry=r)
        self.tasks_dispatched = Counter("hostcheck_tasks_dispatched", "Tasks dispatched to agents, by check type.",
                                        ["check_type"], registry=r)
        self.agent_streams = Counter("hostcheck_agent_streams_opened",
                                     "Agent streams accepted by this replica (first connections and reconnects).",
                                     registry=r)
        # The seed's agent_heartbeats_total, with the project's prefix.
        self.heartbeats = Counter("hostcheck_agent_heartbeats", "Agent heartbeats received by this replica.",
                                  registry=r)
        self.monitor_runs_started = Counter("hostcheck_monitor_runs_started",
                                            "Monitor runs whose check this replica created.", registry=r)
        self.monitor_runs_not_started = Counter(
            "hostcheck_monitor_runs_not_started", "Monitor runs claimed by this replica whose check could not be "
            "created, by status code (FAILED_PRECONDITION: no agent matched...).", ["code"], registry=r)
        self.monitor_run_lateness = Histogram(
            "hostcheck_monitor_run_lateness_seconds", "Time from when a monitor run was due to its check being "
            "created and sent to its agents.", buckets=LATENESS_BUCKETS, registry=r)
        r.register(_Callbacks([
            ("gauge", "hostcheck_connected_agents", "Agents holding a stream to this replica.", connected_agents),
            ("gauge", "hostcheck_result_forwarder_queue",
             "Results received from agents and not yet stored by the results service.", forwarder_queue),
        ]))


class ResultsMetrics:
    def __init__(self) -> None:
        self.registry = r = _registry()
        self.served = False  # the completion metrics cost a query; taken only when someone scrapes them
        self.tasks_finished = Counter(
            "hostcheck_tasks_finished", "Tasks ended, by check type and outcome (completed, failed, timed_out); "
            "counted when their check completes.", ["check_type", "outcome"], registry=r)
        self.check_latency = Histogram(
            "hostcheck_check_create_to_complete_seconds", "Time from creating a check to its last task ending, "
            "by the check's final status.", ["status"], buckets=CHECK_BUCKETS, registry=r)
        self.quarantined = Counter(
            "hostcheck_results_quarantined", "Results that could not be stored as sent, stored as failed results "
            "with error code quarantined, by reason (text, size, started_at, duration_ms, data_type, storage).",
            ["reason"], registry=r)
        self.dead_letters = Counter(
            "hostcheck_results_dead_letters", "Results tied to no task, acknowledged and dropped, by reason "
            "(task_id or agent_id not a UUID, unknown_task, storage: refused even quarantined).",
            ["reason"], registry=r)

    def finished(self, checks: Iterable[tuple[Any, Any, str]], tasks: Iterable[tuple[str, str, int]]) -> None:
        """checks: (created_at, completed_at, status); tasks: (check_type, status, count) of finished checks."""
        for created, completed, status in checks:
            if created is not None and completed is not None:
                self.check_latency.labels(status).observe(max((completed - created).total_seconds(), 0.0))
        for check_type, status, n in tasks:
            self.tasks_finished.labels(check_type, status).inc(n)


class RegistryMetrics:
    def __init__(self) -> None:
        self.registry = r = _registry()
        self.registrations = Counter("hostcheck_agent_registrations", "Agents registered.", registry=r)


class AgentMetrics:
    """An agent's stream and queues, and blackbox_exporter-style probe metrics labelled by check type.

    blackbox_exporter exports the last probe of one target as gauges; an agent
    runs many probes of many targets, so durations are histograms (the same
    names with _bucket/_sum/_count) and probe_success is the last probe's outcome
    per check type, with hostcheck_agent_probes_total counting every outcome.
    """

    def __init__(self, *, connects: Callable[[], float], refusals: Callable[[], float],
                 unacked: Callable[[], float], pending: Callable[[], float], running: Callable[[], float]) -> None:
        self.registry = r = _registry()
        r.register(_Callbacks([
            ("counter", "hostcheck_agent_stream_connects", "Streams to a scheduler established.", connects),
            ("counter", "hostcheck_agent_stream_reconnects", "Streams re-established after the first.",
             lambda: max(connects() - 1, 0)),
            ("counter", "hostcheck_agent_stream_refusals", "Streams the scheduler refused (bad or revoked token).",
             refusals),
            ("gauge", "hostcheck_agent_unacked_results", "Results sent or to send, not yet acknowledged as stored.",
             unacked),
            ("gauge", "hostcheck_agent_pending_results", "Results waiting for their batch up the stream.", pending),
            ("gauge", "hostcheck_agent_running_tasks", "Tasks running now.", running),
        ]))
        self.probes = Counter("hostcheck_agent_probes", "Probes run, by check type and outcome (success or the "
                              "error code).", ["check_type", "outcome"], registry=r)
        self.success = Gauge("probe_success", "Whether the last probe of this check type succeeded.",
                             ["check_type"], registry=r)
        self.duration = Histogram("probe_duration_seconds", "How long probes took, by check type.", ["check_type"],
                                  buckets=PROBE_BUCKETS, registry=r)
        # The durations the check types' specs export (request phases, name lookups), one histogram per name.
        self.durations: dict[str, Histogram] = {}
        declarations: dict[str, ProbeHistogram] = {}
        for spec in CHECK_TYPES.values():
            for duration in spec.durations:
                declared = duration.histogram
                if declared.name not in self.durations:
                    self.durations[declared.name] = Histogram(declared.name, declared.documentation,
                                                              list(declared.labelnames), buckets=PROBE_BUCKETS,
                                                              registry=r)
                    declarations[declared.name] = declared
                elif declarations[declared.name] != declared:
                    raise ValueError(f"{spec.name} declares {declared.name} unlike another type: "
                                     f"{declared} != {declarations[declared.name]}")

    def observe_probe(self, result) -> None:
        """Records one probe from its TaskResult."""
        check_type = result.check_type
        self.probes.labels(check_type, "success" if result.success else (result.error_code or "failed")).inc()
        self.success.labels(check_type).set(1 if result.success else 0)
        self.duration.labels(check_type).observe(result.duration_ms / 1000.0)
        spec = CHECK_TYPES.get(check_type)
        if spec is None or result.data.WhichOneof("result") != check_type:
            return
        data = getattr(result.data, check_type)
        for duration in spec.durations:
            milliseconds = _measured(data, duration.field)
            if milliseconds is None:
                continue
            labels = dict(duration.labels)
            if "check_type" in duration.histogram.labelnames:
                labels["check_type"] = check_type
            self.durations[duration.histogram.name].labels(**labels).observe(milliseconds / 1000.0)


def _measured(message, path: str) -> float | None:
    """The number at a dotted field path of a result message, or None when it was not measured.

    A plain (proto3) number is unset when 0; an optional one when absent.
    """
    *parents, name = path.split(".")
    for parent in parents:
        if not message.HasField(parent):
            return None
        message = getattr(message, parent)
    if message.DESCRIPTOR.fields_by_name[name].has_presence:
        return getattr(message, name) if message.HasField(name) else None
    return getattr(message, name) or None


class MetricsServer:
    """GET /metrics in Prometheus' text format, served on the event loop (no thread); off when port is 0."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        return self.server.sockets[0].getsockname()[1] if self.server is not None else 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            method, path = (head.split(b"\r\n", 1)[0].split(b" ") + [b"", b""])[:2]
            if method not in (b"GET", b"HEAD"):
                status, body, ctype = b"405 Method Not Allowed", b"use GET\n", b"text/plain"
            elif path.split(b"?")[0] not in (b"/metrics", b"/"):
                status, body, ctype = b"404 Not Found", b"metrics are at /metrics\n", b"text/plain"
            else:
                status, body, ctype = b"200 OK", generate_latest(self.registry), CONTENT_TYPE_LATEST.encode()
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ctype + b"\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + (b"" if method == b"HEAD"
                                                                                       else body))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


async def serve_metrics(registry: CollectorRegistry, port: int, *, near: str = "") -> MetricsServer:
    """Serves `registry` on `port` (0: not served) of the host of the `near` address (host:port; empty: all)."""
    metrics = MetricsServer(registry)
    if port:
        host = near.rsplit(":", 1)[0].strip("[]") if ":" in near else ""
        if host in ("", "::"):
            # asyncio makes every IPv6 socket IPv6-only, so `[::]` would answer on ::1 but refuse
            # 127.0.0.1, and Prometheus on an IPv4 cluster would scrape nothing (issue 19).
            metrics.server = await asyncio.start_server(metrics._handle, sock=_any_address_socket(port))
        else:
            metrics.server = await asyncio.start_server(metrics._handle, host, port)
        log.info("metrics on %s:%d/metrics", host or "*", metrics.port)
    return metrics


def _any_address_socket(port: int) -> socket.socket:
    """A listening socket on every address of both families: one dual-stack IPv6 socket
    (IPV6_V6ONLY off: IPv4 clients arrive as ::ffff:a.b.c.d), or IPv4 alone where the host
    has no IPv6 (a pod with IPv6 disabled)."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    except OSError:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        address: tuple = ("0.0.0.0", port)
    else:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        address = ("::", port)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
