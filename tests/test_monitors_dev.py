"""Monitors on the embedded default (issue 16, "Done when"): `hostcheck dev` with its local agent, a TCP
target on loopback the test stops and starts, a webhook receiver on loopback. A monitor every 2 s with
quorum 1, made over REST with an API key: while the target is up nobody is notified; stopping it sends
exactly one signed `down` webhook within 3 intervals, starting it again exactly one `up`, and nothing
more over the next 2 intervals. About 15 s."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest

from tests.helpers import Proc, assert_eventually, free_port, hostcheck_cmd
from tests.keyflows import bearer
from tests.monitorlab import Received, WebhookReceiver

pytestmark = [pytest.mark.timeout(180)]

ADMIN_TOKEN = "dev-monitors-admin-token"
INTERVAL_S = 2
AGENT = "Frankfurt (simulated)"


class TcpTarget:
    """A TCP listener on 127.0.0.1 that accepts and closes; stopped, its port refuses; started again, the
    same port."""

    def __init__(self) -> None:
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> TcpTarget:
        async def handle(reader, writer) -> None:
            writer.close()
        self.server = await asyncio.start_server(handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None


@pytest.fixture
async def dev(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOSTCHECK_")}
    env.update({"HOSTCHECK_ADMIN_TOKEN": ADMIN_TOKEN, "HOSTCHECK_MONITOR_MIN_INTERVAL_S": "1"})
    proc = Proc(hostcheck_cmd("dev", "--port", str(port), "--data-dir", str(tmp_path / "data"),
                              "--allow-target", "127.0.0.0/8"), env=env, log_path=tmp_path / "dev.log")
    try:
        def running() -> bool:
            if not proc.alive():
                raise AssertionError(f"hostcheck dev exited:\n{proc.output()[-3000:]}")
            return "Host Checker is running" in proc.output()
        await assert_eventually(running, timeout=60, interval=0.1, message="dev system running")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as rest:
            yield rest, proc
    finally:
        assert proc.stop() == 0, proc.output()[-3000:]


def _check_hook(hook: Received, *, secret: str, monitor_id: str, state: str) -> dict:
    """A webhook as docs/monitors.md documents it; returns its payload."""
    assert hook.path == "/hook"
    assert hook.headers["content-type"].startswith("application/json")
    assert hook.headers["user-agent"] == "hostcheck-webhook/1"
    assert abs(int(hook.headers["x-hostcheck-timestamp"]) - time.time()) < 60
    assert hook.signed_with(secret), f"bad signature: {hook.headers}"
    payload = hook.payload
    assert hook.headers["x-hostcheck-event-id"] == payload["event_id"]
    assert payload["monitor_id"] == monitor_id and payload["state"] == state, payload
    assert payload["monitor_name"] == "dev target" and payload["check_types"] == ["tcp"]
    assert payload["quorum"] == 1 and payload["agents_total"] == 1
    return payload


async def test_dev_monitor_notifies_down_and_recovery_exactly_once(dev):
    rest, proc = dev
    receiver = await WebhookReceiver().start()
    target = await TcpTarget().start()
    try:
        made = await rest.post("/api/keys", json={"name": "monitors"}, headers=bearer(ADMIN_TOKEN))
        assert made.status_code == 200, made.text
        key = bearer(made.json()["api_key"])
        created = await rest.post("/api/monitors", headers=key, json={
            "name": "dev target", "target": f"127.0.0.1:{target.port}", "checks": ["tcp"],
            "interval_s": INTERVAL_S, "timeout_ms": 1000, "alert": {"quorum": 1, "webhook_url": receiver.url}})
        assert created.status_code == 200, created.text
        monitor = created.json()
        mid, secret = monitor["monitor_id"], monitor["webhook_secret"]
        assert monitor["created_by_key_id"] == made.json()["key_id"]

        async def read() -> dict:
            reply = await rest.get(f"/api/monitors/{mid}", headers=key)
            assert reply.status_code == 200, reply.text
            assert not reply.json().get("webhook_secret"), "the secret is shown once"
            return reply.json()

        async def until(predicate, timeout: float, what: str) -> dict:
            async def check():
                m = await read()
                return m if predicate(m) else None
            return await assert_eventually(check, timeout=timeout, interval=0.1, message=what)

        def seq(m: dict) -> int:
            return m.get("last_run", {}).get("seq", 0)

        # Up, and another run evaluated while up: no notification.
        first = await until(lambda m: m["state"] == "up", 20, "up")
        await until(lambda m: seq(m) > seq(first), 3 * INTERVAL_S + 5, "another run while up")
        assert receiver.received == [], "nothing is notified while the target is up"

        # Target stopped: one `down` within 3 intervals of the stop.
        await target.stop()
        stopped = time.monotonic()
        await assert_eventually(lambda: receiver.received, timeout=3 * INTERVAL_S + 5, interval=0.05,
                                message="the down webhook")
        down = receiver.received[0]
        assert down.at - stopped <= 3 * INTERVAL_S, f"down notified {down.at - stopped:.1f} s after the stop"
        print(f"down notified {down.at - stopped:.2f} s after the stop")
        payload = _check_hook(down, secret=secret, monitor_id=mid, state="down")
        assert payload["monitor_state"] == "down" and payload["previous_state"] == "up"
        assert payload["agents_failing"] == 1
        (failing,) = payload["failing_agents"]
        assert failing["agent_name"] == AGENT and failing["country"] == "DE" and failing["error"], failing

        # Target back on the same port: one `up` within 3 intervals.
        await target.start()
        started = time.monotonic()
        await assert_eventually(lambda: len(receiver.received) >= 2, timeout=3 * INTERVAL_S + 5, interval=0.05,
                                message="the up webhook")
        up = receiver.received[1]
        assert up.at - started <= 3 * INTERVAL_S, f"up notified {up.at - started:.1f} s after the restart"
        print(f"up notified {up.at - started:.2f} s after the restart")
        payload = _check_hook(up, secret=secret, monitor_id=mid, state="up")
        assert payload["monitor_state"] == "up" and payload["previous_state"] == "down"
        assert payload["failing_agents"] == [] and payload.get("agents_failing", 0) == 0

        # Two more intervals evaluated, still up: nothing more.
        recovered = await read()
        await until(lambda m: seq(m) >= seq(recovered) + 2, 2 * INTERVAL_S + 6, "two more runs")
        assert (await read())["state"] == "up"
        events = (await rest.get(f"/api/monitors/{mid}/events", headers=key)).json()["events"]
        assert [(e["from_state"], e["to_state"], e.get("notification")) for e in events] == [
            ("down", "up", "delivered"), ("up", "down", "delivered"), ("pending", "up", "none")], events
        assert [e["event_id"] for e in events[:2]] == [up.payload["event_id"], down.payload["event_id"]]
        assert len(receiver.received) == 2, [r.payload["state"] for r in receiver.received]
    finally:
        await target.stop()
        await receiver.stop()
