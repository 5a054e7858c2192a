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
from sqlalchemy.types import TypeDecorator

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware everywhere; SQLite stores naive UTC, so we re-attach UTC on read.

    A TypeDecorator: a DateTime subclass overriding result_processor was replaced by SQLite's own
    DATETIME type when the dialect adapted it, so SQLite gave naive datetimes back after all.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value, dialect):
        if isinstance(value, datetime) and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass
