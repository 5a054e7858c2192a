"""Webhook notifications of monitors: signed POSTs, retried with backoff until delivered.

The outbox is monitor_events itself: the evaluator stores a transition that notifies with
notification "pending", its payload and next_attempt_at in the transaction that changes the state
(services/results/monitoreval.py), so a notification is never lost nor made twice. Every results
replica runs a WebhookDeliverer. An attempt is leased by compare-and-set on delivery_attempts
(UPDATE ... WHERE delivery_attempts = <read>: one replica wins), which also pushes next_attempt_at
LEASE_S ahead, so an attempt cut short by a crash is retried after the lease. Delivery is at least
once: a receiver that got a request but whose answer was lost gets it again, with the same
event_id and the same body bytes; receivers de-duplicate by event_id (docs/monitors.md). A
monitor's notifications go in order: one waits while an earlier one of its monitor is undelivered.

The receiver's host is resolved here, each of its addresses must pass the target guard, and the
request goes to a checked address (a name that resolves to a private address later, DNS
rebinding, is refused at that attempt). Redirects are not followed: a 3xx is a failed attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import aliased

from hostcheck.core.targets import IPAddress, TargetGuard
from hostcheck.services.results.monitormodels import MonitorEventRow, MonitorRow

log = logging.getLogger(__name__)

USER_AGENT = "hostcheck-webhook/1"
# One attempt: resolving, connecting, sending and reading the status line.
ATTEMPT_TIMEOUT_S = 10.0
# An attempt under way holds its event this long; past it another replica may try again.
LEASE_S = 30.0
# Seconds before the next attempt after the 1st, 2nd, ... failed one (then the last, for ever), +-20 %.
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
BACKOFF_JITTER = 0.2
# The loop looks for due events at least this often (and at once when woken).
POLL_S = 0.5
# Events attempted at once by one replica.
BATCH = 32
# A stored error is cut to this many characters.
ERROR_LEN = 500


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-Hostcheck-Signature of `body` sent at `timestamp` (unix seconds).

    "sha256=" + hex HMAC-SHA256 keyed by the monitor's webhook secret (the string as UTF-8) over
    "<timestamp>." followed by the body bytes. Receivers compute the same and compare in constant
    time (hmac.compare_digest), and refuse timestamps far from their clock (replays).
    """
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def body_of(payload: dict[str, Any]) -> bytes:
    """The payload as sent: compact JSON with sorted keys, so every attempt sends the same bytes
    whatever order the database keeps a JSON object's keys in."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def backoff_s(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after the `attempt`-th failed attempt (1-based): 1, 2, 4, 8, 16, 30, 30, ...
    each +-20 % at random, so receivers coming back are not hit by every replica at once."""
    base = BACKOFF_S[min(max(attempt, 1), len(BACKOFF_S)) - 1]
    return base * (1 + BACKOFF_JITTER * (2 * rand() - 1))


class DeliveryError(Exception):
    """An attempt failed; the message (stored as last_delivery_error) says why."""


Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]


async def resolve_host(host: str, port: int) -> list[IPAddress]:
    """Every address of `host` (an IP literal is itself), in the resolver's order."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DeliveryError(f"cannot resolve {host}: {exc.strerror or exc}") from exc
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if ip not in found:
            found.append(ip)
    if not found:
        raise DeliveryError(f"{host} has no address")
    return found


@dataclass(frozen=True)
class Attempt:
    """One POST of an event's body to a receiver."""

    url: str
    body: bytes
    headers: dict[str, str]


class Poster:
    """POSTs to a guarded address of the URL's host and returns the status code.

    httpx with the connection pinned: the request goes to the address checked here (the URL's host
    replaced by it), with the real Host header and, for https, SNI and certificate verification
    for the host's name (httpcore's `sni_hostname` extension). Redirects are not followed, proxies
    from the environment are not used, and every attempt has its own connection.
    """

    def __init__(self, guard: TargetGuard, *, resolve: Resolver = resolve_host,
                 timeout_s: float = ATTEMPT_TIMEOUT_S, ssl_context: ssl.SSLContext | None = None) -> None:
        self.guard = guard
        self.resolve = resolve
        self.timeout_s = timeout_s
        # The system's CAs unless given (tests trust their own CA).
        self._ssl = ssl_context

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:  # made once: a context costs milliseconds of CPU
            self._ssl = ssl.create_default_context()
        return self._ssl

    async def post(self, attempt: Attempt) -> int:
        try:
            return await asyncio.wait_for(self._post(attempt), self.timeout_s)
        except TimeoutError as exc:
            raise DeliveryError(f"no answer within {self.timeout_s:g} s") from exc

    async def _post(self, attempt: Attempt) -> int:
        parts = urlsplit(attempt.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DeliveryError(f"not an http(s) URL: {attempt.url[:200]}")
        host = parts.hostname
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise DeliveryError(f"bad port in the URL: {exc}") from exc
        addresses = await self.resolve(host, port)
        for ip in addresses:
            reason = self.guard.refusal(ip)
            if reason:
                raise DeliveryError(f"{host} resolves to a refused address: {reason}")
        https = parts.scheme == "https"
        headers = {"host": _host_header(host, parts.port), "connection": "close", **attempt.headers}
        errors = []
        async with httpx.AsyncClient(verify=self.ssl_context() if https else False, trust_env=False,
                                     follow_redirects=False, timeout=self.timeout_s) as client:
            for ip in addresses:
                literal = f"[{ip}]" if ip.version == 6 else str(ip)
                url = urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
                try:
                    response = await client.post(url, content=attempt.body, headers=headers,
                                                 extensions={"sni_hostname": host} if https else {})
                except httpx.ConnectError as exc:
                    errors.append(f"{ip}: {exc}")
                    continue
                except httpx.HTTPError as exc:
                    raise DeliveryError(f"{type(exc).__name__}: {exc}"[:ERROR_LEN]) from exc
                return response.status_code
        raise DeliveryError(f"cannot connect to {host}:{port} ({'; '.join(errors)})")


def _host_header(host: str, port: int | None) -> str:
    name = f"[{host}]" if ":" in host else host
    return f"{name}:{port}" if port else name


class WebhookDeliverer:
    """Delivers pending notifications (any number of replicas at once; each event leased by one)."""

    def __init__(self, sessions: async_sessionmaker, poster: Poster, *, poll_s: float = POLL_S,
                 lease_s: float = LEASE_S, batch: int = BATCH) -> None:
        self.sessions = sessions
        self.poster = poster
        self.poll_s = poll_s
        self.lease = timedelta(seconds=lease_s)
        self.batch = batch
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due events now (this replica just made one)."""
        self._wake.set()

    async def deliver_once(self) -> int:
        """Attempts every due event this replica can lease; returns how many were delivered."""
        now = datetime.now(UTC)
        # In order per monitor: an event waits while an earlier one of its monitor is undelivered, so
        # a receiver never gets the recovery before the outage it ends.
        earlier = aliased(MonitorEventRow)
        async with self.sessions() as session:
            due = (await session.execute(
                select(MonitorEventRow.id, MonitorEventRow.delivery_attempts)
                .where(MonitorEventRow.notification == "pending", MonitorEventRow.next_attempt_at <= now,
                       ~exists().where(earlier.monitor_id == MonitorEventRow.monitor_id,
                                       earlier.notification == "pending",
                                       or_(earlier.at < MonitorEventRow.at,
                                           and_(earlier.at == MonitorEventRow.at,
                                                earlier.run_seq < MonitorEventRow.run_seq))))
                .order_by(MonitorEventRow.next_attempt_at).limit(self.batch))).all()
        leased = [lease for lease in await asyncio.gather(*(self._lease(e, n) for e, n in due)) if lease]
        delivered = await asyncio.gather(*(self._attempt(*lease) for lease in leased))
        return sum(delivered)

    async def run(self) -> None:
        failing = False
        while True:
            self._wake.clear()
            try:
                await self.deliver_once()
                if failing:
                    log.info("webhook delivery works again")
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - storage outage (or not migrated yet): next round
                # Once per outage, not twice a second.
                log.log(logging.DEBUG if failing else logging.WARNING, "webhook delivery round failed: %s", exc)
                failing = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)

    async def _lease(self, event_id: uuid.UUID, attempts: int) -> tuple[uuid.UUID, int] | None:
        """Takes the event for one attempt: compare-and-set on its attempt count (ours when it moved)."""
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(MonitorEventRow)
                .where(MonitorEventRow.id == event_id, MonitorEventRow.notification == "pending",
                       MonitorEventRow.delivery_attempts == attempts, MonitorEventRow.next_attempt_at <= now)
                .values(delivery_attempts=attempts + 1, next_attempt_at=now + self.lease)
                .execution_options(synchronize_session=False))
        return (event_id, attempts + 1) if cast(CursorResult, result).rowcount == 1 else None

    async def _attempt(self, event_id: uuid.UUID, attempt_no: int) -> bool:
        async with self.sessions() as session:
            found = (await session.execute(
                select(MonitorEventRow.payload, MonitorRow.webhook_url, MonitorRow.webhook_secret)
                .join(MonitorRow, MonitorRow.id == MonitorEventRow.monitor_id)
                .where(MonitorEventRow.id == event_id))).first()
        if found is None:
            return False  # its monitor was deleted meanwhile
        payload, url, secret = found
        if not url:
            await self._finish(event_id, attempt_no, notification="none",
                               error="not sent: the monitor has no webhook_url any more")
            return False
        body = body_of(payload or {})
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "X-Hostcheck-Event-Id": str(event_id), "X-Hostcheck-Timestamp": timestamp,
                   "X-Hostcheck-Signature": sign(secret, timestamp, body)}
        try:
            status = await self.poster.post(Attempt(url=url, body=body, headers=headers))
            if not 200 <= status < 300:
                raise DeliveryError(f"HTTP {status}" + (" (redirects are not followed)"
                                                        if 300 <= status < 400 else ""))
        except (DeliveryError, OSError, ssl.SSLError, UnicodeError, ValueError) as exc:
            error = str(exc) if isinstance(exc, DeliveryError) else f"{type(exc).__name__}: {exc}"
            wait = backoff_s(attempt_no)
            log.info("webhook of event %s: attempt %d failed (%s); next in %.1f s", event_id, attempt_no, error, wait)
            await self._finish(event_id, attempt_no, error=error, next_in_s=wait)
            return False
        await self._finish(event_id, attempt_no, notification="delivered")
        return True

    async def _finish(self, event_id: uuid.UUID, attempt_no: int, *, notification: str = "pending",
                      error: str = "", next_in_s: float | None = None) -> None:
        """Stores an attempt's outcome, if the event is still ours (its lease not taken over)."""
        now = datetime.now(UTC)
        values: dict[str, Any] = {"notification": notification, "last_delivery_error": error[:ERROR_LEN]}
        if notification == "delivered":
            values.update(delivered_at=now, next_attempt_at=None)
        elif next_in_s is not None:
            values["next_attempt_at"] = now + timedelta(seconds=next_in_s)
        else:
            values["next_attempt_at"] = None
        async with self.sessions() as session, session.begin():
            await session.execute(update(MonitorEventRow).where(
                MonitorEventRow.id == event_id, MonitorEventRow.delivery_attempts == attempt_no,
                MonitorEventRow.notification == "pending").values(**values)
                .execution_options(synchronize_session=False))
