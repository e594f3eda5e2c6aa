"""Keys on the wire: request bodies, views, and the conversions from rows to views."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Annotated, Literal

import msgspec

from app.auth.principal import Principal
from app.credentials.format import KeyKind
from app.credentials.scopes import TYPE_NAMES
from app.db.models.keys import ApiKey
from app.db.types import rfc3339
from app.http.schemas import GraceSeconds, Label, RateLimitView, TimedBody
from app.settings import Settings

KeyPlan = Literal["free", "pro", "enterprise", "pass"]
PositiveLimit = Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]


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


class RegenerateBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    grace_period_seconds: GraceSeconds = 0


class RegeneratedKey(msgspec.Struct, rename="camel"):
    id: str
    key: str
    hint: str
    previous_key_expires_at: str
    warning: str = "Save this API key now. It will not be shown again."


class UpdateKeyBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Admin overrides; ``null`` returns a rate limit to the plan default."""

    label: Label | msgspec.UnsetType | None = msgspec.UNSET
    plan: KeyPlan | msgspec.UnsetType = msgspec.UNSET
    rate_limit_per_minute: PositiveLimit | msgspec.UnsetType | None = msgspec.UNSET
    rate_limit_per_day: PositiveLimit | msgspec.UnsetType | None = msgspec.UNSET

    def changes(self) -> dict[str, object]:
        fields = {
            "label": self.label,
            "plan": self.plan,
            "rate_limit_per_minute": self.rate_limit_per_minute,
            "rate_limit_per_day": self.rate_limit_per_day,
        }
        return {k: v for k, v in fields.items() if v is not msgspec.UNSET}


class LookupKeyBody(msgspec.Struct, forbid_unknown_fields=True):
    key: str


class AdminTokenBody(TimedBody, forbid_unknown_fields=True, rename="camel"):
    label: Label | None = None
    expires_at: datetime | None = None


class CreatedAdminToken(msgspec.Struct, rename="camel"):
    id: str
    token: str
    label: str | None
    expires_at: str | None = None
    warning: str = "Save this admin token now. It will not be shown again."


def rate_limit_of(key: ApiKey, settings: Settings, agent_plan: str | None = None) -> RateLimitView:
    """The limits the key really gets: its overrides, else its plan's (a pass key's own plan,
    any other key its agent's)."""
    plan = key.plan if key.kind == KeyKind.PASS.value else (agent_plan or key.plan)
    limits = settings.plan_limits(plan)
    return RateLimitView(
        requests_per_minute=key.rate_limit_per_minute or limits.per_minute,
        requests_per_day=key.rate_limit_per_day or limits.per_day,
    )


def key_view(key: ApiKey, settings: Settings, agent_plan: str | None = None) -> KeyView:
    return KeyView(
        id=key.id,
        type=TYPE_NAMES[KeyKind(key.kind)],
        label=key.label,
        hint=key.hint,
        scopes=list(key.scopes),
        status=key.status,
        created_at=rfc3339(key.created_at) or "",
        expires_at=rfc3339(key.expires_at),
        period=key.period,
        rate_limit=rate_limit_of(key, settings, agent_plan),
        last_used_at=rfc3339(key.last_used_at),
        revoked_at=rfc3339(key.revoked_at),
        agent_id=key.agent_id,
    )


@lru_cache(maxsize=4096)
def principal_view(principal: Principal) -> KeyView:
    """The calling key as the cache knows it (``app.auth.cache`` says how fresh).

    Memoised: a principal is an immutable snapshot, so its view is too.
    """
    return KeyView(
        id=principal.key_id,
        type=TYPE_NAMES[principal.kind],
        label=principal.label,
        hint=principal.hint,
        scopes=sorted(principal.scopes),
        status=principal.status,
        created_at=rfc3339(principal.created_at) or "",
        expires_at=rfc3339(principal.key_expires_at),
        period=principal.period,
        rate_limit=RateLimitView(
            requests_per_minute=principal.per_minute, requests_per_day=principal.per_day
        ),
        last_used_at=rfc3339(principal.last_used_at),
        revoked_at=None,
        agent_id=principal.agent_id,
    )


def created_key(key: ApiKey, secret: str, claim_code: str | None = None) -> CreatedKey:
    """A new personal key with its secret, shown this once."""
    return CreatedKey(
        id=key.id,
        label=key.label,
        key=secret,
        type=TYPE_NAMES[KeyKind.PERSONAL],
        scopes=list(key.scopes),
        created_at=rfc3339(key.created_at) or "",
        expires_at=rfc3339(key.expires_at),
        claim_code=claim_code,
        agent_id=key.agent_id,
    )


def created_admin_token(key: ApiKey, secret: str) -> CreatedAdminToken:
    return CreatedAdminToken(id=key.id, token=secret, label=key.label,
                             expires_at=rfc3339(key.expires_at))


def regenerated(key: ApiKey, secret: str, previous_valid_until: datetime) -> RegeneratedKey:
    """A key's new secret, shown this once, and when the previous one stops working."""
    return RegeneratedKey(id=key.id, key=secret, hint=key.hint,
                          previous_key_expires_at=rfc3339(previous_valid_until) or "")
