"""The results service's tables: checks, check_tasks, check_results.

A task keeps its own snapshot of the agent it ran on (name and location, as the scheduler
saw them when it planned the task): agent ids here are plain values, not keys into the
registry's agents table, so results never read (or wait on) another service's table.

On Postgres, check_tasks and check_results are partitioned by month of created_at (migration
0006, for retention): their primary keys are (id, created_at), they have no foreign keys, and
check_results.task_id is indexed but not UNIQUE there. These models describe the SQLite schema;
the code does not rely on the difference (it deletes results, tasks and checks explicitly, and
stores a task's result once by reading it under the check's lock).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hostcheck.services.storage.models import Base, JSONType, UTCDateTime, utcnow

# Column sizes of the agent snapshot on a task (the registry's limits for the same fields).
AGENT_NAME_LEN = 255
LOCATION_LEN = 255
REGION_LEN = 64
COUNTRY_LEN = 2
CITY_LEN = 128


class CheckRow(Base):
    __tablename__ = "checks"
    __table_args__ = (
        Index("idx_checks_status", "status"),
        Index("idx_checks_created_at", "created_at"),
        Index("idx_checks_target", "target"),
        # Listing a caller's own checks (migration 0004): a key's, or an anonymous IP's last 24 hours.
        Index("idx_checks_key_created", "created_by_key_id", "created_at"),
        Index("idx_checks_ip_created", "client_ip", "created_at"),
        # A monitor's runs (migration 0007): one check per run, listed newest first.
        Index("idx_checks_monitor_run", "monitor_id", "monitor_run", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    target: Mapped[str] = mapped_column(String(255))
    check_types: Mapped[list[str]] = mapped_column(JSONType)
    # The normalised CreateCheckRequest as JSON (options, selector, timeout).
    request: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # pending | in_progress | completed | failed
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    # The API key that created the check (migration 0004); None: anonymous (client_ip says from where).
    created_by_key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    # Set when the check is a monitor's run (migration 0007).
    monitor_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    monitor_run: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Its tasks: all, open (pending or running), ended with their result (completed or failed).
    # Kept by triggers on check_tasks (migration 0008), never written by the code: read them.
    tasks_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tasks_open: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tasks_produced: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    tasks: Mapped[list[TaskRow]] = relationship(back_populates="check", cascade="all, delete-orphan",
                                                passive_deletes=True, order_by="TaskRow.created_at")


class TaskRow(Base):
    __tablename__ = "check_tasks"
    __table_args__ = (
        Index("idx_tasks_check_id", "check_id"),
        Index("idx_tasks_agent_id", "agent_id"),
        Index("idx_tasks_status_deadline", "status", "deadline_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    check_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("checks.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    # Where the task ran (migration 0002): the agent as it was when the task was planned.
    agent_name: Mapped[str] = mapped_column(String(AGENT_NAME_LEN), default="", server_default="")
    location: Mapped[str] = mapped_column(String(LOCATION_LEN), default="", server_default="")
    region: Mapped[str] = mapped_column(String(REGION_LEN), default="", server_default="")
    country: Mapped[str] = mapped_column(String(COUNTRY_LEN), default="", server_default="")
    city: Mapped[str] = mapped_column(String(CITY_LEN), default="", server_default="")
    check_type: Mapped[str] = mapped_column(String(32))
    # pending | completed | failed | timed_out
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())

    check: Mapped[CheckRow] = relationship(back_populates="tasks")
    result: Mapped[ResultRow | None] = relationship(back_populates="task", uselist=False, lazy="joined",
                                                    passive_deletes=True)


class ResultRow(Base):
    __tablename__ = "check_results"
    __table_args__ = (
        # One result per task: a resent result never duplicates (on Postgres kept by the store, see above).
        UniqueConstraint("task_id", name="uq_results_task_id"),
        Index("idx_results_check_id", "check_id"),
        Index("idx_results_agent_id", "agent_id"),
        Index("idx_results_success", "success"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("check_tasks.id", ondelete="CASCADE"))
    check_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("checks.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    check_type: Mapped[str] = mapped_column(String(32))
    success: Mapped[bool] = mapped_column(Boolean)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[str] = mapped_column(String(64), default="")
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Arrived after its task had timed out.
    late: Mapped[bool] = mapped_column(Boolean, default=False)

    task: Mapped[TaskRow] = relationship(back_populates="result")


class ApiKeyRow(Base):
    """An API key the admin made (the seed's users): its quota, and the SHA-256 of the key, never the key."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    quota_per_hour: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
