"""What every service's tables share: one declarative base and the column types.

Each service declares its own tables next to its code (services/registry/models.py: agents;
services/results/models.py: checks, check_tasks, check_results) on this base, so one migration
history (services/storage/migrations) covers them all. No table of one service refers to
another's: the results keep their own snapshot of where a task ran instead of a key into agents.

JSON columns are JSONB on Postgres and JSON text on SQLite (the embedded default).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, DateTime
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase

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
