"""The monitors' tables (owned by the results service, migration 0007): monitors, monitor_runs, monitor_events.

A monitor is a check spec run every `interval_s`. Scheduler replicas claim due runs through
MonitorRunsService.ClaimDueRuns: one statement advances `next_run_at` and `run_seq` and inserts the
run row (with the check id its check must have), so a run is claimed once. Each run is an ordinary
check (checks.monitor_id / checks.monitor_run, unique together). When its check finishes, the run is
evaluated in order of `seq` under the monitor's row lock (`last_evaluated_seq`), the state moves, and
a transition is stored as an event; an event that notifies is also the webhook's outbox row
(`notification` pending -> delivered), so a transition is notified once, at least once.

Uptime reads an hourly rollup, monitor_uptime: the evaluator adds each judged run to its hour's
bucket in the transaction that stores the verdict, so a page of monitors' 24 h / 7 d uptime reads
at most 168 small rows per monitor instead of every run (60,000 a week at a 10 s interval).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from hostcheck.services.storage.models import Base, JSONType, UTCDateTime, utcnow

NAME_LEN = 100
SLUG_LEN = 64
STATE_LEN = 16


class MonitorRow(Base):
    __tablename__ = "monitors"
    __table_args__ = (
        # Claiming due runs: the earliest unpaused first.
        Index("idx_monitors_due", "paused", "next_run_at"),
        Index("idx_monitors_key_created", "created_by_key_id", "created_at"),
        Index("idx_monitors_slug", "status_slug"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(NAME_LEN))
    target: Mapped[str] = mapped_column(String(255))
    check_types: Mapped[list[str]] = mapped_column(JSONType)
    # The normalised CreateCheckRequest of every run, as JSON (MessageToDict, proto field names).
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    interval_s: Mapped[int] = mapped_column(Integer)
    quorum: Mapped[int] = mapped_column(Integer, default=1)
    for_runs: Mapped[int] = mapped_column(Integer, default=1)
    webhook_url: Mapped[str] = mapped_column(Text, default="")
    # HMAC-SHA256 key of the webhook signature (hex); kept to sign, shown only when made.
    webhook_secret: Mapped[str] = mapped_column(String(128), default="")
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    status_slug: Mapped[str | None] = mapped_column(String(SLUG_LEN), nullable=True)
    # None: made with the admin token.
    created_by_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Scheduling: when the next run is due, and how many runs were claimed (the last run's seq).
    next_run_at: Mapped[datetime] = mapped_column(UTCDateTime())
    run_seq: Mapped[int] = mapped_column(Integer, default=0)
    # pending | up | degraded | down | unknown | paused
    state: Mapped[str] = mapped_column(String(STATE_LEN), default="pending")
    state_since: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Consecutive runs with at least `quorum` agents failing.
    failing_runs: Mapped[int] = mapped_column(Integer, default=0)
    # Runs are evaluated in order: every run up to this seq has been.
    last_evaluated_seq: Mapped[int] = mapped_column(Integer, default=0)


class MonitorRunRow(Base):
    __tablename__ = "monitor_runs"
    __table_args__ = (
        Index("idx_monitor_runs_check", "check_id", unique=True),
        # Finding runs to evaluate (and missed ones) across monitors.
        Index("idx_monitor_runs_unevaluated", "evaluated", "scheduled_at"),
        Index("idx_monitor_runs_monitor_scheduled", "monitor_id", "scheduled_at"),
    )

    monitor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The id the run's check has (chosen when claimed).
    check_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    scheduled_at: Mapped[datetime] = mapped_column(UTCDateTime())
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    claimed_by: Mapped[str] = mapped_column(String(128), default="")
    # When its check was opened; None: not (yet) started.
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # running | up | degraded | failing | unknown | missed
    verdict: Mapped[str] = mapped_column(String(STATE_LEN), default="running")
    agents_total: Mapped[int] = mapped_column(Integer, default=0)
    agents_failing: Mapped[int] = mapped_column(Integer, default=0)
    # [MonitorRunAgent as JSON, ...]
    agents: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # The monitor's state after this run.
    state_after: Mapped[str] = mapped_column(String(STATE_LEN), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    evaluated: Mapped[bool] = mapped_column(Boolean, default=False)


class MonitorEventRow(Base):
    __tablename__ = "monitor_events"
    __table_args__ = (
        Index("idx_monitor_events_monitor_at", "monitor_id", "at"),
        # The webhook outbox: pending notifications by when they are next due.
        Index("idx_monitor_events_outbox", "notification", "next_attempt_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    monitor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"))
    from_state: Mapped[str] = mapped_column(String(STATE_LEN))
    to_state: Mapped[str] = mapped_column(String(STATE_LEN))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    run_seq: Mapped[int] = mapped_column(Integer, default=0)
    check_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # [MonitorRunAgent as JSON, ...]: the evidence.
    failing_agents: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # none | pending | delivered
    notification: Mapped[str] = mapped_column(String(STATE_LEN), default="none")
    # The webhook body, fixed when the event is made so every attempt sends the same bytes.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Due (or, while an attempt is under way, leased until).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_delivery_error: Mapped[str] = mapped_column(Text, default="")


class MonitorUptimeRow(Base):
    """One monitor's judged runs in one UTC hour (by the run's scheduled_at), by verdict.

    Counted once per run, under the monitor's row lock with the verdict (services/results/
    monitors.py count_verdict); `unknown` and `missed` runs are not counted (they don't count for
    uptime). Retention deletes buckets older than 8 days (uptime looks back 7).
    """

    __tablename__ = "monitor_uptime"

    monitor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("monitors.id", ondelete="CASCADE"), primary_key=True)
    # The hour's start (UTC, truncated to the hour).
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    up: Mapped[int] = mapped_column(Integer, default=0)
    degraded: Mapped[int] = mapped_column(Integer, default=0)
    failing: Mapped[int] = mapped_column(Integer, default=0)
