from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from app.db.columns import created_at, json_column


class AuditEntry(SQLModel, table=True):
    """Who changed what, when, with the state before and after."""

    __tablename__ = "audit_log"

    id: str = Field(primary_key=True, max_length=40)
    actor_type: str = Field(max_length=12)  # admin, platform, system
    actor_id: str | None = Field(default=None, max_length=40, index=True)
    action: str = Field(max_length=60, index=True)
    target_type: str = Field(max_length=30)
    target_id: str | None = Field(default=None, max_length=40, index=True)
    before: dict[str, Any] | None = json_column(nullable=True)
    after: dict[str, Any] | None = json_column(nullable=True)
    request_id: str | None = Field(default=None, max_length=128)
    created_at: datetime = created_at()
