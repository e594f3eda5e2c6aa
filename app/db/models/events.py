from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from app.db.columns import created_at, json_column, timestamp


class Event(SQLModel, table=True):
    """Outbox: written in the same transaction as the change it describes."""

    __tablename__ = "events"

    id: str = Field(primary_key=True, max_length=40)
    type: str = Field(max_length=60, index=True)
    platform_id: str | None = Field(default=None, max_length=40, index=True)
    agent_id: str | None = Field(default=None, max_length=40, index=True)
    data: dict[str, Any] = json_column(default=None)
    created_at: datetime = created_at()
    # Set once the webhook fan-out has turned the event into delivery rows.
    dispatched_at: datetime | None = timestamp(index=True)
