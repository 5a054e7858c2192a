"""Who is calling: anonymous (by client IP), an API key, or the admin.

A caller presents `authorization: Bearer <credential>` (gRPC metadata; the same HTTP header
over REST and gRPC-Web). The credential is the admin token (HOSTCHECK_ADMIN_TOKEN, held by
the results service only) or an API key the admin made (stored hashed in the results
service's `api_keys` table). No header: anonymous, known by its client IP.

The results service resolves credentials itself (services/results/keys.py); the scheduler
and the registry ask it over RPC (CallerAuthService.VerifyCaller) every time, without a
cache: a revoked key is refused by every replica from the moment the revocation is stored,
and the lookup (one indexed row by hash) costs less than the OpenCheck write a check
already pays. What each role may do is decided where it is done (the servicers); this
module only says who the caller is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import grpc

from hostcheck.core.errors import PermissionDenied, Unauthenticated, Unavailable
from hostcheck.services.grpcserver import client_ip
from hostcheck.v1 import keys_pb2, keys_pb2_grpc

ANONYMOUS = "anonymous"
KEY = "key"
ADMIN = "admin"

# The longest credential looked at; anything longer is refused unread.
MAX_CREDENTIAL = 512


@dataclass(frozen=True)
class Verified:
    """What a credential stands for."""

    role: str  # KEY or ADMIN
    key_id: str = ""
    quota_per_hour: int = 0


@dataclass(frozen=True)
class Caller:
    role: str  # ANONYMOUS, KEY or ADMIN
    ip: str
    key_id: str = ""
    quota_per_hour: int = 0

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


# Resolves a credential; raises Unauthenticated when it is not one.
Verify = Callable[[str], Awaitable[Verified]]


def hash_credential(credential: str) -> str:
    # Keys and tokens are 256-bit random: a plain digest is enough (no password stretching needed).
    return hashlib.sha256(credential.encode()).hexdigest()


def bearer(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The credential of `authorization: Bearer <credential>`; "" when there is no such header."""
    for key, value in metadata or ():
        if key != "authorization":
            continue
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        scheme, _, credential = text.strip().partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise Unauthenticated("the authorization header must be 'Bearer <api key or admin token>'")
        credential = credential.strip()
        if len(credential) > MAX_CREDENTIAL:
            raise Unauthenticated("unknown or revoked credential")
        return credential
    return ""


async def caller_of(context: grpc.aio.ServicerContext, verify: Verify) -> Caller:
    """Who made this call: anonymous without credentials, else what `verify` says (or Unauthenticated)."""
    ip = client_ip(context)
    credential = bearer(context.invocation_metadata())
    if not credential:
        return Caller(ANONYMOUS, ip)
    verified = await verify(credential)
    return Caller(verified.role, ip, verified.key_id, verified.quota_per_hour)


def require_admin(caller: Caller, action: str) -> None:
    if caller.role == ANONYMOUS:
        raise Unauthenticated(f"{action} needs the admin token (authorization: Bearer <admin token>)")
    if not caller.is_admin:
        raise PermissionDenied(f"{action} needs the admin token, not an API key")


class RemoteVerifier:
    """Asks the results service (CallerAuthService) who a credential is."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = keys_pb2_grpc.CallerAuthServiceStub(channel)

    async def __call__(self, credential: str) -> Verified:
        try:
            reply = await self.stub.VerifyCaller(keys_pb2.VerifyCallerRequest(credential=credential), timeout=10)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                raise Unauthenticated(exc.details() or "unknown or revoked credential") from None
            raise Unavailable(f"cannot verify the credential: results service {exc.code().name}") from None
        return Verified(reply.role, reply.key_id, reply.quota_per_hour)
