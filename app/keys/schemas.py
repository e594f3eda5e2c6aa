from __future__ import annotations

from datetime import datetime

import msgspec

from app.http.schemas import GraceSeconds, Label, RateLimitView, TimedBody


class KeyView(msgspec.Struct, rename="camel"):
    """A key as anyone may see it after creation: never the secret."""

    id: str
    type: str
    label: str | None
    hint: str
    scopes: list[str]
    status: str
    created_at: str
    expires_at: str | None
    period: str | None
    rate_limit: RateLimitView
    last_used_at: str | None
    revoked_at: str | None
    agent_id: str | None = None


class CreateKeyBody(TimedBody, forbid_unknown_fields=True, rename="camel"):
    label: Label | None = None
    key: str | None = None
    scopes: list[str] | None = None
    expires_at: datetime | None = None


class CreatedKey(msgspec.Struct, rename="camel"):
    id: str
    label: str | None
    key: str
    type: str
    scopes: list[str]
    created_at: str
    expires_at: str | None
    claim_code: str | None = None
    agent_id: str | None = None
    warning: str = "Save this API key now. It will not be shown again."


class EmailSignupBody(msgspec.Struct, forbid_unknown_fields=True):
    email: str


class EmailSignupResult(msgspec.Struct):
    """SPEC keeps the snake_case spelling of ``api_key`` and ``credits_usd`` here."""

    api_key: str
    credits_usd: float
    creditsMicros: int
    keyId: str
    agentId: str
    scopes: list[str]
    warning: str = "Save this API key now. It will not be shown again."


class RegenerateBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    grace_period_seconds: GraceSeconds = 0


class RegeneratedKey(msgspec.Struct, rename="camel"):
    id: str
    key: str
    hint: str
    previous_key_expires_at: str
    warning: str = "Save this API key now. It will not be shown again."
