"""Agents on the wire: request bodies, views, and the conversions from rows to views."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from app.db.models.agents import Agent
from app.db.models.keys import ApiKey
from app.db.types import rfc3339
from app.http.schemas import Description, GraceSeconds, Micros, Name, RateLimitView
from app.keys.schemas import KeyView, key_view, rate_limit_of
from app.settings import Settings

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
    # In open gateway credit leases: neither available nor spent yet.
    held_micros: int = 0


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


class AdminAgentPatch(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    disabled: bool | msgspec.UnsetType = msgspec.UNSET
    plan: Plan | msgspec.UnsetType = msgspec.UNSET
    daily_spending_limit_micros: Micros | msgspec.UnsetType | None = msgspec.UNSET

    def changes(self) -> dict[str, object]:
        fields = {
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


def agent_view(agent: Agent) -> AgentView:
    return AgentView(
        id=agent.id,
        name=agent.name,
        description=agent.description,
        platform_id=agent.platform_id,
        disabled=agent.disabled,
        plan=agent.plan,
        claimed=agent.platform_id is not None,
        credits_micros=agent.balance_micros,
        spent_micros=agent.spent_micros,
        daily_spending_limit_micros=agent.daily_spending_limit_micros,
        created_at=rfc3339(agent.created_at) or "",
        held_micros=agent.held_micros,
    )


def rotated_key(
    agent: Agent, key_id: str, secret: str, previous_valid_until: datetime | None
) -> RotatedKey:
    return RotatedKey(agent_id=agent.id, key_id=key_id, api_key=secret,
                      previous_key_expires_at=rfc3339(previous_valid_until))


HOW_TO_CLAIM = 'POST /v1/platform/agents/claim with X-Master-Key and {"claimCode": "..."}'


def registered(
    agent: Agent, key: ApiKey, secret: str, claim_code: str, public_url: str
) -> Registered:
    # The code rides in the URL's fragment, which browsers and HTTP clients never send: opening
    # the link shows how to claim, and the code reaches no server's or proxy's access log.
    return Registered(
        agent_id=agent.id,
        agent_name=agent.name,
        api_key=secret,
        key_id=key.id,
        claim_code=claim_code,
        claim_url=f"{public_url.rstrip('/')}/v1/claims#{claim_code}",
        credits_micros=agent.balance_micros,
    )


def me(agent: Agent, key: ApiKey, settings: Settings) -> Me:
    return Me(
        agent=agent_view(agent),
        key=key_view(key, settings, agent.plan),
        credits_micros=agent.balance_micros,
        spent_micros=agent.spent_micros,
        rate_limit=rate_limit_of(key, settings, agent.plan),
    )


def claim_info(agent: Agent) -> ClaimInfo:
    return ClaimInfo(agent_id=agent.id, agent_name=agent.name, claimed=False,
                     how_to_claim=HOW_TO_CLAIM)


def email_signup_result(agent: Agent, key: ApiKey, secret: str) -> EmailSignupResult:
    credits = agent.balance_micros
    return EmailSignupResult(
        api_key=secret,
        credits_usd=credits / 1_000_000,
        creditsMicros=credits,
        keyId=key.id,
        agentId=agent.id,
        scopes=list(key.scopes),
    )
