"""Building a service's grpc.aio server: health, reflection, and a port tests can pick (`:0`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hostcheck.core.config import ConfigError, read_pem
from hostcheck.v1 import registry_pb2, results_pb2, scheduler_pb2

log = logging.getLogger(__name__)

# The whole public API; the server that Envoy sends reflection to lists all of it, so
# `grpcurl list` through the gateway shows every service on one port.
PUBLIC_SERVICES = (
    scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name,
    scheduler_pb2.DESCRIPTOR.services_by_name["AgentStreamService"].full_name,
    results_pb2.DESCRIPTOR.services_by_name["ResultsService"].full_name,
    registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name,
)

SERVER_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
]

class Server:
    """A started gRPC server with its health servicer."""

    def __init__(self, server: grpc.aio.Server, port: int, health_servicer: health.aio.HealthServicer,
                 names: Sequence[str]) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer
        self.names = names
        self.tls_port = 0

    async def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", *self.names):
            await self.health.set(name, status)

    async def stop(self, grace: float | None = 2.0) -> None:
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
                       *, reflect: Sequence[str] = (), tls=None) -> Server:
    """Starts a server on `listen` (host:port, port 0 picks one) with the given servicers.

    `names` are the services served here (health reports them); `reflect` adds
    names to reflection only (see PUBLIC_SERVICES). `tls` (a TLSServerConfig)
    adds its TLS port serving the same services.
    """
    credentials = server_credentials(tls) if tls is not None else None
    server = grpc.aio.server(options=SERVER_OPTIONS)
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
    await started.set_serving(True)
    log.info("serving %s on port %d", ", ".join(n.rsplit(".", 1)[-1] for n in names), port)
    return started


def client_ip(context: grpc.aio.ServicerContext) -> str:
    """The caller's IP: the address Envoy appended to x-forwarded-for, else the peer.

    The last entry is the one Envoy itself saw (`use_remote_address`); earlier ones
    are whatever the client sent and could be forged to dodge the rate limit.
    """
    for key, value in context.invocation_metadata() or ():
        if key == "x-forwarded-for" and value:
            return value.split(",")[-1].strip()
    peer = context.peer() or ""
    # ipv4:127.0.0.1:1234 / ipv6:[::1]:1234
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return peer
