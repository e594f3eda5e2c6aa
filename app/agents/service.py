"""Agents: self-registration, e-mail sign-up, unclaimed keys, claiming, and changes to an agent.

Every way an agent comes into being goes through one function: the agent row, its first key,
its starter credits and ``agent.registered`` are written in the caller's transaction. A change
that must bite at once (disabling, claiming) clears this process's key cache when the
transaction commits; other processes hear of it at once (``app.auth.broadcast``).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.agents import repository
from app.audit.service import Actor, record
from app.auth.cache import KeyCache
from app.auth.principal import Principal
from app.credentials.format import BASE62, KeyKind
from app.credentials.hashing import key_hash
from app.credentials.scopes import DEFAULTS
from app.credits import ledger
from app.db.models.agents import Agent
from app.db.models.keys import ApiKey
from app.db.paging import PageParams
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound, ValidationFailed
from app.events.service import emit
from app.ids import new_id
from app.keys import service as keys
from app.keys.policy import parse_custom_secret
from app.keys.schemas import CreateKeyBody
from app.settings import Settings
from webhooks.events import AgentRegistered

PLANS = ("free", "pro", "enterprise")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


@dataclass(frozen=True, slots=True)
class NewAgent:
    agent: Agent
    key: keys.IssuedKey
    claim_code: str | None


@dataclass(frozen=True, slots=True)
class Profile:
    """What ``/v1/agents/me`` shows: the caller's agent and key."""

    agent: Agent
    key: ApiKey


def new_claim_code() -> str:
    """A one-time code a platform presents to take a self-registered agent into its fleet."""
    return "clm_" + "".join(secrets.choice(BASE62) for _ in range(24))


def agent_snapshot(agent: Agent) -> dict[str, Any]:
    """The audited view of an agent (no secrets, no hashes)."""
    return {
        "name": agent.name,
        "description": agent.description,
        "platformId": agent.platform_id,
        "disabled": agent.disabled,
        "plan": agent.plan,
        "dailySpendingLimitMicros": agent.daily_spending_limit_micros,
    }


def validate_email(email: str) -> str:
    """The address without surrounding blanks, or VALIDATION_ERROR."""
    email = email.strip()
    if len(email) > 320 or not _EMAIL.match(email):
        raise ValidationFailed("email is not a valid e-mail address.")
    return email


async def _create(
    session: UnitOfWork,
    pepper: str,
    *,
    name: str,
    description: str | None,
    key_kind: KeyKind,
    starter_micros: int,
    platform_id: str | None = None,
    email: str | None = None,
    claimable: bool = True,
    label: str | None = None,
    custom_secret: str | None = None,
    plan: str = "free",
    daily_limit: int | None = None,
    created_by: str | None = None,
) -> NewAgent:
    claim_code = new_claim_code() if claimable and platform_id is None else None
    agent = Agent(
        id=new_id("agt"),
        name=name,
        description=description,
        email=email,
        platform_id=platform_id,
        plan=plan,
        daily_spending_limit_micros=daily_limit,
        claim_code_hash=key_hash(pepper, claim_code) if claim_code else None,
        claimed_at=utcnow() if platform_id else None,
    )
    session.add(agent)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("A key was already issued for this e-mail address.") from None
    issued = await keys.issue(
        session,
        pepper,
        key_kind,
        agent_id=agent.id,
        platform_id=platform_id,
        label=label,
        scopes=DEFAULTS[key_kind],
        custom_secret=custom_secret,
        created_by=created_by,
    )
    if starter_micros > 0:
        await ledger.post(
            session, agent.id, "grant", starter_micros,
            idempotency_key=f"starter:{agent.id}", reason="starter credits",
        )
    await emit(
        session,
        AgentRegistered(agent_id=agent.id, agent_name=agent.name, platform_id=platform_id,
                        key_id=issued.key.id, credits_micros=agent.balance_micros,
                        created_at=agent.created_at),
        agent_id=agent.id,
        platform_id=platform_id,
    )
    return NewAgent(agent=agent, key=issued, claim_code=claim_code)


async def register(
    session: UnitOfWork, settings: Settings, name: str, description: str | None
) -> NewAgent:
    """An agent registers itself and receives an ``ak_`` key and a claim code."""
    return await _create(
        session, keys.pepper_of(settings), name=name, description=description,
        key_kind=KeyKind.AGENT, starter_micros=settings.agent_starter_credits_micros,
        label="default",
    )


async def signup_by_email(session: UnitOfWork, settings: Settings, email: str) -> NewAgent:
    """A gateway-only ``gw_`` key with starter credits; one per e-mail address."""
    normalized = validate_email(email).lower()
    if await repository.email_taken(session, normalized):
        raise Conflict("A key was already issued for this e-mail address.")
    # The address names the agent; one past 200 characters (up to 320 are valid) is cut to
    # the name's length, and stays whole in ``email``.
    return await _create(
        session, keys.pepper_of(settings), name=normalized[:200], description=None,
        key_kind=KeyKind.GATEWAY, starter_micros=settings.starter_credits_micros,
        email=normalized, claimable=False, label="gateway",
    )


async def create_personal_key(
    session: UnitOfWork, settings: Settings, caller: Principal | None, body: CreateKeyBody
) -> tuple[keys.IssuedKey, str | None]:
    """``POST /v1/api-keys``: with a caller, an extra key on the caller's agent; without, a
    personal key for a fresh, unclaimed agent. The key, and the new agent's claim code."""
    if caller is not None:
        return await keys.create_for_agent(session, settings, caller, body), None
    if body.scopes is not None or body.expires_at is not None:
        raise ValidationFailed("scopes and expiresAt need an authenticated caller.")
    custom = parse_custom_secret(KeyKind.PERSONAL, body.key) if body.key else None
    created = await _create(
        session, keys.pepper_of(settings), name=body.label or "unclaimed", description=None,
        key_kind=KeyKind.PERSONAL, starter_micros=0, label=body.label, custom_secret=custom,
    )
    return created.key, created.claim_code


async def create_for_platform(
    session: UnitOfWork,
    pepper: str,
    platform_id: str,
    *,
    name: str,
    description: str | None,
    plan: str,
    daily_limit: int | None,
    created_by: str,
) -> NewAgent:
    """A fleet agent, claimed by its platform from the start, with its ``ak_`` key."""
    return await _create(
        session, pepper, name=name, description=description, key_kind=KeyKind.AGENT,
        starter_micros=0, platform_id=platform_id, plan=plan, daily_limit=daily_limit,
        label="default", created_by=created_by,
    )


async def get(session: UnitOfWork, agent_id: str) -> Agent:
    """The agent, or NOT_FOUND."""
    return await repository.get(session, agent_id)


async def get_in_platform(session: UnitOfWork, agent_id: str, platform_id: str) -> Agent:
    """The platform's agent; another platform's is indistinguishable from a missing one."""
    agent = await repository.find(session, agent_id)
    if agent is None or agent.platform_id != platform_id:
        raise NotFound("Agent not found.")
    return agent


async def profile(session: UnitOfWork, caller: Principal) -> Profile:
    """The caller's agent and key."""
    agent = await get(session, caller.agent_id or "")
    return Profile(agent=agent, key=await keys.get(session, caller.key_id))


async def search(
    session: UnitOfWork,
    params: PageParams,
    *,
    platform_id: str | None = None,
    disabled: bool | None = None,
    query: str | None = None,
) -> tuple[list[Agent], str | None]:
    """Agents newest first, by platform, state, or name/id (an empty query matches all)."""
    return await repository.search(session, params, platform_id=platform_id, disabled=disabled,
                                   query=query or None)


async def update(session: UnitOfWork, agent: Agent, changes: dict[str, Any]) -> Agent:
    """Apply a partial update; ``changes`` uses model field names."""
    if "plan" in changes and changes["plan"] not in PLANS:
        raise ValidationFailed(f"plan must be one of {', '.join(PLANS)}.")
    limit = changes.get("daily_spending_limit_micros")
    if limit is not None and limit < 0:
        raise ValidationFailed("dailySpendingLimitMicros must be zero or more.")
    for field, value in changes.items():
        setattr(agent, field, value)
    session.add(agent)
    await session.flush()
    return agent


async def change(
    session: UnitOfWork, cache: KeyCache, actor: Actor, agent: Agent, changes: dict[str, Any]
) -> Agent:
    """An audited partial update (the operator's or the agent's platform's)."""
    before = agent_snapshot(agent)
    await update(session, agent, changes)
    await record(session, actor, "agent.update", "agent", agent.id,
                 before=before, after=agent_snapshot(agent))
    # Disabling must bite at once here and, through the broadcast, in every other process.
    agent_id = agent.id
    session.after_commit(lambda: cache.forget(agent_id))
    return agent


async def change_any(
    session: UnitOfWork, cache: KeyCache, actor: Actor, agent_id: str, changes: dict[str, Any]
) -> Agent:
    """The operator's audited update of any agent."""
    return await change(session, cache, actor, await get(session, agent_id), changes)


async def claim(session: UnitOfWork, pepper: str, platform_id: str, claim_code: str) -> Agent:
    """Take a self-registered agent into a platform's fleet; a code works once.

    One conditional UPDATE decides between platforms presenting the same code at once: the
    database lets one of them take the row, and the other finds no code to use, exactly as
    if it had come later.
    """
    agent = await repository.take_unclaimed(session, key_hash(pepper, claim_code.strip()),
                                            platform_id)
    if agent is None:
        raise NotFound("Unknown or already used claim code.")
    return agent


async def describe_claim(session: UnitOfWork, settings: Settings, claim_code: str) -> Agent:
    """The unclaimed agent a claim code belongs to."""
    digest = key_hash(keys.pepper_of(settings), claim_code.strip())
    agent = await repository.by_claim_code_hash(session, digest)
    if agent is None:
        raise NotFound("Unknown or already used claim code.")
    return agent


@dataclass(frozen=True, slots=True)
class RotatedAgentKey:
    key: ApiKey
    secret: str
    # When the previous secret stops working; None when there was none (a key was reissued).
    previous_valid_until: datetime | None


async def rotate_agent_key(
    session: UnitOfWork, pepper: str, agent: Agent, grace_seconds: int, created_by: str
) -> RotatedAgentKey:
    """The platform's way back into an agent, whatever its keys did.

    A new secret for the agent key (``ak_``: its oldest active one), the old secret working
    for the grace period; or, when the agent has no active agent key (revoked, expired), a
    new agent key with the default scopes. Rotations of one agent run one after the other
    (the agent row is locked first), so two of them never both issue a key.
    """
    await repository.lock(session, agent)
    key = await repository.oldest_active_agent_key(session, agent.id)
    if key is not None and (key.expires_at is None or key.expires_at > utcnow()):
        secret, old_until = await keys.regenerate(session, pepper, key, grace_seconds)
        return RotatedAgentKey(key=key, secret=secret, previous_valid_until=old_until)
    issued = await keys.issue(
        session, pepper, KeyKind.AGENT, agent_id=agent.id, platform_id=agent.platform_id,
        label="default", scopes=DEFAULTS[KeyKind.AGENT], created_by=created_by,
    )
    return RotatedAgentKey(key=issued.key, secret=issued.secret, previous_valid_until=None)
