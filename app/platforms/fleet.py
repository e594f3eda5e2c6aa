"""A platform's fleet: the agents it creates or claims, and what it changes about them.

Each action is the calling master key's, on its own platform's agents only (another
platform's agent is indistinguishable from a missing one), and audited.
"""

from __future__ import annotations

from typing import Any

from app.agents import service as agents
from app.audit.service import Actor, record
from app.auth.cache import KeyCache
from app.auth.principal import Principal
from app.db.models.agents import Agent
from app.db.paging import PageParams
from app.db.uow import UnitOfWork
from app.keys import service as keys
from app.settings import Settings


def _platform_id(master: Principal) -> str:
    return master.platform_id or ""


async def create_agent(
    session: UnitOfWork,
    settings: Settings,
    actor: Actor,
    master: Principal,
    *,
    name: str,
    description: str | None,
    plan: str,
    daily_limit: int | None,
) -> agents.NewAgent:
    """A fleet agent with its ``ak_`` key."""
    created = await agents.create_for_platform(
        session, keys.pepper_of(settings), _platform_id(master), name=name,
        description=description, plan=plan, daily_limit=daily_limit, created_by=master.key_id,
    )
    await record(session, actor, "agent.create", "agent", created.agent.id,
                 after=agents.agent_snapshot(created.agent))
    return created


async def list_agents(
    session: UnitOfWork, master: Principal, params: PageParams, disabled: bool | None
) -> tuple[list[Agent], str | None]:
    """The fleet, newest first."""
    return await agents.search(session, params, platform_id=_platform_id(master),
                               disabled=disabled)


async def get_agent(session: UnitOfWork, master: Principal, agent_id: str) -> Agent:
    """One agent of the calling platform's fleet, or NOT_FOUND."""
    return await agents.get_in_platform(session, agent_id, _platform_id(master))


async def update_agent(
    session: UnitOfWork, cache: KeyCache, actor: Actor, master: Principal, agent_id: str,
    changes: dict[str, Any],
) -> Agent:
    """Rename, disable/enable, change the plan or daily spending limit of a fleet agent."""
    agent = await get_agent(session, master, agent_id)
    return await agents.change(session, cache, actor, agent, changes)


async def rotate_agent_key(
    session: UnitOfWork, settings: Settings, cache: KeyCache, actor: Actor, master: Principal,
    agent_id: str, grace_seconds: int,
) -> tuple[Agent, agents.RotatedAgentKey]:
    """A new secret for a fleet agent's ``ak_`` key, or a new agent key when it has none."""
    agent = await get_agent(session, master, agent_id)
    rotated = await agents.rotate_agent_key(session, keys.pepper_of(settings), agent,
                                            grace_seconds, master.key_id)
    key_id = rotated.key.id
    await record(session, actor, "agent.rotate_key", "key", key_id,
                 after={"gracePeriodSeconds": grace_seconds,
                        "reissued": rotated.previous_valid_until is None})
    session.after_commit(lambda: cache.forget(key_id))
    return agent, rotated


async def claim_agent(
    session: UnitOfWork, settings: Settings, cache: KeyCache, actor: Actor, master: Principal,
    claim_code: str,
) -> Agent:
    """Take a self-registered agent into the fleet with its claim code (works once)."""
    agent = await agents.claim(session, keys.pepper_of(settings), _platform_id(master),
                               claim_code)
    await record(session, actor, "agent.claim", "agent", agent.id,
                 before={"platformId": None}, after={"platformId": agent.platform_id})
    agent_id = agent.id
    session.after_commit(lambda: cache.forget(agent_id))
    return agent
