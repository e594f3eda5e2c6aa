from __future__ import annotations

from typing import Literal

import msgspec

from app.http.schemas import Description, GraceSeconds, Micros, Name, RateLimitView
from app.keys.schemas import KeyView

Plan = Literal["free", "pro", "enterprise"]


class RegisterBody(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    description: Description | None = None


class Registered(msgspec.Struct, rename="camel"):
    agent_id: str
    agent_name: str
    api_key: str
    key_id: str
    claim_code: str
    claim_url: str
    credits_micros: int
    warning: str = "Save this API key now. It will not be shown again."


class AgentView(msgspec.Struct, rename="camel"):
    id: str
    name: str
    description: str | None
    platform_id: str | None
    disabled: bool
    plan: str
    claimed: bool
    credits_micros: int
    spent_micros: int
    daily_spending_limit_micros: int | None
    created_at: str


class Me(msgspec.Struct, rename="camel"):
    agent: AgentView
    key: KeyView
    credits_micros: int
    spent_micros: int
    rate_limit: RateLimitView


class ClaimHelp(msgspec.Struct, rename="camel"):
    how_to_claim: str
    claim_code: str


class ClaimInfo(msgspec.Struct, rename="camel"):
    agent_id: str
    agent_name: str
    claimed: bool
    how_to_claim: str


class CreateAgentBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    name: Name
    description: Description | None = None
    plan: Plan = "free"
    daily_spending_limit_micros: Micros | None = None


class CreatedAgent(msgspec.Struct, rename="camel"):
    agent: AgentView
    api_key: str
    key_id: str
    warning: str = "Save this API key now. It will not be shown again."


class UpdateAgentBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    name: Name | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET
    plan: Plan | msgspec.UnsetType = msgspec.UNSET
    daily_spending_limit_micros: Micros | msgspec.UnsetType | None = msgspec.UNSET

    def changes(self) -> dict[str, object]:
        fields = {
            "name": self.name,
            "description": self.description,
            "disabled": self.disabled,
            "plan": self.plan,
            "daily_spending_limit_micros": self.daily_spending_limit_micros,
        }
        return {k: v for k, v in fields.items() if v is not msgspec.UNSET}


class ClaimBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    claim_code: str


class RotateBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    grace_period_seconds: GraceSeconds = 0


class RotatedKey(msgspec.Struct, rename="camel"):
    agent_id: str
    key_id: str
    api_key: str
    # None: the agent had no working agent key, and this one is new.
    previous_key_expires_at: str | None
    warning: str = "Save this API key now. It will not be shown again."
