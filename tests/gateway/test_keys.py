"""API keys, ownership and quotas through Envoy on the production shape: each service its own
process on Postgres + Redis, two scheduler replicas, an agent process.

The same flows run against `hostcheck dev` in tests/test_dev_keys.py (shared steps in
tests/keyflows.py).
"""

from __future__ import annotations

import httpx

from hostcheck.gateway import envoy
from tests.conftest import REDIS_URL, fresh_postgres_db
from tests.gateway.conftest import start_gateway_for
from tests.helpers import assert_eventually
from tests.keyflows import KeyFlows
from tests.procs import ADMIN_TOKEN, ProcSystem


async def test_keys_ownership_quotas_and_revocation_on_two_replicas(tmp_path, live_prefix, tcp_target):
    with fresh_postgres_db() as url:
        system = ProcSystem(url, REDIS_URL, live_prefix, tmp_path)
        gw = None
        try:
            await system.start()
            await system.start_service("scheduler2")
            system.start_agent("keys-agent")
            gw = await start_gateway_for(envoy.Upstreams(scheduler=system.addr("scheduler"),
                                                         results=system.addr("results"),
                                                         registry=system.addr("registry")), tmp_path)
            async with httpx.AsyncClient(base_url=gw.url, timeout=10) as rest:
                async def agent_online():
                    return (await rest.get("/health")).json()["active_agents"] == 1
                await assert_eventually(agent_online, timeout=20, message="agent online")
                flows = KeyFlows(rest, admin_token=ADMIN_TOKEN, target=f"127.0.0.1:{tcp_target}",
                                 grpc_addrs=[system.addr("scheduler"), system.addr("scheduler2")])
                await flows.run_all()
        except BaseException:
            print(system.logs(), gw.proc.output() if gw else "")
            raise
        finally:
            if gw is not None:
                gw.proc.stop()
            system.stop()
