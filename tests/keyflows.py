"""The API-key flows of issue 13, run through Envoy against any running system (production shape or
`hostcheck dev`): keys made by the admin, ownership of checks, quotas with Retry-After, and
revocation refused by every scheduler replica within a second."""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc
import httpx
from google.rpc import error_details_pb2, status_pb2

from hostcheck.v1 import scheduler_pb2, scheduler_pb2_grpc
from tests.helpers import assert_eventually


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@dataclass
class KeyFlows:
    rest: httpx.AsyncClient
    admin_token: str
    # host:port of a TCP listener the agents may check.
    target: str
    # Every scheduler replica's gRPC address (CreateCheck is sent to each directly).
    grpc_addrs: list[str]

    @property
    def admin(self) -> dict[str, str]:
        return bearer(self.admin_token)

    async def create_key(self, name: str, quota: int = 0) -> tuple[str, str]:
        reply = await self.rest.post("/api/keys", json={"name": name, "quota_per_hour": quota}, headers=self.admin)
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["api_key"].startswith("hck_") and body["key"]["status"] == "active"
        return body["key_id"], body["api_key"]

    async def create_check(self, headers: dict[str, str], **extra) -> httpx.Response:
        return await self.rest.post("/api/checks", json={"target": self.target, "checks": ["tcp"], **extra},
                                    headers=headers)

    async def listed(self, headers: dict[str, str]) -> set[str]:
        reply = await self.rest.get("/api/checks", params={"page_size": 200}, headers=headers)
        assert reply.status_code == 200, reply.text
        return {c["check_id"] for c in reply.json()["checks"]}

    async def run_all(self) -> None:
        await self.a_page_may_send_a_key()
        await self.only_the_admin_manages_keys()
        key_a, key_b = await self.ownership()
        await self.quota(key_a)
        await self.revocation(key_b)

    async def a_page_may_send_a_key(self) -> None:
        """CORS: a browser page (gRPC-Web, or REST) may send the authorization header and read Retry-After."""
        for path, method in (("/hostcheck.v1.KeysService/ListKeys", "POST"), ("/api/checks", "POST")):
            reply = await self.rest.options(path, headers={
                "origin": "http://ui.example", "access-control-request-method": method,
                "access-control-request-headers": "authorization,content-type"})
            assert reply.status_code == 200, (path, reply.text)
            allowed = {h.strip() for h in reply.headers["access-control-allow-headers"].split(",")}
            assert "authorization" in allowed, reply.headers
        created = await self.rest.post("/api/checks", json={"checks": []}, headers={"origin": "http://ui.example"})
        exposed = {h.strip() for h in created.headers["access-control-expose-headers"].split(",")}
        assert "retry-after" in exposed

    async def only_the_admin_manages_keys(self) -> None:
        assert (await self.rest.post("/api/keys", json={"name": "x"})).status_code == 401
        assert (await self.rest.get("/api/keys", headers=bearer("not-a-key"))).status_code == 401
        _, key = await self.create_key("lister")
        assert (await self.rest.get("/api/keys", headers=bearer(key))).status_code == 403
        bad = await self.rest.post("/api/keys", json={"name": ""}, headers=self.admin)
        assert bad.status_code == 400 and "name" in bad.json()["message"], bad.text
        listed = (await self.rest.get("/api/keys", headers=self.admin)).json()["keys"]
        assert any(k["name"] == "lister" and k["quota_per_hour"] == 1000 for k in listed)
        assert all("api_key" not in k for k in listed), "keys are shown once, at creation"

    async def ownership(self) -> tuple[tuple[str, str], tuple[str, str]]:
        key_a = await self.create_key("A", quota=3)
        key_b = await self.create_key("B")
        a, b = bearer(key_a[1]), bearer(key_b[1])
        created = await self.create_check(a)
        assert created.status_code == 200, created.text
        check_id = created.json()["check_id"]
        assert created.json()["check"]["created_by_key_id"] == key_a[0]
        anonymous_check = (await self.create_check({})).json()["check_id"]

        # Lists: a key its own checks, anonymous its IP's anonymous checks, the admin all.
        assert check_id in await self.listed(a) and anonymous_check not in await self.listed(a)
        assert check_id not in await self.listed(b)
        assert anonymous_check in await self.listed({}) and check_id not in await self.listed({})
        assert {check_id, anonymous_check} <= await self.listed(self.admin)
        # Anyone with the id may still read it: links stay public.
        assert (await self.rest.get(f"/api/checks/{check_id}", headers=b)).status_code == 200

        path = f"/api/checks/{check_id}"
        assert (await self.rest.delete(path, headers=b)).status_code == 403
        assert (await self.rest.delete(path)).status_code == 401
        assert (await self.rest.delete(path, headers=bearer("hck_forged"))).status_code == 401
        assert (await self.rest.delete(path, headers=a)).status_code == 200
        assert (await self.rest.get(path)).status_code == 404
        # An anonymous check: the admin token only.
        path = f"/api/checks/{anonymous_check}"
        assert (await self.rest.delete(path)).status_code == 401
        assert (await self.rest.delete(path, headers=a)).status_code == 403
        assert (await self.rest.delete(path, headers=self.admin)).status_code == 200
        return key_a, key_b

    async def quota(self, key_a: tuple[str, str]) -> None:
        a = bearer(key_a[1])
        # Refused requests use no quota: bad input, and no agent that matches.
        bad = await self.create_check(a, checks=["tcp", "nope"])
        assert bad.status_code == 400, bad.text
        nobody = await self.create_check(a, agents={"agent_ids": ["00000000-0000-4000-8000-000000000000"]})
        assert nobody.status_code == 400 and nobody.json()["code"] == 9, nobody.text  # FAILED_PRECONDITION
        for _ in range(2):  # the first of A's 3 was in ownership()
            ok = await self.create_check(a)
            assert ok.status_code == 200, ok.text
        refused = await self.create_check(a)
        assert refused.status_code == 429, refused.text
        retry_after = int(refused.headers["retry-after"])
        assert 3500 <= retry_after <= 3600, refused.headers
        assert refused.json()["code"] == 8 and "API key" in refused.json()["message"]
        # The count is shared by the replicas; over gRPC the delay comes as RetryInfo.
        for addr in self.grpc_addrs:
            async with grpc.aio.insecure_channel(addr) as channel:
                try:
                    await scheduler_pb2_grpc.SchedulerServiceStub(channel).CreateCheck(
                        scheduler_pb2.CreateCheckRequest(target=self.target, checks=["tcp"]),
                        metadata=[("authorization", f"Bearer {key_a[1]}")], timeout=10)
                    raise AssertionError(f"{addr} accepted a 4th check")
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (addr, err)
                    status = status_pb2.Status.FromString(
                        dict(err.trailing_metadata())["grpc-status-details-bin"])
                    info = error_details_pb2.RetryInfo()
                    assert status.details[0].Unpack(info)
                    assert 3500 <= info.retry_delay.seconds <= 3600

    async def revocation(self, key_b: tuple[str, str]) -> None:
        key_id, key = key_b
        b = bearer(key)
        assert (await self.create_check(b)).status_code == 200
        revoked = await self.rest.delete(f"/api/keys/{key_id}", headers=self.admin)
        assert revoked.status_code == 200 and revoked.json()["key"]["status"] == "revoked", revoked.text
        start = time.monotonic()
        for addr in self.grpc_addrs:
            async with grpc.aio.insecure_channel(addr) as channel:
                stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)

                async def refused(stub=stub) -> bool:
                    try:
                        await stub.CreateCheck(scheduler_pb2.CreateCheckRequest(target=self.target, checks=["tcp"]),
                                               metadata=[("authorization", f"Bearer {key}")], timeout=5)
                    except grpc.aio.AioRpcError as err:
                        return err.code() == grpc.StatusCode.UNAUTHENTICATED
                    return False
                # Every replica within 1 s of the revocation (one shared budget).
                await assert_eventually(refused, timeout=max(0.0, start + 1.0 - time.monotonic()),
                                        message=f"revoked key refused by {addr} within 1 s")
        assert (await self.create_check(b)).status_code == 401
        assert (await self.rest.get("/api/checks", headers=b)).status_code == 401
