from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from app.http.schemas import Label, Micros, TimedBody

Plan = Literal["free", "pro", "enterprise", "pass"]
PositiveLimit = Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]


class AuditView(msgspec.Struct, rename="camel"):
    id: str
    actor_type: str
    actor_id: str | None
    action: str
    target_type: str
    target_id: str | None
    before: dict[str, object] | None
    after: dict[str, object] | None
    request_id: str | None
    created_at: str


class UpdateKeyBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Admin overrides; ``null`` returns a rate limit to the plan default."""

    label: Label | msgspec.UnsetType | None = msgspec.UNSET
    plan: Plan | msgspec.UnsetType = msgspec.UNSET
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


class AdminAgentPatch(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    disabled: bool | msgspec.UnsetType = msgspec.UNSET
    plan: Literal["free", "pro", "enterprise"] | msgspec.UnsetType = msgspec.UNSET
    daily_spending_limit_micros: Micros | msgspec.UnsetType | None = msgspec.UNSET

    def changes(self) -> dict[str, object]:
        fields = {
            "disabled": self.disabled,
            "plan": self.plan,
            "daily_spending_limit_micros": self.daily_spending_limit_micros,
        }
        return {k: v for k, v in fields.items() if v is not msgspec.UNSET}
