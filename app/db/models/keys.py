from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db.columns import created_at, json_column, timestamp


class ApiKey(SQLModel, table=True):
    """A key's identity and settings; its secret(s) live in ``key_secrets``."""

    __tablename__ = "api_keys"

    id: str = Field(primary_key=True, max_length=40)
    kind: str = Field(max_length=8, index=True)
    agent_id: str | None = Field(default=None, foreign_key="agents.id", index=True)
    platform_id: str | None = Field(default=None, foreign_key="platforms.id", index=True)
    label: str | None = Field(default=None, max_length=200)
    hint: str = Field(max_length=20)
    scopes: list[str] = json_column(default=list)
    plan: str = Field(default="free", max_length=20)
    rate_limit_per_minute: int | None = None
    rate_limit_per_day: int | None = None
    period: str | None = Field(default=None, max_length=4)
    expires_at: datetime | None = timestamp(index=True)
    status: str = Field(default="active", max_length=10, index=True)
    revoked_at: datetime | None = timestamp()
    last_used_at: datetime | None = timestamp()
    created_by: str | None = Field(default=None, max_length=60)
    created_at: datetime = created_at()


class KeySecret(SQLModel, table=True):
    """One secret of a key. Two exist only during a regeneration grace period."""

    __tablename__ = "key_secrets"

    id: str = Field(primary_key=True, max_length=40)
    key_id: str = Field(foreign_key="api_keys.id", index=True)
    secret_hash: str = Field(max_length=64, unique=True)
    # Set on the old secret when the key is regenerated with a grace period.
    expires_at: datetime | None = timestamp()
    created_at: datetime = created_at()
