"""Column factories (SQLAlchemy columns cannot be shared between tables)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from app.db.types import UTCDateTime, utcnow


def created_at() -> Any:
    return Field(default_factory=utcnow, sa_column=sa.Column(UTCDateTime(), nullable=False))


def timestamp(*, index: bool = False) -> Any:
    return Field(default=None, sa_column=sa.Column(UTCDateTime(), nullable=True, index=index))


def json_column(*, nullable: bool = False, default: Any = None) -> Any:
    factory = (lambda: []) if default is list else (lambda: default)
    return Field(default_factory=factory, sa_column=sa.Column(sa.JSON(), nullable=nullable))


def micros(default: int = 0) -> Any:
    # BIGINT: a balance in 6-decimal base units passes 2**31 at ~2,147 USD.
    return Field(default=default, sa_column=sa.Column(sa.BigInteger(), nullable=False))


def optional_micros() -> Any:
    return Field(default=None, sa_column=sa.Column(sa.BigInteger(), nullable=True))


__all__ = ["created_at", "datetime", "json_column", "micros", "optional_micros", "timestamp"]
