"""SQLAlchemy models of the seed's tables: agents (registry), checks, check_tasks, check_results (results).

JSON columns are JSONB on Postgres and JSON text on SQLite (the embedded default).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(DateTime):
    """Timezone-aware everywhere; SQLite stores naive UTC, so we re-attach UTC on read."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def result_processor(self, dialect, coltype):
        parent = super().result_processor(dialect, coltype)

        def process(value):
            if parent is not None:
                value = parent(value)
            if isinstance(value, datetime) and value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value
        return process


class Base(DeclarativeBase):
    pass


class AgentRow(Base):
    __tablename__ = "agents"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255))
    location: Mapped[str] = mapped_column(String(255), default="")
    region: Mapped[str] = mapped_column(String(64), default="")
    country: Mapped[str] = mapped_column(String(2), default="")
    city: Mapped[str] = mapped_column(String(128), default="")
    asn: Mapped[int] = mapped_column(Integer, default=0)
    labels: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    capabilities: Mapped[list[str]] = mapped_column(JSONType, default=list)
    version: Mapped[str] = mapped_column(String(64), default="")
    # sha256 of the api token; the token itself is never stored.
    api_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)


class CheckRow(Base):
    __tablename__ = "checks"
    __table_args__ = (
        Index("idx_checks_status", "status"),
        Index("idx_checks_created_at", "created_at"),
        Index("idx_checks_target", "target"),
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
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id"))
    check_type: Mapped[str] = mapped_column(String(32))
    # pending | completed | failed | timed_out
    status: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())

    check: Mapped[CheckRow] = relationship(back_populates="tasks")
    agent: Mapped[AgentRow] = relationship(lazy="joined")
    result: Mapped[ResultRow | None] = relationship(back_populates="task", uselist=False, lazy="joined",
                                                    passive_deletes=True)


class ResultRow(Base):
    __tablename__ = "check_results"
    __table_args__ = (
        # One result per task: a resent result never duplicates.
        UniqueConstraint("task_id", name="uq_results_task_id"),
        Index("idx_results_check_id", "check_id"),
        Index("idx_results_agent_id", "agent_id"),
        Index("idx_results_success", "success"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("check_tasks.id", ondelete="CASCADE"))
    check_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("checks.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agents.id"))
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
