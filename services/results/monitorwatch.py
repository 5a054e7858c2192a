"""Live events of monitors (results -> WatchMonitor streams), on the live state's pub/sub.

One channel per monitor; each message is a serialised WatchMonitorResponse: `run` when a run
starts (its check is opened) and when it is evaluated, `state` on a transition (with the monitor
and the stored event), `deleted` when the monitor is deleted. Publishing never fails the write
that caused it: a watcher that missed an event catches up from storage (watch_monitor re-reads
the monitor every WATCH_RESYNC_S and sends a fresh snapshot when it changed unseen).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from hostcheck.core.errors import NotFound, ResourceExhausted
from hostcheck.services.results.monitorviews import monitor_view
from hostcheck.services.storage.livestate import LiveState
from hostcheck.v1 import monitors_pb2

log = logging.getLogger(__name__)

# A watcher re-reads its monitor this often, whether or not events came: an event lost (a Redis
# restart, a replica that died between its commit and its publish) shows within this long.
WATCH_RESYNC_S = 15.0
# A watcher sent nothing for this long gets a fresh snapshot anyway: Envoy resets a stream with no
# bytes for 300 s (stream_idle_timeout), and a paused monitor publishes nothing.
WATCH_KEEPALIVE_S = 240.0
# Events waiting for one watcher; past this the watcher is dropped (RESOURCE_EXHAUSTED) and what
# waited is freed. A monitor publishes about two events a run (started, evaluated) and one per
# state change: 64 is half a minute of a 1 s monitor that the client did not read.
WATCH_MAX_PENDING = 64


def monitor_channel(monitor_id: uuid.UUID | str) -> str:
    """Events of one monitor (results -> WatchMonitor)."""
    return f"monitor:{monitor_id}"


class MonitorEvents:
    def __init__(self, live: LiveState) -> None:
        self.live = live

    async def publish(self, monitor_id: uuid.UUID | str, event: monitors_pb2.WatchMonitorResponse) -> None:
        try:
            await self.live.publish(monitor_channel(monitor_id), event.SerializeToString())
        except Exception as exc:  # noqa: BLE001 - watchers catch up from storage
            log.warning("cannot publish event of monitor %s: %s", monitor_id, exc)

    async def run(self, monitor_id: uuid.UUID | str, run: monitors_pb2.MonitorRun) -> None:
        await self.publish(monitor_id, monitors_pb2.WatchMonitorResponse(event="run", run=run))

    async def state(self, monitor_id: uuid.UUID | str, monitor: monitors_pb2.Monitor,
                    change: monitors_pb2.MonitorEvent) -> None:
        await self.publish(monitor_id, monitors_pb2.WatchMonitorResponse(event="state", monitor=monitor,
                                                                         change=change))

    async def deleted(self, monitor_id: uuid.UUID | str) -> None:
        await self.publish(monitor_id, monitors_pb2.WatchMonitorResponse(event="deleted"))


def _digest(monitor: monitors_pb2.Monitor) -> tuple:
    """What a watcher must have seen of its monitor: its state, its last evaluated run and its
    settings (updated_at moves on every edit); not what moves on its own (next run, uptime)."""
    return (monitor.state, monitor.state_since.ToNanoseconds(), monitor.paused, monitor.failing_runs,
            monitor.last_run.seq, monitor.updated_at.ToNanoseconds())


async def _current(store: Any, monitor_id: uuid.UUID) -> monitors_pb2.Monitor:
    """The monitor as stored now with its last evaluated run (no uptime: two cheap reads)."""
    row = await store.get(monitor_id)
    return monitor_view(row, last_run=(await store.last_runs([monitor_id])).get(monitor_id))


async def _snapshot(store: Any, monitor: monitors_pb2.Monitor) -> monitors_pb2.WatchMonitorResponse:
    uptime = (await store.uptime([uuid.UUID(monitor.monitor_id)])).get(uuid.UUID(monitor.monitor_id))
    if uptime is not None and uptime.day is not None:
        monitor.uptime_24h = uptime.day
    if uptime is not None and uptime.week is not None:
        monitor.uptime_7d = uptime.week
    return monitors_pb2.WatchMonitorResponse(event="snapshot", monitor=monitor)


async def watch_monitor(store: Any, live: LiveState, monitor_id: uuid.UUID, *,
                        resync_s: float = WATCH_RESYNC_S, keepalive_s: float = WATCH_KEEPALIVE_S
                        ) -> AsyncIterator[monitors_pb2.WatchMonitorResponse]:
    """A snapshot of the monitor, then its events as they are published, until it is deleted.

    The caller (MonitorsServicer.WatchMonitor) has checked that the client may see the monitor.
    `store` is the MonitorStore (get, last_runs, uptime). Subscribed before the first read, so
    nothing published after that read is missed; every `resync_s` the monitor is read again and
    a fresh snapshot sent if it changed in a way no event showed, or if nothing was sent for
    `keepalive_s`. A monitor's webhook secret never goes out here, whatever an event carries.
    """
    async with live.subscribe(monitor_channel(monitor_id), max_pending=WATCH_MAX_PENDING) as sub:
        # Past WATCH_MAX_PENDING what waited is freed at once and the loop below ends the stream.
        sub.on_overflow = lambda: None
        monitor = await _current(store, monitor_id)  # NotFound here: the client's NOT_FOUND
        seen = _digest(monitor)
        yield await _snapshot(store, monitor)
        sent_at = time.monotonic()
        resync_at = sent_at + resync_s
        while True:
            raw = await sub.get(timeout=max(0.0, resync_at - time.monotonic()))
            if sub.overflowed:
                log.info("dropping a watcher of monitor %s: more than %d events waited for it",
                         monitor_id, WATCH_MAX_PENDING)
                raise ResourceExhausted(f"watch of monitor {monitor_id} dropped: more than {WATCH_MAX_PENDING} "
                                        f"events waited to be read; watch again", retry_after_s=1)
            if raw is None:
                resync_at = time.monotonic() + resync_s
                try:
                    monitor = await _current(store, monitor_id)
                except NotFound:
                    yield monitors_pb2.WatchMonitorResponse(event="deleted")
                    return
                if _digest(monitor) != seen or time.monotonic() - sent_at >= keepalive_s:
                    seen = _digest(monitor)
                    yield await _snapshot(store, monitor)
                    sent_at = time.monotonic()
                continue
            event = monitors_pb2.WatchMonitorResponse.FromString(raw)
            if event.event == "deleted":
                yield event
                return
            if event.event == "state" and event.HasField("monitor"):
                event.monitor.webhook_secret = ""
                seen = _digest(event.monitor)
            elif event.event == "run" and event.run.verdict not in ("", "running"):
                # An evaluated run: the monitor's last run is this one now.
                seen = (*seen[:4], max(seen[4], event.run.seq), seen[5])
            yield event
            sent_at = time.monotonic()
