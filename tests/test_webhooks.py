"""Webhook delivery (services/results/webhooks.py) against real HTTP receivers on 127.0.0.1: the signed
payload, retries with the same event id and bytes, a receiver that comes back, two deliverers at once,
the target guard at delivery time, no redirects, and the backoff."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from hostcheck.core.targets import TargetGuard
from hostcheck.services.results.monitormodels import MonitorEventRow, MonitorRow
from hostcheck.services.results.webhooks import (
    USER_AGENT,
    Poster,
    WebhookDeliverer,
    backoff_s,
    body_of,
    sign,
)
from hostcheck.services.storage import db
from tests.helpers import ROOT, assert_eventually, free_port
from tests.monitordb import (  # noqa: F401 - fixtures
    migrated_postgres_fixture,
    migrated_sqlite_fixture,
    postgres_copy,
    sessions_fixture,
)
from tests.probers.tlslab import make_lab, server_context

LOOPBACK = TargetGuard.from_cidrs(["127.0.0.0/8", "::1/128"])
SECRET = "ab" * 32


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP/1.1 server on 127.0.0.1 that records each request and answers the next scripted status
    (then `status`), with `location` on redirects."""

    status: int = 200
    script: list[int] = field(default_factory=list)
    location: str = ""
    requests: list[Request] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0

    async def start(self, port: int = 0, *, tls: ssl.SSLContext | None = None) -> Receiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", port, ssl=tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def url(self, host: str = "127.0.0.1", path: str = "/hook?team=ops") -> str:
        return f"http://{host}:{self.port}{path}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, _ = (await reader.readline()).decode().split(" ", 2)
            headers = {}
            while (line := (await reader.readline()).decode().rstrip("\r\n")):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(Request(method, path, headers, body))
            status = self.script.pop(0) if self.script else self.status
            extra = f"Location: {self.location}\r\n" if 300 <= status < 400 else ""
            writer.write(f"HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.stop()


async def pending_event(sessions, url: str, *, state: str = "down",
                        monitor_id: uuid.UUID | None = None, run: int = 7) -> tuple[uuid.UUID, dict]:
    """A monitor with this webhook (or `monitor_id`'s) and a pending notification, as the evaluator
    stores them."""
    new_monitor = monitor_id is None
    monitor_id, event_id = monitor_id or uuid.uuid4(), uuid.uuid4()
    payload = {"event_id": str(event_id), "monitor_id": str(monitor_id), "monitor_name": "shop ☕", "state": state,
               "monitor_state": state, "previous_state": "up", "at": "2026-11-29T12:00:00.000Z", "run": run,
               "failing_agents": [{"agent_id": "a", "agent_name": "fra-1", "error_code": "connect_refused",
                                   "error": "refused"}], "agents_total": 3, "agents_failing": 1}
    now = datetime.now(UTC)
    async with sessions() as session, session.begin():
        if new_monitor:
            session.add(MonitorRow(id=monitor_id, name="shop", target="shop.example", check_types=["tcp"], spec={},
                                   interval_s=10, webhook_url=url, webhook_secret=SECRET, state=state,
                                   next_run_at=now + timedelta(days=1)))
            await session.flush()
        session.add(MonitorEventRow(id=event_id, monitor_id=monitor_id, from_state="up", to_state=state, at=now,
                                    run_seq=run, notification="pending", payload=payload, next_attempt_at=now))
    return event_id, payload


async def event(sessions, event_id: uuid.UUID) -> MonitorEventRow:
    async with sessions() as session:
        return (await session.scalars(select(MonitorEventRow).where(MonitorEventRow.id == event_id))).one()


async def make_due(sessions, event_id: uuid.UUID) -> None:
    """Lets the next attempt's time come now (what the backoff would wait for)."""
    async with sessions() as session, session.begin():
        await session.execute(update(MonitorEventRow).where(MonitorEventRow.id == event_id)
                              .values(next_attempt_at=datetime.now(UTC)))


def documented_verify():
    """The receiver's `verify(secret, headers, body)` as docs/monitors.md gives it (run as written)."""
    text = (ROOT / "docs" / "monitors.md").read_text()
    block = next(b.split("\n", 1)[1] for b in text.split("```")[1::2] if b.startswith("python\n") and "def verify" in b)
    scope: dict = {}
    exec(compile(block, "docs/monitors.md", "exec"), scope)  # noqa: S102 - our own documentation
    return scope["verify"]


def verify(request: Request, secret: str = SECRET) -> dict:
    """What a receiver does: the documented check of the signature and the timestamp, then parse."""
    headers = {"X-Hostcheck-Timestamp": request.headers["x-hostcheck-timestamp"],
               "X-Hostcheck-Signature": request.headers["x-hostcheck-signature"]}
    payload = documented_verify()(secret, headers, request.body)
    with pytest.raises(ValueError, match="bad signature"):
        documented_verify()("other" + secret, headers, request.body)
    return payload


def test_signature_is_hmac_sha256_of_timestamp_dot_body():
    assert sign("secret", 1700000000, b'{"a":1}') == (
        "sha256=" + hmac.new(b"secret", b'1700000000.{"a":1}', hashlib.sha256).hexdigest())
    assert sign("secret", "1700000000", b"x") != sign("secret", "1700000001", b"x")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_the_documented_openssl_command_verifies_a_signature(tmp_path):
    body, timestamp = b'{"event_id":"e1","state":"down"}', "1700000000"
    # docs/monitors.md's command, as written there.
    command = """printf '%s.' "$TIMESTAMP" | cat - body.json | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= /sha256=/'"""
    (tmp_path / "body.json").write_bytes(body)
    assert command in (ROOT / "docs" / "monitors.md").read_text()
    out = subprocess.run(["bash", "-c", command], cwd=tmp_path, env={"TIMESTAMP": timestamp, "SECRET": SECRET,
                                                                       "PATH": os.environ["PATH"]},
                         capture_output=True, check=True).stdout.decode()
    assert out.strip() == sign(SECRET, timestamp, body)


def test_backoff_grows_to_thirty_seconds_with_jitter():
    assert [backoff_s(n, rand=lambda: 0.5) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert backoff_s(3, rand=lambda: 0.0) == pytest.approx(3.2)
    assert backoff_s(3, rand=lambda: 1.0) == pytest.approx(4.8)


async def test_payload_and_signature(sessions, receiver):
    event_id, payload = await pending_event(sessions, receiver.url())
    deliverer = WebhookDeliverer(sessions, Poster(LOOPBACK))
    assert await deliverer.deliver_once() == 1
    [got] = receiver.requests
    assert (got.method, got.path) == ("POST", "/hook?team=ops")
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == USER_AGENT
    assert got.headers["x-hostcheck-event-id"] == str(event_id)
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert got.body == body_of(payload)
    assert b" " not in got.body.replace("shop ☕".encode(), b"")  # compact JSON, UTF-8
    assert verify(got) == payload
    stored = await event(sessions, event_id)
    assert (stored.notification, stored.delivery_attempts, stored.last_delivery_error) == ("delivered", 1, "")
    assert stored.delivered_at is not None and stored.next_attempt_at is None
    assert await deliverer.deliver_once() == 0 and len(receiver.requests) == 1


async def test_a_failing_receiver_gets_the_same_event_again(sessions, receiver):
    """500, then 200: two requests with the same event id and body; the loop retries after ~1 s."""
    receiver.script = [500]
    event_id, _ = await pending_event(sessions, receiver.url())
    deliverer = WebhookDeliverer(sessions, Poster(LOOPBACK), poll_s=0.1)
    loop = asyncio.create_task(deliverer.run())
    try:
        await assert_eventually(lambda: len(receiver.requests) == 2, timeout=10, message="retried")
        first, second = receiver.requests
        assert first.body == second.body
        assert first.headers["x-hostcheck-event-id"] == second.headers["x-hostcheck-event-id"] == str(event_id)
        verify(first), verify(second)

        async def delivered():
            return (await event(sessions, event_id)).notification == "delivered"
        await assert_eventually(delivered, timeout=5, message="stored as delivered")
        stored = await event(sessions, event_id)
        assert (stored.delivery_attempts, stored.last_delivery_error) == (2, "")
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    assert len(receiver.requests) == 2


async def test_a_monitors_notifications_go_in_order(sessions, receiver):
    """The recovery waits while the outage it ends is undelivered."""
    receiver.script = [500]
    down_id, _ = await pending_event(sessions, receiver.url(), state="down", run=7)
    monitor_id = (await event(sessions, down_id)).monitor_id
    up_id, _ = await pending_event(sessions, receiver.url(), state="up", run=9, monitor_id=monitor_id)
    deliverer = WebhookDeliverer(sessions, Poster(LOOPBACK))
    assert await deliverer.deliver_once() == 0
    assert (await event(sessions, up_id)).delivery_attempts == 0
    await make_due(sessions, down_id)
    assert await deliverer.deliver_once() == 1  # the outage
    assert await deliverer.deliver_once() == 1  # then its recovery
    assert [json.loads(r.body)["state"] for r in receiver.requests] == ["down", "down", "up"]


async def test_a_receiver_that_is_down_gets_it_once_it_listens(sessions):
    port = free_port()
    event_id, payload = await pending_event(sessions, f"http://127.0.0.1:{port}/hook")
    deliverer = WebhookDeliverer(sessions, Poster(LOOPBACK), poll_s=0.1)
    assert await deliverer.deliver_once() == 0
    stored = await event(sessions, event_id)
    assert stored.notification == "pending" and "cannot connect" in stored.last_delivery_error
    receiver = await Receiver().start(port)
    loop = asyncio.create_task(deliverer.run())
    try:
        await assert_eventually(lambda: receiver.requests, timeout=10, message="delivered once listening")

        async def delivered():
            return (await event(sessions, event_id)).notification == "delivered"
        await assert_eventually(delivered, timeout=5, message="stored as delivered")
        assert verify(receiver.requests[0]) == payload
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await receiver.stop()
    assert len(receiver.requests) == 1


async def test_two_deliverers_deliver_each_event_once(receiver, migrated_postgres):
    """Two replicas (own engines) attempt the same due events at once: each is POSTed once."""
    with postgres_copy(migrated_postgres) as url:
        engines = [db.create_engine(url) for _ in range(2)]
        try:
            sessions = [db.sessionmaker(e) for e in engines]
            ids = [(await pending_event(sessions[0], receiver.url()))[0] for _ in range(12)]
            deliverers = [WebhookDeliverer(s, Poster(LOOPBACK)) for s in sessions]
            counts = await asyncio.gather(*(d.deliver_once() for d in deliverers for _ in range(2)))
            assert sum(counts) == 12
            sent = [r.headers["x-hostcheck-event-id"] for r in receiver.requests]
            assert sorted(sent) == sorted(str(i) for i in ids)
            for event_id in ids:
                stored = await event(sessions[0], event_id)
                assert (stored.notification, stored.delivery_attempts) == ("delivered", 1)
        finally:
            for engine in engines:
                await engine.dispose()


async def test_the_guard_refuses_a_name_resolving_to_a_refused_address(sessions, receiver):
    """`localhost` resolves to 127.0.0.1: without loopback allowed, nothing is sent (DNS rebinding)."""
    event_id, _ = await pending_event(sessions, receiver.url(host="localhost"))
    assert await WebhookDeliverer(sessions, Poster(TargetGuard())).deliver_once() == 0
    stored = await event(sessions, event_id)
    assert stored.notification == "pending" and stored.delivery_attempts == 1
    assert "localhost resolves to a refused address" in stored.last_delivery_error
    assert "127.0.0.1" in stored.last_delivery_error
    assert receiver.requests == []
    # The same name with loopback allowed is delivered (to the address checked).
    await make_due(sessions, event_id)
    assert await WebhookDeliverer(sessions, Poster(LOOPBACK)).deliver_once() == 1
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"


async def test_redirects_are_not_followed(sessions, receiver):
    other = await Receiver().start()
    try:
        receiver.status, receiver.location = 302, other.url()
        event_id, _ = await pending_event(sessions, receiver.url())
        assert await WebhookDeliverer(sessions, Poster(LOOPBACK)).deliver_once() == 0
        stored = await event(sessions, event_id)
        assert (stored.notification, stored.last_delivery_error) == ("pending", "HTTP 302 (redirects are not followed)")
        assert len(receiver.requests) == 1 and other.requests == []
    finally:
        await other.stop()


async def test_backoff_between_failed_attempts_grows(sessions, receiver):
    receiver.status = 503
    event_id, _ = await pending_event(sessions, receiver.url())
    deliverer = WebhookDeliverer(sessions, Poster(LOOPBACK))
    waits = []
    for _ in range(5):
        before = datetime.now(UTC)
        assert await deliverer.deliver_once() == 0
        stored = await event(sessions, event_id)
        after = stored.next_attempt_at.replace(tzinfo=UTC) if stored.next_attempt_at.tzinfo is None \
            else stored.next_attempt_at
        waits.append((after - before).total_seconds())
        assert stored.last_delivery_error == "HTTP 503"
        await make_due(sessions, event_id)
    assert (await event(sessions, event_id)).delivery_attempts == 5
    for wait, base in zip(waits, (1, 2, 4, 8, 16), strict=True):
        assert base * 0.8 - 0.01 <= wait <= base * 1.2 + 1, waits


async def test_a_slow_receiver_times_out(sessions):
    """A receiver that accepts and never answers: the attempt ends at the timeout and is retried."""
    hold = asyncio.Event()

    async def silent(reader, writer):
        await hold.wait()
        writer.close()
    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        event_id, _ = await pending_event(sessions, f"http://127.0.0.1:{port}/")
        started = time.monotonic()
        assert await WebhookDeliverer(sessions, Poster(LOOPBACK, timeout_s=0.3)).deliver_once() == 0
        assert time.monotonic() - started < 5
        stored = await event(sessions, event_id)
        assert (stored.notification, stored.last_delivery_error) == ("pending", "no answer within 0.3 s")
    finally:
        hold.set()
        server.close()
        await server.wait_closed()


async def test_a_removed_webhook_ends_its_pending_notifications(sessions, receiver):
    event_id, _ = await pending_event(sessions, receiver.url())
    async with sessions() as session, session.begin():
        await session.execute(update(MonitorRow).values(webhook_url=""))
    assert await WebhookDeliverer(sessions, Poster(LOOPBACK)).deliver_once() == 0
    stored = await event(sessions, event_id)
    assert stored.notification == "none" and "no webhook_url" in stored.last_delivery_error
    assert receiver.requests == []


async def test_https_goes_to_the_checked_address_and_verifies_the_urls_host_name(sessions, tmp_path):
    """The connection is pinned to the address the guard checked, yet TLS is verified for the URL's
    host name (SNI + certificate), not for the address: a name the certificate doesn't hold fails."""
    lab = make_lab(tmp_path)
    receiver = await Receiver().start(tls=server_context(lab.valid, alpn=("http/1.1",)))
    resolved: list[str] = []

    async def resolve(host: str, port: int):
        resolved.append(host)
        return [ipaddress.ip_address("127.0.0.1")]

    poster = Poster(LOOPBACK, resolve=resolve, ssl_context=ssl.create_default_context(cafile=str(lab.ca)))
    try:
        event_id, payload = await pending_event(sessions, f"https://www.t.test:{receiver.port}/hook")
        assert await WebhookDeliverer(sessions, poster).deliver_once() == 1
        assert (await event(sessions, event_id)).notification == "delivered"
        assert receiver.requests[0].headers["host"] == f"www.t.test:{receiver.port}"
        assert verify(receiver.requests[0])["event_id"] == payload["event_id"]

        wrong_id, _ = await pending_event(sessions, f"https://other.t.test:{receiver.port}/hook")
        assert await WebhookDeliverer(sessions, poster).deliver_once() == 0
        stored = await event(sessions, wrong_id)
        assert stored.notification == "pending"
        assert "CERTIFICATE_VERIFY_FAILED" in stored.last_delivery_error, stored.last_delivery_error
        assert len(receiver.requests) == 1 and resolved == ["www.t.test", "other.t.test"]
    finally:
        await receiver.stop()
