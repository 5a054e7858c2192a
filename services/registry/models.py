"""The registry's table: agents (identity, location, hashed api token, capabilities)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from hostcheck.services.storage.models import Base, JSONType, UTCDateTime, utcnow


class AgentRow(Base):
    __tablename__ = "agents"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255))
    location: Mapped[str] = mapped_column(String(255), default="")
    region: Mapped[str] = mapped_column(String(64), default="")
    country: Mapped[str] = mapped_column(String(2), default="")
    city: Mapped[str] = mapped_column(String(128), default="")
    asn: Mapped[int] = mapped_column(Integer, default=0)
    # Decimal degrees for the UI's map (migration 0005); None when unknown.
    latitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    longitude: Mapped[float | None] = mapped_column(Float, nullable=True)
    labels: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    capabilities: Mapped[list[str]] = mapped_column(JSONType, default=list)
    version: Mapped[str] = mapped_column(String(64), default="")
    # sha256 of the api token; the token itself is never stored.
    api_token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    registered_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_heartbeat: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONType, default=dict)
