"""API keys: made, listed and revoked by the admin; resolving credentials for every service.

The keys live here, beside the checks they own, because the results service is the one
every other part already calls (the scheduler and the registry each hold a channel to it):
verifying a credential adds no new dependency and no start-order cycle, and the ownership
rules of DeleteCheck/ListChecks read the key in-process.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from hostcheck.core import limits
from hostcheck.core.checks import require_uuid
from hostcheck.core.errors import InvalidArgument, NotFound, Unauthenticated
from hostcheck.core.timestamps import ts_or_none
from hostcheck.services.auth import ADMIN, KEY, Verified, caller_of, hash_credential, require_admin
from hostcheck.services.results.models import ApiKeyRow
from hostcheck.services.rpcerrors import grpc_errors
from hostcheck.v1 import keys_pb2, keys_pb2_grpc

log = logging.getLogger(__name__)

DEFAULT_QUOTA_PER_HOUR = 1000
MAX_QUOTA_PER_HOUR = 1_000_000
KEY_PREFIX = "hck_"


class KeyStore:
    def __init__(self, sessions) -> None:
        self.sessions = sessions

    async def create(self, *, name: str, quota_per_hour: int) -> tuple[ApiKeyRow, str]:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(id=uuid.uuid4(), name=name, key_hash=hash_credential(key), quota_per_hour=quota_per_hour,
                        created_at=datetime.now(UTC))
        async with self.sessions() as session, session.begin():
            session.add(row)
        return row, key

    async def all(self) -> list[ApiKeyRow]:
        async with self.sessions() as session:
            return list((await session.scalars(
                select(ApiKeyRow).order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.id))).all())

    async def revoke(self, key_id: uuid.UUID) -> ApiKeyRow:
        async with self.sessions() as session, session.begin():
            row = await session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"key {key_id} not found")
            if row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
        return row

    async def by_hash(self, key_hash: str) -> ApiKeyRow | None:
        async with self.sessions() as session:
            return await session.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash))


class LocalVerifier:
    """Resolves a credential against the admin token and the stored keys."""

    def __init__(self, store: KeyStore, admin_token: str) -> None:
        self.store = store
        self.admin_token = admin_token

    async def __call__(self, credential: str) -> Verified:
        if self.admin_token and hmac.compare_digest(credential.encode(), self.admin_token.encode()):
            return Verified(ADMIN)
        row = await self.store.by_hash(hash_credential(credential))
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("unknown or revoked credential")
        return Verified(KEY, str(row.id), row.quota_per_hour)


def key_view(row: ApiKeyRow) -> keys_pb2.ApiKey:
    return keys_pb2.ApiKey(key_id=str(row.id), name=row.name, quota_per_hour=row.quota_per_hour,
                           created_at=ts_or_none(row.created_at), revoked_at=ts_or_none(row.revoked_at),
                           status="revoked" if row.revoked_at else "active")


def validate_new_key(request: keys_pb2.CreateKeyRequest) -> tuple[str, int]:
    name = request.name.strip()
    if not name or len(request.name) > 255:
        raise InvalidArgument(field="name", reason="must be 1-255 characters")
    if limits.nul_violations(request):
        raise InvalidArgument(field="name", reason=limits.NUL_REASON)
    quota = request.quota_per_hour or DEFAULT_QUOTA_PER_HOUR
    if quota > MAX_QUOTA_PER_HOUR:
        raise InvalidArgument(field="quota_per_hour", reason=f"must be 1-{MAX_QUOTA_PER_HOUR} (0: the default, "
                                                             f"{DEFAULT_QUOTA_PER_HOUR})")
    return name, quota


class KeysServicer(keys_pb2_grpc.KeysServiceServicer):
    def __init__(self, store: KeyStore, verify: LocalVerifier) -> None:
        self.store = store
        self.verify = verify

    @grpc_errors
    async def CreateKey(self, request, context):
        require_admin(await caller_of(context, self.verify), "creating an API key")
        name, quota = validate_new_key(request)
        row, key = await self.store.create(name=name, quota_per_hour=quota)
        log.info("created API key %s (%s, %d checks/hour)", row.id, row.name, row.quota_per_hour)
        return keys_pb2.CreateKeyResponse(key_id=str(row.id), api_key=key, key=key_view(row))

    @grpc_errors
    async def ListKeys(self, request, context):
        require_admin(await caller_of(context, self.verify), "listing API keys")
        return keys_pb2.ListKeysResponse(keys=[key_view(r) for r in await self.store.all()])

    @grpc_errors
    async def RevokeKey(self, request, context):
        require_admin(await caller_of(context, self.verify), "revoking an API key")
        row = await self.store.revoke(require_uuid("key_id", request.key_id))
        log.info("revoked API key %s (%s)", row.id, row.name)
        return keys_pb2.RevokeKeyResponse(key=key_view(row))


class CallerAuthServicer(keys_pb2_grpc.CallerAuthServiceServicer):
    def __init__(self, verify: LocalVerifier) -> None:
        self.verify = verify

    @grpc_errors
    async def VerifyCaller(self, request, context):
        if not request.credential or len(request.credential) > 512:
            raise Unauthenticated("unknown or revoked credential")
        verified = await self.verify(request.credential)
        return keys_pb2.VerifyCallerResponse(role=verified.role, key_id=verified.key_id,
                                             quota_per_hour=verified.quota_per_hour)
