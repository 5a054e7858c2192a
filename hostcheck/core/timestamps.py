"""protobuf Timestamps from datetimes, the one conversion every part uses."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import timestamp_pb2


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(value)
    return out


def ts_or_none(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    return None if value is None else ts(value)


def now_ts() -> timestamp_pb2.Timestamp:
    return ts(datetime.now(UTC))
