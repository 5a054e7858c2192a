"""Client side of gRPC shared by every part: channel options and a plain channel."""

from __future__ import annotations

import grpc

CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 16 * 1024 * 1024),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    # A channel's own connections: grpc otherwise shares one connection among every channel of
    # the process to the same target, so an agent's fresh channel after a drain (or the agents
    # of `hostcheck dev`, all in one process) would ride the old connection to the same replica
    # instead of letting the Service pick one again.
    ("grpc.use_local_subchannel_pool", 1),
]


# Service-to-service channels balance over every address their name resolves to. Given a
# Kubernetes *headless* Service (dns:///registry-headless:50051), that is every ready pod, one
# subchannel each, re-resolved whenever one of them goes away; through a ClusterIP the one HTTP/2
# connection would pin every call of a replica to whichever pod kube-proxy picked first.
SERVICE_CHANNEL_OPTIONS = [*CHANNEL_OPTIONS, ("grpc.lb_policy_name", "round_robin")]


def channel(addr: str) -> grpc.aio.Channel:
    """A channel to another service: round robin over every address of `addr` (host:port or dns:///host:port)."""
    return grpc.aio.insecure_channel(addr, options=SERVICE_CHANNEL_OPTIONS)
