"""API keys over gRPC on both storages: validation, hashing, revocation, and who sees and deletes
which check. (Through Envoy on the production shape: tests/gateway/test_keys.py.)"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import sqlalchemy as sa

from hostcheck.services.storage import db
from hostcheck.v1 import keys_pb2, keys_pb2_grpc, results_pb2, scheduler_pb2
from tests.conftest import ADMIN


def execute(url: str, *statements):
    """Runs statements in one transaction; the last one's rows (if it returns any)."""
    engine = sa.create_engine(db.sync_url(url))
    try:
        with engine.begin() as conn:
            for statement in statements:
                result = conn.execute(statement)
            return result.scalars().all() if result.returns_rows else None
    finally:
        engine.dispose()


def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def keys(system) -> keys_pb2_grpc.KeysServiceStub:
    return keys_pb2_grpc.KeysServiceStub(system.results_channel)


async def refused(call, request, metadata, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request, metadata=metadata)
    assert err.value.code() == code, err.value.details()
    return err.value.details() or ""


@pytest.mark.parametrize(("request_", "field"), [
    (keys_pb2.CreateKeyRequest(name=""), "name"),
    (keys_pb2.CreateKeyRequest(name="   "), "name"),
    (keys_pb2.CreateKeyRequest(name="x" * 256), "name"),
    (keys_pb2.CreateKeyRequest(name="x", quota_per_hour=1_000_001), "quota_per_hour"),
])
async def test_bad_new_keys_name_the_field(system, request_, field):
    details = await refused(keys(system).CreateKey, request_, ADMIN, grpc.StatusCode.INVALID_ARGUMENT)
    assert details.startswith(f"{field}:")


async def test_keys_are_stored_hashed_listed_without_the_key_and_revoked(system):
    made = await keys(system).CreateKey(keys_pb2.CreateKeyRequest(name="ci", quota_per_hour=5), metadata=ADMIN)
    assert made.key.quota_per_hour == 5 and made.key.status == "active"
    stored = await asyncio.to_thread(execute, system.database_url, sa.text("SELECT key_hash FROM api_keys"))
    assert stored == [hashlib.sha256(made.api_key.encode()).hexdigest()]

    listed = (await keys(system).ListKeys(keys_pb2.ListKeysRequest(), metadata=ADMIN)).keys
    assert [(k.key_id, k.name, k.status) for k in listed] == [(made.key_id, "ci", "active")]
    revoked = await keys(system).RevokeKey(keys_pb2.RevokeKeyRequest(key_id=made.key_id), metadata=ADMIN)
    assert revoked.key.status == "revoked" and revoked.key.HasField("revoked_at")
    await refused(system.checks.ListChecks, results_pb2.ListChecksRequest(), bearer(made.api_key),
                  grpc.StatusCode.UNAUTHENTICATED)
    await refused(keys(system).RevokeKey, keys_pb2.RevokeKeyRequest(key_id="nope"), ADMIN,
                  grpc.StatusCode.INVALID_ARGUMENT)
    await refused(keys(system).RevokeKey, keys_pb2.RevokeKeyRequest(key_id="00000000-0000-4000-8000-000000000000"),
                  ADMIN, grpc.StatusCode.NOT_FOUND)


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "token-without-scheme",
                                    "Bearer " + "x" * 600])
async def test_a_malformed_authorization_header_is_unauthenticated_not_anonymous(system, header):
    metadata = [("authorization", header)]
    await refused(system.create.CreateCheck, scheduler_pb2.CreateCheckRequest(target="127.0.0.1:1", checks=["tcp"]),
                  metadata, grpc.StatusCode.UNAUTHENTICATED)
    await refused(system.checks.ListChecks, results_pb2.ListChecksRequest(), metadata,
                  grpc.StatusCode.UNAUTHENTICATED)
    await refused(keys(system).ListKeys, keys_pb2.ListKeysRequest(), metadata, grpc.StatusCode.UNAUTHENTICATED)


async def test_anonymous_callers_list_their_own_last_24_hours(system, tmp_path, tcp_target):
    await system.start_agent(tmp_path, "lister")
    ids = [(await system.create.CreateCheck(scheduler_pb2.CreateCheckRequest(
        target=f"127.0.0.1:{tcp_target}", checks=["tcp"]))).check_id for _ in range(2)]
    assert {c.check_id for c in (await system.checks.ListChecks(results_pb2.ListChecksRequest())).checks} == set(ids)
    # One from more than a day ago, and one from another address: not this caller's list.
    old = datetime.now(UTC) - timedelta(hours=25)
    checks = sa.table("checks", sa.column("id", sa.Uuid()), sa.column("created_at", sa.DateTime(True)),
                      sa.column("client_ip", sa.String()))
    # In a thread: the services share this event loop and may hold the rows' locks for a moment.
    await asyncio.to_thread(execute, system.database_url,
                            checks.update().where(checks.c.id == uuid.UUID(ids[0])).values(created_at=old),
                            checks.update().where(checks.c.id == uuid.UUID(ids[1])).values(client_ip="192.0.2.7"))
    assert (await system.checks.ListChecks(results_pb2.ListChecksRequest())).checks == []
    everything = await system.checks.ListChecks(results_pb2.ListChecksRequest(), metadata=ADMIN)
    assert {c.check_id for c in everything.checks} == set(ids)
    # Reading a check needs no credentials: links stay public.
    got = await system.checks.GetCheck(results_pb2.GetCheckRequest(check_id=ids[1]))
    assert got.check.created_by_key_id == ""
