"""Building a service's grpc.aio server: health, reflection, and a port tests can pick (`:0`)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import ipaddress
import logging
from collections.abc import Awaitable, Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hostcheck.core.config import ConfigError, read_pem
from hostcheck.v1 import keys_pb2, monitors_pb2, registry_pb2, results_pb2, scheduler_pb2

log = logging.getLogger(__name__)

# The whole public API; the server that Envoy sends reflection to lists all of it, so
# `grpcurl list` through the gateway shows every service on one port.
PUBLIC_SERVICES = (
    scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name,
    scheduler_pb2.DESCRIPTOR.services_by_name["AgentStreamService"].full_name,
    results_pb2.DESCRIPTOR.services_by_name["ResultsService"].full_name,
    registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name,
    keys_pb2.DESCRIPTOR.services_by_name["KeysService"].full_name,
    monitors_pb2.DESCRIPTOR.services_by_name["MonitorsService"].full_name,
)

SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]

# What liveness probes ask (grpc.health.v1, service name): SERVING whenever the process answers,
# unlike "" and the API's names, which say whether to send it traffic (readiness).
LIVENESS_SERVICE = "liveness"


class _Undecodable:
    """What a request deserializer returns for bytes that are not the method's message."""

    def __init__(self, exc: Exception) -> None:
        self.exc = exc


def _safe(deserializer: Callable | None) -> Callable | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes):
        try:
            return deserializer(data)
        except Exception as exc:  # noqa: BLE001 - DecodeError, or anything a malformed message raises
            return _Undecodable(exc)
    return deserialize


def _pass_bytes(serializer: Callable | None) -> Callable | None:
    """A response serializer that sends `bytes` as they are: a message encoded once and sent to many
    (a watch event to every watcher of a check) is not decoded and encoded again per receiver."""
    if serializer is None:
        return None

    def serialize(response):
        return response if isinstance(response, bytes) else serializer(response)
    return serialize


async def _refuse(context: grpc.aio.ServicerContext, bad: _Undecodable):
    log.debug("undecodable request: %s", bad.exc)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                        "the request is not a valid protobuf message of this method's request type")


class DecodeGuard(grpc.aio.ServerInterceptor):
    """Undecodable request bytes get INVALID_ARGUMENT, not UNKNOWN naming a Python exception;
    a servicer may answer with already-encoded bytes (see _pass_bytes).

    grpcio reports a deserializer's exception as UNKNOWN ("Exception deserializing request!");
    a client sent those bytes, so it is the client's error. The deserializer here returns a
    marker instead, and the method's handler answers the marker before the servicer sees it.
    """

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or not isinstance(handler, tuple):
            return handler
        safe = handler._replace(request_deserializer=_safe(handler.request_deserializer),
                                response_serializer=_pass_bytes(handler.response_serializer))
        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            async def unary_unary(request, context):
                if isinstance(request, _Undecodable):
                    await _refuse(context, request)
                return await inner_uu(request, context)
            return safe._replace(unary_unary=unary_unary)
        if handler.unary_stream is not None:
            inner_us = handler.unary_stream

            async def unary_stream(request, context):
                if isinstance(request, _Undecodable):
                    await _refuse(context, request)
                return inner_us(request, context)
            return safe._replace(unary_stream=_streaming(inner_us, unary_stream))

        async def checked(requests, context):
            async for request in requests:
                if isinstance(request, _Undecodable):
                    await _refuse(context, request)
                yield request
        if handler.stream_unary is not None:
            inner_su = handler.stream_unary

            async def stream_unary(requests, context):
                return await inner_su(checked(requests, context), context)
            return safe._replace(stream_unary=stream_unary)
        inner_ss = handler.stream_stream

        async def stream_stream(requests, context):
            return inner_ss(checked(requests, context), context)
        return safe._replace(stream_stream=_streaming(inner_ss, stream_stream))


def _streaming(inner: Callable, start: Callable) -> Callable:
    """A streaming handler like `inner` (an async generator, or a coroutine writing with
    context.write) that runs `start` (checks, then inner's call) first."""
    if inspect.isasyncgenfunction(inner):
        async def generate(request, context):
            async for response in await start(request, context):
                yield response
        return generate

    async def write(request, context):
        return await (await start(request, context))
    return write


class Server:
    """A started gRPC server with its health servicer."""

    def __init__(self, server: grpc.aio.Server, port: int, health_servicer: health.aio.HealthServicer,
                 names: Sequence[str]) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer
        self.names = names
        self.tls_port = 0
        self._gate: asyncio.Task | None = None

    async def serve_when(self, ready: Callable[[], Awaitable[bool]], what: str, *, interval_s: float = 2.0) -> None:
        """Reports NOT_SERVING (start it with serving=False) until `ready()` is true; then SERVING.

        Checked once now (so a server that is ready starts SERVING before this returns), then
        every `interval_s` in the background. Readiness probes (and Envoy's health checks) keep
        traffic away meanwhile; liveness probes ask LIVENESS_SERVICE, which stays SERVING.
        """
        async def check() -> bool:
            try:
                if await ready():
                    await self.set_serving(True)
                    return True
            except Exception as exc:  # noqa: BLE001 - not ready yet, whatever the reason
                log.debug("not serving yet (%s): %s", what, exc)
            return False

        async def wait() -> None:
            while True:  # polling: nothing tells this process when another one has migrated
                await asyncio.sleep(interval_s)
                if await check():
                    log.info("%s: serving", what)
                    return

        if not await check():
            log.warning("not serving until %s", what)
            self._gate = asyncio.create_task(wait(), name=f"serve-when-{what}")

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.names):
            await self.health.set(name, status)

    async def stop(self, grace: float | None = 2.0) -> None:
        if self._gate is not None:
            self._gate.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gate
        await self.set_serving(False)
        await self.server.stop(grace)


def server_credentials(tls) -> grpc.ServerCredentials | None:
    """Credentials for a config's TLS port (hostcheck.core.config.TLSServerConfig), or None without one."""

    if not tls.tls_listen:
        return None
    if not (tls.tls_cert_file and tls.tls_key_file):
        raise ConfigError("HOSTCHECK_TLS_LISTEN needs HOSTCHECK_TLS_CERT_FILE and HOSTCHECK_TLS_KEY_FILE")
    client_ca = read_pem("tls_client_ca_file", tls.tls_client_ca_file)
    return grpc.ssl_server_credentials(
        [(read_pem("tls_key_file", tls.tls_key_file), read_pem("tls_cert_file", tls.tls_cert_file))],
        root_certificates=client_ca, require_client_auth=client_ca is not None)


async def start_server(listen: str, registrations: Sequence[tuple[Callable, object]], names: Sequence[str],
                       *, reflect: Sequence[str] = (), tls=None, trusted_hops: int = 0,
                       serving: bool = True) -> Server:
    """Starts a server on `listen` (host:port, port 0 picks one) with the given servicers.

    `names` are the services served here (health reports them); `reflect` adds
    names to reflection only (see PUBLIC_SERVICES). `tls` (a TLSServerConfig)
    adds its TLS port serving the same services. `trusted_hops`: see client_ip().
    `serving`: the health it reports at first (see Server.serve_when); LIVENESS_SERVICE is
    always SERVING while the process answers.
    """
    credentials = server_credentials(tls) if tls is not None else None
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=[TrustedHops(trusted_hops), DecodeGuard()])
    for add, servicer in registrations:
        add(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflected = list(dict.fromkeys([*names, *reflect, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                                    reflection.SERVICE_NAME]))
    reflection.enable_server_reflection(reflected, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot bind {listen}")
    tls_port = 0
    if credentials is not None:
        tls_port = server.add_secure_port(tls.tls_listen, credentials)
        if tls_port == 0:
            raise OSError(f"cannot bind {tls.tls_listen}")
    await server.start()
    started = Server(server, port, health_servicer, names)
    started.tls_port = tls_port
    await started.set_serving(serving)
    await health_servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
    log.info("serving %s on port %d", ", ".join(n.rsplit(".", 1)[-1] for n in names), port)
    return started


def client_ip(context: grpc.aio.ServicerContext) -> str:
    """The caller's IP: from x-forwarded-for past the trusted proxy hops, else the peer.

    Envoy appends the address it saw (`use_remote_address`) as the last entry. Each of the
    HOSTCHECK_TRUSTED_HOPS proxies in front of Envoy (a cloud load balancer, an ingress)
    appended the address *it* saw before that, so the client is the entry `hops` places
    left of the last one. Anything further left is whatever the client sent, forgeable to
    dodge the rate limit, and never read. With fewer entries than that (the request
    bypassed a proxy) the leftmost is taken: it is still one a proxy of ours appended.
    """
    hops = _TRUSTED_HOPS.get()
    for key, value in context.invocation_metadata() or ():
        if key == "x-forwarded-for" and value:
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            entries = [e.strip() for e in text.split(",")]
            return _plain_ip(entries[max(len(entries) - 1 - hops, 0)])
    peer = context.peer() or ""
    # ipv4:127.0.0.1:1234 / ipv6:[::1]:1234
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return _plain_ip(rest.rsplit(":", 1)[0].strip("[]"))
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return peer


def _plain_ip(text: str) -> str:
    """An IPv4 client seen by a dual-stack listener (::ffff:a.b.c.d) keys as a.b.c.d."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return text
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


# The proxy hops in front of Envoy whose x-forwarded-for entries are trusted (start_server's
# trusted_hops), set for each call by TrustedHops so every client_ip() caller sees it.
_TRUSTED_HOPS: contextvars.ContextVar[int] = contextvars.ContextVar("trusted_hops", default=0)


class TrustedHops(grpc.aio.ServerInterceptor):
    """Makes a server's trusted_hops what client_ip() reads during each of its calls.

    grpc.aio runs the interceptors and then the method's handler in one task per call, so
    a context variable set here is the call's own.
    """

    def __init__(self, hops: int) -> None:
        if hops < 0:
            raise ConfigError(f"trusted_hops must be 0 or more, not {hops}")
        self.hops = hops

    async def intercept_service(self, continuation, handler_call_details):
        _TRUSTED_HOPS.set(self.hops)
        return await continuation(handler_call_details)
