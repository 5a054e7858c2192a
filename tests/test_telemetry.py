"""Traces (one per check: create -> dispatch -> agent run -> store), metrics endpoints, JSON logs."""

from __future__ import annotations

import json
import logging

import grpc
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from hostcheck.core import logs, telemetry
from hostcheck.core.config import RegistryConfig
from hostcheck.services.registry import service as registry_service
from hostcheck.services.storage.livestate import MemoryLiveState
from hostcheck.v1 import http_pb2, registry_pb2, registry_pb2_grpc, results_pb2, scheduler_pb2
from tests.conftest import REDIS_URL, REGISTRATION_TOKEN, System, fresh_postgres_db
from tests.helpers import assert_eventually, free_port

SPAN_NAMES = {"create", "dispatch", "agent run", "store"}


@pytest.fixture
def exporter():
    """Spans of this test in memory; tracing is off again afterwards (as in dev and the other tests)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.use_tracer_provider(provider)
    try:
        yield exporter
    finally:
        telemetry.use_tracer_provider(None)
        provider.shutdown()


async def completed(system, check_id: str) -> results_pb2.Check:
    async def done():
        check = (await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=check_id))).check
        return check if check.status == "completed" else None
    return await assert_eventually(done, timeout=20, message=f"check {check_id} completed")


def check_request(tcp_port: int, http_port: int) -> scheduler_pb2.CreateCheckRequest:
    return scheduler_pb2.CreateCheckRequest(target=f"127.0.0.1:{tcp_port}", checks=["tcp", "http"],
                                            http=http_pb2.HttpOptions(port=http_port))


def spans_of(exporter: InMemorySpanExporter, check_id: str) -> list:
    return [s for s in exporter.get_finished_spans() if s.attributes.get("hostcheck.check_id") == check_id]


# ---- traces ---------------------------------------------------------------------------------

async def test_one_check_is_one_trace_with_create_dispatch_run_and_store(system, tmp_path, exporter, tcp_target,
                                                                         http_target):
    await system.start_agent(tmp_path, "a1")
    created = await system.create.CreateCheck(check_request(tcp_target, http_target.port))
    check = await completed(system, created.check_id)
    task_ids = {t.task_id for t in check.tasks}
    assert len(task_ids) == 2

    def all_spans():
        spans = spans_of(exporter, created.check_id)
        stored = {s.attributes.get("hostcheck.task_id") for s in spans if s.name == "store"}
        assert task_ids <= stored, f"store spans of {stored}"
        return spans
    spans = await assert_eventually(all_spans, message="every result's store span ended")

    by_name: dict[str, list] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    assert set(by_name) == SPAN_NAMES
    assert len({s.context.trace_id for s in spans}) == 1, "one trace per check"

    (create,) = by_name["create"]
    assert create.parent is None and create.kind == SpanKind.SERVER
    (dispatch,) = by_name["dispatch"]  # one agent: one batch
    assert dispatch.parent.span_id == create.context.span_id
    assert dispatch.attributes["hostcheck.tasks"] == 2

    runs = {s.attributes["hostcheck.task_id"]: s for s in by_name["agent run"]}
    assert set(runs) == task_ids
    for run in runs.values():
        assert run.parent.span_id == dispatch.context.span_id
        assert run.attributes["hostcheck.success"] is True

    opened = [s for s in by_name["store"] if s.attributes["rpc.method"] == "OpenCheck"]
    assert len(opened) == 1 and opened[0].parent.span_id == create.context.span_id
    recorded = [s for s in by_name["store"] if s.attributes["rpc.method"] == "RecordResults"]
    assert {s.attributes["hostcheck.task_id"] for s in recorded} == task_ids
    for store in recorded:
        assert store.parent.span_id == runs[store.attributes["hostcheck.task_id"]].context.span_id
        assert store.start_time >= runs[store.attributes["hostcheck.task_id"]].end_time

    # The next check is a trace of its own.
    again = await system.create.CreateCheck(check_request(tcp_target, http_target.port))
    await completed(system, again.check_id)
    other = await assert_eventually(lambda: spans_of(exporter, again.check_id), message="spans of the second check")
    assert {s.context.trace_id for s in other} == {s.context.trace_id for s in other if s.name == "create"}
    assert other[0].context.trace_id != create.context.trace_id


async def test_create_joins_the_callers_trace(system, tmp_path, exporter, tcp_target):
    await system.start_agent(tmp_path, "a1")
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    created = await system.create.CreateCheck(
        scheduler_pb2.CreateCheckRequest(target=f"127.0.0.1:{tcp_target}", checks=["tcp"]),
        metadata=(("traceparent", f"00-{trace_id}-b7ad6b7169203331-01"),))
    await completed(system, created.check_id)
    def all_spans():
        spans = spans_of(exporter, created.check_id)
        assert any(s.attributes.get("rpc.method") == "RecordResults" for s in spans)
        return spans
    spans = await assert_eventually(all_spans, message="store span of the result")
    assert {format(s.context.trace_id, "032x") for s in spans} == {trace_id}
    (create,) = [s for s in spans if s.name == "create"]
    assert format(create.parent.span_id, "016x") == "b7ad6b7169203331"


def test_tracing_is_off_without_otel_settings():
    assert not telemetry.tracing_enabled()
    carrier: dict[str, str] = {}
    telemetry.inject(carrier)
    assert carrier == {} and telemetry.grpc_metadata() is None
    with telemetry.span("create") as span:
        assert not span.is_recording()


@pytest.mark.parametrize(("env", "exporter"), [
    ({}, None),
    ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_SDK_DISABLED": "true"}, None),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, "opentelemetry.exporter.otlp.proto.grpc"),
    ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
     "opentelemetry.exporter.otlp.proto.http"),
    ({"OTEL_TRACES_EXPORTER": "console"}, "opentelemetry.sdk.trace.export"),
])
def test_exporter_chosen_by_otel_variables(env, exporter):
    if exporter and exporter.startswith("opentelemetry.exporter"):
        pytest.importorskip(exporter)
    chosen = telemetry._traces_exporter(env)
    if exporter is None:
        assert chosen is None
    else:
        assert type(chosen).__module__.startswith(exporter)
        chosen.shutdown()


@pytest.mark.parametrize("env", [{"OTEL_TRACES_EXPORTER": "zipkin"},
                                 {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}])
def test_unsupported_otel_settings_fail_at_start(env):
    with pytest.raises(SystemExit, match="OTEL_"):
        telemetry._traces_exporter(env)


# ---- logs -----------------------------------------------------------------------------------

def test_json_logs_carry_the_trace_id_inside_a_span(exporter):
    formatter = logs.JsonFormatter("scheduler")

    def line() -> dict:
        return json.loads(formatter.format(logging.LogRecord("hostcheck", logging.INFO, __file__, 1, "hello %s",
                                                             ("world",), None)))
    outside = line()
    assert outside["msg"] == "hello world" and outside["service"] == "scheduler" and outside["level"] == "info"
    assert "trace_id" not in outside
    with telemetry.span("create") as span:
        inside = line()
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")


def test_unknown_log_format_fails_at_start():
    with pytest.raises(SystemExit, match="HOSTCHECK_LOG_FORMAT"):
        logs.setup("INFO", "yaml")


# ---- metrics --------------------------------------------------------------------------------

async def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    async with httpx.AsyncClient() as client:
        reply = await client.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(reply.text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture(params=["postgres+redis", "sqlite+memory"])
async def metered_system(request, tmp_path, live_prefix):
    """The system with metrics served by the scheduler and the results service."""
    ports = {"scheduler_overrides": {"metrics_port": free_port()},
             "results_overrides": {"metrics_port": free_port()}}
    if request.param == "postgres+redis":
        with fresh_postgres_db() as url:
            system = System(url, REDIS_URL, live_prefix, **ports)
            try:
                yield await system.start()
            finally:
                await system.stop()
    else:
        system = System(f"sqlite:///{tmp_path / 'hostcheck.db'}", "memory://", live_prefix, **ports)
        try:
            yield await system.start()
        finally:
            await system.stop()


async def test_metrics_endpoints_move_when_a_check_runs(metered_system, tmp_path, tcp_target, http_target):
    system = metered_system
    scheduler_port = system.scheduler.metrics_server.port
    results_port = system.results.metrics_server.port
    agent = await system.start_agent(tmp_path, "a1", metrics_port=free_port())
    agent_port = agent.config.metrics_port

    before = await scrape(scheduler_port)
    assert value(before, "hostcheck_checks_created_total") == 0
    assert value(before, "hostcheck_connected_agents") == 1
    assert value(before, "hostcheck_agent_streams_opened_total") == 1
    assert value(before, "hostcheck_result_forwarder_queue") == 0
    assert value(before, "process_resident_memory_bytes") > 0
    assert value(await scrape(results_port), "hostcheck_check_create_to_complete_seconds_count",
                 status="completed") is None
    agent_before = await scrape(agent_port)
    assert value(agent_before, "hostcheck_agent_stream_connects_total") == 1
    assert value(agent_before, "hostcheck_agent_stream_reconnects_total") == 0
    assert value(agent_before, "probe_success", check_type="tcp") is None

    created = await system.create.CreateCheck(check_request(tcp_target, http_target.port))
    await completed(system, created.check_id)

    after = await scrape(scheduler_port)
    assert value(after, "hostcheck_checks_created_total") == 1
    assert value(after, "hostcheck_tasks_dispatched_total", check_type="tcp") == 1
    assert value(after, "hostcheck_tasks_dispatched_total", check_type="http") == 1

    async def results_moved():
        samples = await scrape(results_port)
        assert value(samples, "hostcheck_check_create_to_complete_seconds_count", status="completed") == 1
        return samples
    results = await assert_eventually(results_moved, message="completion metrics")
    assert 0 < value(results, "hostcheck_check_create_to_complete_seconds_sum", status="completed") < 20
    assert value(results, "hostcheck_tasks_finished_total", check_type="tcp", outcome="completed") == 1
    assert value(results, "hostcheck_tasks_finished_total", check_type="http", outcome="completed") == 1

    async def agent_moved():
        samples = await scrape(agent_port)
        assert value(samples, "hostcheck_agent_unacked_results") == 0
        return samples
    probes = await assert_eventually(agent_moved, message="results acknowledged")
    for check_type in ("tcp", "http"):
        assert value(probes, "probe_success", check_type=check_type) == 1
        assert value(probes, "probe_duration_seconds_count", check_type=check_type) == 1
        assert value(probes, "probe_dns_lookup_time_seconds_count", check_type=check_type) == 1
        assert value(probes, "hostcheck_agent_probes_total", check_type=check_type, outcome="success") == 1
    for phase in ("resolve", "connect", "processing", "transfer"):
        assert value(probes, "probe_http_duration_seconds_count", phase=phase) == 1
    assert value(probes, "probe_http_duration_seconds_count", phase="tls") is None  # plain http
    assert value(probes, "hostcheck_agent_pending_results") == 0
    assert value(probes, "hostcheck_agent_running_tasks") == 0


async def test_failed_and_timed_out_tasks_are_counted_by_outcome(metered_system, tmp_path):
    system = metered_system
    agent = await system.start_agent(tmp_path, "a1", metrics_port=free_port())
    closed = free_port()
    created = await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target=f"127.0.0.1:{closed}", checks=["tcp"]))
    await completed(system, created.check_id)
    probes = await scrape(agent.config.metrics_port)
    assert value(probes, "probe_success", check_type="tcp") == 0
    assert value(probes, "hostcheck_agent_probes_total", check_type="tcp", outcome="refused") == 1

    async def counted():
        samples = await scrape(system.results.metrics_server.port)
        assert value(samples, "hostcheck_tasks_finished_total", check_type="tcp", outcome="failed") == 1
        return True
    await assert_eventually(counted, message="failed task counted")


async def test_metrics_endpoint_answers_only_metrics(metered_system):
    port = metered_system.results.metrics_server.port
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"http://127.0.0.1:{port}/nope", timeout=5)).status_code == 404
        assert (await client.post(f"http://127.0.0.1:{port}/metrics", timeout=5)).status_code == 405


async def test_registry_counts_registrations(tmp_path):
    port = free_port()
    registry = await registry_service.start(RegistryConfig(
        listen="127.0.0.1:0", registration_token=REGISTRATION_TOKEN, database_url=f"sqlite:///{tmp_path / 'r.db'}",
        live_state_url="memory://", metrics_port=port), live=MemoryLiveState())
    try:
        assert value(await scrape(port), "hostcheck_agent_registrations_total") == 0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{registry.port}") as channel:
            await registry_pb2_grpc.RegistryServiceStub(channel).RegisterAgent(
                registry_pb2.RegisterAgentRequest(name="a1", capabilities=["tcp"]),
                metadata=(("x-registration-token", REGISTRATION_TOKEN),))
        assert value(await scrape(port), "hostcheck_agent_registrations_total") == 1
    finally:
        await registry.stop()


async def test_scheduler_counts_heartbeats(tmp_path, live_prefix):
    """The seed's agent_heartbeats_total (hostcheck_agent_heartbeats_total): one per heartbeat received."""
    port = free_port()
    system = System(f"sqlite:///{tmp_path / 'hostcheck.db'}", "memory://", live_prefix,
                    scheduler_overrides={"metrics_port": port, "heartbeat_interval_s": 1.0})  # whole seconds
    await system.start()
    try:
        assert value(await scrape(port), "hostcheck_agent_heartbeats_total") == 0
        await system.start_agent(tmp_path, "a1")

        async def counted():
            assert value(await scrape(port), "hostcheck_agent_heartbeats_total") >= 3
            return True
        await assert_eventually(counted, timeout=10, message="3 heartbeats counted")
    finally:
        await system.stop()


def test_metrics_are_off_by_default():
    from hostcheck.core.config import AgentConfig, ResultsConfig, SchedulerConfig, load

    for cls in (RegistryConfig, ResultsConfig, SchedulerConfig, AgentConfig):
        assert load(cls, {}).metrics_port == 0


# ---- production wiring: processes exporting OTLP to a collector -----------------------------

class FakeCollector:
    """An OTLP/gRPC trace receiver on loopback: keeps (service.name, span) of every export."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

        self.spans: list[tuple[str, object]] = []
        self.server = grpc.aio.server()
        collector = self

        class Service(trace_service_pb2_grpc.TraceServiceServicer):
            async def Export(self, request, context):
                for resource_spans in request.resource_spans:
                    service = next((a.value.string_value for a in resource_spans.resource.attributes
                                    if a.key == "service.name"), "")
                    collector.spans.extend((service, span) for scope in resource_spans.scope_spans
                                           for span in scope.spans)
                return trace_service_pb2.ExportTraceServiceResponse()

        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")


async def test_processes_export_one_trace_per_check_over_otlp(tmp_path, live_prefix, tcp_target):
    pytest.importorskip("opentelemetry.exporter.otlp.proto.grpc")
    from hostcheck.v1 import results_pb2_grpc, scheduler_pb2_grpc
    from tests.procs import ProcSystem

    collector = FakeCollector()
    await collector.server.start()
    otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.port}", "OTEL_EXPORTER_OTLP_INSECURE": "true",
            "OTEL_BSP_SCHEDULE_DELAY": "50", "HOSTCHECK_LOG_FORMAT": "json"}
    metrics_port = free_port()
    with fresh_postgres_db() as url:
        procs = ProcSystem(url, REDIS_URL, live_prefix, tmp_path, extra_env={
            "results": otel, "registry": otel, "scheduler": {**otel, "HOSTCHECK_METRICS_PORT": str(metrics_port)}})
        try:
            await procs.start()
            agent = procs.start_agent("a1", **otel)
            async with grpc.aio.insecure_channel(procs.addr("scheduler")) as channel:
                await assert_eventually(
                    lambda: "connected to scheduler" in agent.output(), timeout=20, message="agent connected")
                created = await scheduler_pb2_grpc.SchedulerServiceStub(channel).CreateCheck(
                    scheduler_pb2.CreateCheckRequest(target=f"127.0.0.1:{tcp_target}", checks=["tcp"]))
            async with grpc.aio.insecure_channel(procs.addr("results")) as channel:
                checks = results_pb2_grpc.ResultsServiceStub(channel)

                async def done():
                    check = (await checks.GetCheck(results_pb2.GetCheckRequest(check_id=created.check_id))).check
                    return check.status == "completed"
                await assert_eventually(done, timeout=20, message="check completed")

            def exported():
                names = {(service, span.name) for service, span in collector.spans}
                assert {("hostcheck-scheduler", "create"), ("hostcheck-scheduler", "dispatch"),
                        ("hostcheck-agent", "agent run"), ("hostcheck-results", "store")} <= names, names
                stored = [s for service, s in collector.spans if s.name == "store"]
                assert len(stored) == 2, "OpenCheck and the result"
                return True
            await assert_eventually(exported, timeout=20, message="spans exported by every process")
            spans = {span.name: span for _, span in collector.spans if span.name != "store"}
            stores = [span for _, span in collector.spans if span.name == "store"]
            assert {s.trace_id for s in [*spans.values(), *stores]} == {spans["create"].trace_id}
            assert spans["create"].parent_span_id == b""
            assert spans["dispatch"].parent_span_id == spans["create"].span_id
            assert spans["agent run"].parent_span_id == spans["dispatch"].span_id
            assert sorted(s.parent_span_id for s in stores) == sorted([spans["create"].span_id,
                                                                       spans["agent run"].span_id])

            assert value(await scrape(metrics_port), "hostcheck_checks_created_total") == 1
            first = next(line for line in procs.procs["scheduler"].output().splitlines() if line.startswith("{"))
            assert json.loads(first)["service"] == "scheduler"
        finally:
            procs.stop()
            await collector.server.stop(None)
