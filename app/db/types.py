"""Column types shared by every table."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite drops the zone; we put it back)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return to_utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class UnrepresentableTime(ValueError):
    """An aware time whose UTC equivalent falls outside years 1-9999."""


def to_utc(value: datetime) -> datetime:
    """``value`` in UTC; ``UnrepresentableTime`` when that instant has no ``datetime``.

    ``0001-01-01T00:00:00+14:00`` and ``9999-12-31T23:59:59-14:00`` are valid RFC 3339 yet lie
    before year 1 or after year 9999 in UTC, where ``astimezone`` overflows.
    """
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise UnrepresentableTime(
            "time is out of range: in UTC it falls outside years 1-9999"
        ) from None


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(value: datetime | None) -> str | None:
    """``2026-03-27T08:00:00Z`` (seconds precision, UTC)."""
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
