"""GetHealth (GET /health) when a dependency does not answer: reported in the body, never an error."""

from __future__ import annotations

import asyncio

from hostcheck.services.registry.service import RegistryServicer
from hostcheck.services.storage.livestate import MemoryLiveState
from hostcheck.v1 import registry_pb2


class Store:
    def __init__(self, error: Exception | None = None, delay: float = 0.0) -> None:
        self.error, self.delay = error, delay

    async def check_health(self) -> None:
        await asyncio.sleep(self.delay)
        if self.error:
            raise self.error


class DownLiveState(MemoryLiveState):
    async def check_health(self) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")


async def no_credentials(credential: str):
    raise AssertionError("GetHealth needs no credentials")


async def health(store, live) -> registry_pb2.GetHealthResponse:
    return await RegistryServicer(store, live, results=None, registration_token="", verify=no_credentials).GetHealth(
        registry_pb2.GetHealthRequest(), None)


async def test_all_ok():
    reply = await health(Store(), MemoryLiveState())
    assert (reply.status, reply.database, reply.live_state, reply.active_agents) == ("ok", "ok", "ok", 0)


async def test_the_in_process_live_state_is_not_called_redis():
    reply = await health(Store(), MemoryLiveState())
    assert (reply.live_state_kind, reply.redis) == ("memory", "not used (live state in memory)")


async def test_live_state_down_is_degraded():
    reply = await health(Store(), DownLiveState())
    assert reply.status == "degraded" and reply.database == "ok"
    assert reply.live_state == "ConnectionError: Error 111 connecting to 127.0.0.1:1. Connection refused."


async def test_redis_down_is_reported_under_the_seeds_name_too():
    class DownRedis(DownLiveState):
        kind = "redis"
    reply = await health(Store(), DownRedis())
    assert reply.live_state_kind == "redis"
    assert reply.redis == reply.live_state == "ConnectionError: Error 111 connecting to 127.0.0.1:1. Connection refused."


async def test_database_down_is_degraded():
    reply = await health(Store(error=OSError("could not connect")), MemoryLiveState())
    assert (reply.status, reply.database, reply.live_state) == ("degraded", "OSError: could not connect", "ok")


async def test_a_hanging_database_is_reported_not_waited_for(monkeypatch):
    monkeypatch.setattr("hostcheck.services.registry.service.HEALTH_TIMEOUT_S", 0.05)
    reply = await health(Store(delay=5), MemoryLiveState())
    assert (reply.status, reply.database) == ("degraded", "TimeoutError")
