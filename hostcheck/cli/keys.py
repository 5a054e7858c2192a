"""`hostcheck keys create|list|revoke`: API keys, managed with the admin token over gRPC."""

from __future__ import annotations

import json

import grpc
from google.protobuf import json_format

from hostcheck.v1 import keys_pb2, keys_pb2_grpc


class KeysError(RuntimeError):
    pass


def _metadata(admin_token: str) -> list[tuple[str, str]]:
    if not admin_token:
        raise KeysError("no admin token: pass --admin-token or set HOSTCHECK_ADMIN_TOKEN")
    return [("authorization", f"Bearer {admin_token}")]


async def _call(server: str, admin_token: str, method: str, request):
    metadata = _metadata(admin_token)
    async with grpc.aio.insecure_channel(server) as channel:
        try:
            return await getattr(keys_pb2_grpc.KeysServiceStub(channel), method)(request, metadata=metadata,
                                                                                 timeout=30)
        except grpc.aio.AioRpcError as exc:
            raise KeysError(f"{exc.code().name}: {exc.details()}") from None


def _json(message) -> str:
    return json.dumps(json_format.MessageToDict(message, preserving_proto_field_name=True), indent=2)


async def create(*, server: str, admin_token: str, name: str, quota_per_hour: int, as_json: bool) -> str:
    reply = await _call(server, admin_token, "CreateKey",
                        keys_pb2.CreateKeyRequest(name=name, quota_per_hour=quota_per_hour))
    if as_json:
        return _json(reply)
    return (f"key_id:  {reply.key_id}\n"
            f"api_key: {reply.api_key}\n"
            f"quota:   {reply.key.quota_per_hour} checks/hour\n"
            "The key is shown only now: keep it. Use it as `authorization: Bearer <api_key>`.")


async def list_keys(*, server: str, admin_token: str, as_json: bool) -> str:
    reply = await _call(server, admin_token, "ListKeys", keys_pb2.ListKeysRequest())
    if as_json:
        return _json(reply)
    rows = [("KEY ID", "NAME", "QUOTA/H", "STATUS", "CREATED")]
    rows += [(k.key_id, k.name, str(k.quota_per_hour), k.status,
              k.created_at.ToDatetime().strftime("%Y-%m-%d %H:%M")) for k in reply.keys]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows)


async def revoke(*, server: str, admin_token: str, key_id: str, as_json: bool) -> str:
    reply = await _call(server, admin_token, "RevokeKey", keys_pb2.RevokeKeyRequest(key_id=key_id))
    return _json(reply) if as_json else f"revoked {reply.key.key_id} ({reply.key.name})"
