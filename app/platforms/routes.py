"""Platform routes (``X-Master-Key``): fleet agents, claiming, spending limit, master keys.

Every mutation is written to the audit log with the acting master key.
"""

from __future__ import annotations

from litestar import Router, delete, get, patch, post, put
from litestar.params import Parameter

from app.agents.schemas import (
    AgentView,
    ClaimBody,
    CreateAgentBody,
    CreatedAgent,
    RotateBody,
    RotatedKey,
    UpdateAgentBody,
    agent_view,
    rotated_key,
)
from app.audit.service import Actor
from app.auth.guards import MASTER
from app.auth.principal import Principal
from app.auth.service import Authenticator
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.keys.schemas import KeyView, key_view
from app.platforms import fleet
from app.platforms import service as platforms
from app.platforms.schemas import (
    CreatedMasterKey,
    MasterKeyBody,
    PlatformView,
    SpendingLimitBody,
    SpendingLimitView,
    created_master_key,
    platform_view,
    spending_limit_view,
)
from app.settings import Settings


@get("/")
async def get_platform(session: UnitOfWork, principal: Principal) -> PlatformView:
    """The calling platform."""
    return platform_view(await platforms.get(session, principal.platform_id or ""))


@post("/agents", status_code=201)
async def create_agent(
    session: UnitOfWork, settings: Settings, principal: Principal, actor: Actor,
    data: CreateAgentBody,
) -> CreatedAgent:
    """Create a fleet agent with its ``ak_`` key (shown once)."""
    created = await fleet.create_agent(
        session, settings, actor, principal, name=data.name.strip(),
        description=data.description, plan=data.plan,
        daily_limit=data.daily_spending_limit_micros,
    )
    return CreatedAgent(agent=agent_view(created.agent), api_key=created.key.secret,
                        key_id=created.key.key.id)


@get("/agents")
async def list_agents(
    session: UnitOfWork,
    principal: Principal,
    limit: int | None = Parameter(default=None),
    cursor: str | None = Parameter(default=None),
    disabled: bool | None = Parameter(default=None),
) -> Page:
    """The fleet, newest first."""
    rows, next_cursor = await fleet.list_agents(session, principal, page_params(limit, cursor),
                                                disabled)
    return Page(data=[agent_view(a) for a in rows], next_cursor=next_cursor)


@get("/agents/{agent_id:str}")
async def get_agent(session: UnitOfWork, principal: Principal, agent_id: str) -> AgentView:
    """One agent of the fleet."""
    return agent_view(await fleet.get_agent(session, principal, agent_id))


@patch("/agents/{agent_id:str}")
async def update_agent(
    session: UnitOfWork, principal: Principal, actor: Actor, authenticator: Authenticator,
    agent_id: str, data: UpdateAgentBody,
) -> AgentView:
    """Rename, disable/enable, change plan or per-agent daily spending limit."""
    agent = await fleet.update_agent(session, authenticator.cache, actor, principal, agent_id,
                                     data.changes())
    return agent_view(agent)


@post("/agents/{agent_id:str}/rotate-key", status_code=200, errors=(409,))
async def rotate_agent_key(
    session: UnitOfWork, settings: Settings, principal: Principal, actor: Actor,
    authenticator: Authenticator, agent_id: str, data: RotateBody | None = None,
) -> RotatedKey:
    """New secret for the agent's ``ak_`` key; the old one works for the grace period.

    Always restores access: an agent whose agent key was revoked (or expired) gets a new one
    (``previousKeyExpiresAt`` null)."""
    grace = data.grace_period_seconds if data else 0
    agent, rotated = await fleet.rotate_agent_key(session, settings, authenticator.cache, actor,
                                                  principal, agent_id, grace)
    return rotated_key(agent, rotated.key.id, rotated.secret, rotated.previous_valid_until)


@post("/agents/claim", status_code=200, errors=(404,))
async def claim_agent(
    session: UnitOfWork, settings: Settings, principal: Principal, actor: Actor,
    authenticator: Authenticator, data: ClaimBody,
) -> AgentView:
    """Take a self-registered agent into the fleet with its claim code (works once)."""
    agent = await fleet.claim_agent(session, settings, authenticator.cache, actor, principal,
                                    data.claim_code)
    return agent_view(agent)


@put("/spending-limit")
async def set_spending_limit(
    session: UnitOfWork, principal: Principal, actor: Actor, data: SpendingLimitBody
) -> SpendingLimitView:
    """Fleet-wide daily spending limit in micros (``null`` removes it)."""
    platform = await platforms.set_spending_limit(session, actor, principal.platform_id or "",
                                                  data.daily_limit_micros)
    return spending_limit_view(platform)


@post("/master-keys", status_code=201)
async def create_master_key(
    session: UnitOfWork, settings: Settings, principal: Principal, actor: Actor,
    data: MasterKeyBody | None = None,
) -> CreatedMasterKey:
    """Another master key for this platform (shown once), optionally expiring; never later
    than the calling master key."""
    issued = await platforms.create_master_key(
        session, settings, actor, principal, data.label if data else None,
        data.expires_at if data else None,
    )
    return created_master_key(issued.key, issued.secret)


@get("/master-keys")
async def list_master_keys(
    session: UnitOfWork,
    settings: Settings,
    principal: Principal,
    limit: int | None = Parameter(default=None),
    cursor: str | None = Parameter(default=None),
) -> Page:
    """This platform's master keys, newest first (never secrets)."""
    rows, next_cursor = await platforms.list_master_keys(
        session, principal.platform_id or "", page_params(limit, cursor)
    )
    return Page(data=[key_view(k, settings) for k in rows], next_cursor=next_cursor)


@delete("/master-keys/{key_id:str}", status_code=200, errors=(409,))
async def revoke_master_key(
    session: UnitOfWork, settings: Settings, principal: Principal, actor: Actor,
    authenticator: Authenticator, key_id: str,
) -> KeyView:
    """Revoke another master key of this platform (a key cannot revoke itself: CONFLICT)."""
    key = await platforms.revoke_master_key(session, authenticator.cache, actor, principal,
                                            key_id)
    return key_view(key, settings)


router = Router(
    path="/v1/platform",
    route_handlers=[
        get_platform, create_agent, list_agents, get_agent, update_agent, rotate_agent_key,
        claim_agent, set_spending_limit, create_master_key, list_master_keys, revoke_master_key,
    ],
    before_request=MASTER,
    tags=["platform"],
)
