"""Live events of monitors (results -> WatchMonitor streams), on the live state's pub/sub.

One channel per monitor; each message is a serialised WatchMonitorResponse: `run` when a run
starts (its check is opened) and when it is evaluated, `state` on a transition (with the monitor
and the stored event), `deleted` when the monitor is deleted. Publishing never fails the write
that caused it: a watcher that missed an event catches up from storage (WatchMonitor re-reads).
"""

from __future__ import annotations

import logging
import uuid

from hostcheck.services.storage.livestate import LiveState
from hostcheck.v1 import monitors_pb2

log = logging.getLogger(__name__)


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
