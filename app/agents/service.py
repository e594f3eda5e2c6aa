"""Agents: self-registration, e-mail sign-up, unclaimed keys, claiming, fleet management."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy import update as sa_update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from app.credentials.format import BASE62, KeyKind
from app.credentials.hashing import key_hash
from app.credentials.scopes import DEFAULTS
from app.credits import ledger
from app.db.models.agents import Agent
from app.db.models.keys import ApiKey
from app.db.paging import PageParams, apply, split
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound, ValidationFailed
from app.events.service import emit
from app.ids import new_id
from app.keys import service as keys
from webhooks.events import AgentRegistered

PLANS = ("free", "pro", "enterprise")


@dataclass(frozen=True, slots=True)
class NewAgent:
    agent: Agent
    key: keys.IssuedKey
    claim_code: str | None


def new_claim_code() -> str:
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
    session: UnitOfWork, pepper: str, name: str, description: str | None, starter_micros: int
) -> NewAgent:
    """An agent registers itself and receives an ``ak_`` key and a claim code."""
    return await _create(
        session, pepper, name=name, description=description, key_kind=KeyKind.AGENT,
        starter_micros=starter_micros, label="default",
    )


async def signup_by_email(
    session: UnitOfWork, pepper: str, email: str, starter_micros: int
) -> NewAgent:
    """A gateway-only ``gw_`` key with starter credits; one per e-mail address."""
    normalized = email.strip().lower()
    taken = await session.exec(select(Agent.id).where(col(Agent.email) == normalized))
    if taken.first() is not None:
        raise Conflict("A key was already issued for this e-mail address.")
    # The address names the agent; one past 200 characters (up to 320 are valid) is cut to
    # the name's length, and stays whole in ``email``.
    return await _create(
        session, pepper, name=normalized[:200], description=None, key_kind=KeyKind.GATEWAY,
        starter_micros=starter_micros, email=normalized, claimable=False, label="gateway",
    )


async def create_unclaimed_key(
    session: UnitOfWork, pepper: str, label: str | None, custom_secret: str | None
) -> NewAgent:
    """``POST /v1/api-keys`` without auth: a personal key for a fresh, unclaimed account."""
    return await _create(
        session, pepper, name=label or "unclaimed", description=None,
        key_kind=KeyKind.PERSONAL, starter_micros=0, label=label, custom_secret=custom_secret,
    )


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
    return await _create(
        session, pepper, name=name, description=description, key_kind=KeyKind.AGENT,
        starter_micros=0, platform_id=platform_id, plan=plan, daily_limit=daily_limit,
        label="default", created_by=created_by,
    )


async def get(session: UnitOfWork, agent_id: str) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None:
        raise NotFound("Agent not found.")
    return agent


async def plans(session: UnitOfWork, agent_ids: set[str]) -> dict[str, str]:
    """Each agent's plan: a key's effective rate limit comes from its agent's plan."""
    if not agent_ids:
        return {}
    rows = await session.exec(select(Agent.id, Agent.plan).where(col(Agent.id).in_(agent_ids)))
    return dict(rows.all())


async def get_in_platform(session: UnitOfWork, agent_id: str, platform_id: str) -> Agent:
    agent = await session.get(Agent, agent_id)
    if agent is None or agent.platform_id != platform_id:
        raise NotFound("Agent not found.")
    return agent


async def search(
    session: UnitOfWork,
    params: PageParams,
    *,
    platform_id: str | None = None,
    disabled: bool | None = None,
    query: str | None = None,
) -> tuple[list[Agent], str | None]:
    stmt = select(Agent)
    if platform_id is not None:
        stmt = stmt.where(col(Agent.platform_id) == platform_id)
    if disabled is not None:
        stmt = stmt.where(col(Agent.disabled) == disabled)
    if query:
        pattern = f"%{query.lower()}%"
        stmt = stmt.where(func.lower(col(Agent.name)).like(pattern) | (col(Agent.id) == query))
    rows = (await session.exec(apply(stmt, col(Agent.id), params))).all()  # type: ignore[call-overload]
    return split(rows, params, lambda a: a.id)


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


async def claim(session: UnitOfWork, pepper: str, platform_id: str, claim_code: str) -> Agent:
    """Take a self-registered agent into a platform's fleet; a code works once.

    One conditional UPDATE decides between platforms presenting the same code at once: the
    database lets one of them take the row, and the other finds no code to use, exactly as
    if it had come later.
    """
    digest = key_hash(pepper, claim_code.strip())
    claimed = await session.execute(
        sa_update(Agent)
        .where(col(Agent.claim_code_hash) == digest, col(Agent.platform_id).is_(None))
        .values(platform_id=platform_id, claim_code_hash=None, claimed_at=utcnow())
        .returning(col(Agent.id))
    )
    agent_id = claimed.scalar_one_or_none()
    if agent_id is None:
        raise NotFound("Unknown or already used claim code.")
    await session.execute(
        sa_update(ApiKey).where(col(ApiKey.agent_id) == agent_id).values(platform_id=platform_id)
    )
    # The UPDATEs bypassed any copy this session already holds; read the rows as stored.
    agent = await session.get(Agent, agent_id, populate_existing=True)
    assert agent is not None
    return agent


async def describe_claim(session: UnitOfWork, pepper: str, claim_code: str) -> Agent:
    digest = key_hash(pepper, claim_code.strip())
    agent = (await session.exec(select(Agent).where(col(Agent.claim_code_hash) == digest))).first()
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
    new agent key with the default scopes. Rotations of one agent run one after the other:
    the agent row is written first (PostgreSQL locks it; SQLite takes its single write lock),
    so two of them never both issue a key.
    """
    await session.execute(
        sa_update(Agent).where(col(Agent.id) == agent.id).values(platform_id=agent.platform_id)
    )
    key = (
        await session.exec(
            select(ApiKey)
            .where(col(ApiKey.agent_id) == agent.id, col(ApiKey.kind) == KeyKind.AGENT.value,
                   col(ApiKey.status) == "active")
            .order_by(col(ApiKey.id))
        )
    ).first()
    if key is not None and (key.expires_at is None or key.expires_at > utcnow()):
        secret, old_until = await keys.regenerate(session, pepper, key, grace_seconds)
        return RotatedAgentKey(key=key, secret=secret, previous_valid_until=old_until)
    issued = await keys.issue(
        session, pepper, KeyKind.AGENT, agent_id=agent.id, platform_id=agent.platform_id,
        label="default", scopes=DEFAULTS[KeyKind.AGENT], created_by=created_by,
    )
    return RotatedAgentKey(key=issued.key, secret=issued.secret, previous_valid_until=None)
