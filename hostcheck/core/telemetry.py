"""Traces and logs for every process kind (registry, results, scheduler, agent, dev).

Traces: one trace per check. The scheduler's `create` span (CreateCheck) is the
root, or the child of a `traceparent` the caller sent; the results' `store` span
of OpenCheck is its child through gRPC metadata; one `dispatch` span per agent
batch is its child too and travels as W3C trace context inside each Task
(`Task.trace_context`); the agent's `agent run` span of a task is the child of
that; the agent returns its own context in `TaskResult.trace_context`, so the
results' `store` span of each result (RecordResults) is the child of the run.
Off unless the standard OTEL_* variables ask for an exporter: then nothing is
recorded and nothing is added to messages or metadata.

Metrics: hostcheck.core.metrics (Prometheus), imported only by what serves them: an
agent with HOSTCHECK_METRICS_PORT 0 (the default) loads no Prometheus code.

Logs: hostcheck.core.logs (JSON lines with HOSTCHECK_LOG_FORMAT=json, with the active
span's trace_id and span_id).

OpenTelemetry itself is imported when tracing is turned on, when a span is asked for, or when
`SpanKind` is read (services), not by importing this module: an agent with tracing off (the
default) never loads it (~0.4 MB of an idle agent's RSS; issue 17).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from hostcheck.core import logs

if TYPE_CHECKING:
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

log = logging.getLogger(__name__)


# ---- tracing --------------------------------------------------------------------------------

_tracer: trace.Tracer | None = None  # while tracing is on
_enabled = False


def __getattr__(name: str) -> Any:
    """`SpanKind` (what callers pass to `span`), imported when first read."""
    if name == "SpanKind":
        from opentelemetry.trace import SpanKind

        return SpanKind
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def use_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Records this package's spans with `provider`; None turns tracing off (tests install and remove one)."""
    global _tracer, _enabled
    _tracer = provider.get_tracer("hostcheck") if provider is not None else None
    _enabled = provider is not None


def tracing_enabled() -> bool:
    return _enabled


def _traces_exporter(env: Mapping[str, str]):
    """The span exporter the OTEL_* variables ask for, or None (the default: tracing off)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not name:
        # No exporter named: OTLP when an endpoint is given, else off (dev and tests).
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        name = "otlp" if endpoint else "none"
    if name == "none":
        return None
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise SystemExit(f"OTEL_TRACES_EXPORTER={name!r}: use otlp, console or none")
    protocol = (env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
                or "grpc").strip().lower()
    modules = {"grpc": "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
               "http/protobuf": "opentelemetry.exporter.otlp.proto.http.trace_exporter"}
    if protocol not in modules:
        raise SystemExit(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use grpc or http/protobuf")
    try:
        module = importlib.import_module(modules[protocol])
    except ImportError as exc:
        raise SystemExit(f"traces need the OTLP exporter: pip install opentelemetry-exporter-otlp ({exc})") from exc
    return module.OTLPSpanExporter()  # endpoint, headers, timeout, TLS: from OTEL_EXPORTER_OTLP_* itself


def setup_tracing(service_name: str, env: Mapping[str, str] | None = None) -> bool:
    """Exports spans as the OTEL_* variables say (sampler: OTEL_TRACES_SAMPLER; batching: OTEL_BSP_*).

    Returns whether tracing is on. OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    override the service name given here.
    """
    env = os.environ if env is None else env
    exporter = _traces_exporter(env)
    if exporter is None:
        return False
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({SERVICE_NAME: service_name, "service.namespace": "hostcheck"})
    if env.get("OTEL_SERVICE_NAME"):
        resource = resource.merge(Resource({SERVICE_NAME: env["OTEL_SERVICE_NAME"]}))
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    use_tracer_provider(provider)
    log.info("tracing on: %s spans exported by %s", service_name, type(exporter).__name__)
    return True


def setup(kind: str, conf) -> None:
    """Logging and tracing of a process, from its config (log_level, log_format) and OTEL_*."""
    logs.setup(conf.log_level, conf.log_format, name=kind)
    setup_tracing(f"hostcheck-{kind}")


@contextlib.contextmanager
def span(name: str, *, parent: Mapping[str, str] | None = None, kind: SpanKind | None = None,
         attributes: Mapping[str, Any] | None = None) -> Iterator[trace.Span]:
    """A span, current inside the block; `parent` is a W3C carrier (else the current span is the parent);
    `kind` INTERNAL unless given."""
    from opentelemetry import propagate, trace

    if not _enabled or _tracer is None:
        yield trace.INVALID_SPAN
        return
    context = propagate.extract(parent) if parent is not None else None
    kind = trace.SpanKind.INTERNAL if kind is None else kind
    with _tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes) as current:
        yield current


@contextlib.contextmanager
def spans(name: str, items: Iterable[tuple[Mapping[str, str], Mapping[str, Any]]], *,
          kind: SpanKind | None = None) -> Iterator[None]:
    """One span per (parent carrier, attributes) around one batched operation, each in its own trace.

    `items` is only iterated when tracing is on.
    """
    if not _enabled or _tracer is None:
        yield
        return
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind, Status, StatusCode

    tracer, kind = _tracer, SpanKind.INTERNAL if kind is None else kind
    started = [tracer.start_span(name, context=propagate.extract(parent), kind=kind, attributes=attributes)
               for parent, attributes in items]
    try:
        yield
    except BaseException as exc:
        for s in started:
            s.record_exception(exc)
            s.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        for s in started:
            s.end()


def inject(carrier: MutableMapping[str, str]) -> None:
    """Writes the current span's W3C context (traceparent, tracestate) into `carrier` when tracing is on."""
    if _enabled:
        from opentelemetry import propagate

        propagate.inject(carrier)


def grpc_metadata() -> tuple[tuple[str, str], ...] | None:
    """The current trace context as gRPC metadata for an outgoing call (None when tracing is off)."""
    if not _enabled:
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items()) or None


def metadata_of(context) -> dict[str, str]:
    """A servicer context's invocation metadata as a carrier to extract a parent from."""
    if not _enabled:
        return {}
    return {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
