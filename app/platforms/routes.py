"""Platform routes (``X-Master-Key``): fleet agents, claiming, spending limit, master keys.

Every mutation is written to the audit log with the acting master key.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, delete, get, patch, post, put
from litestar.params import Parameter

from app.agents import service as agents
from app.agents.schemas import (
    AgentView,
    ClaimBody,
    CreateAgentBody,
    CreatedAgent,
    RotateBody,
    RotatedKey,
    UpdateAgentBody,
)
from app.agents.views import agent_view
from app.audit.service import Actor, record
from app.auth.guards import MASTER, principal_of, runtime_of
from app.auth.principal import Principal
from app.db.paging import Page, page_params
from app.db.types import rfc3339
from app.db.uow import UnitOfWork
from app.http.request_id import request_id_of
from app.keys import service as keys
from app.keys.schemas import KeyView
from app.keys.views import key_view
from app.platforms import service as platforms
from app.platforms.schemas import (
    CreatedMasterKey,
    MasterKeyBody,
    PlatformView,
    SpendingLimitBody,
    SpendingLimitView,
)
from app.platforms.views import platform_view

AnyRequest = Request[Any, Any, Any]


def _actor(request: AnyRequest, master: Principal) -> Actor:
    return Actor("platform", master.key_id, master.platform_id, request_id_of(request))


def _platform_id(master: Principal) -> str:
    return master.platform_id or ""


@get("/")
async def get_platform(request: AnyRequest, session: UnitOfWork) -> PlatformView:
    """The calling platform."""
    master = principal_of(request)
    return platform_view(await platforms.get(session, _platform_id(master)))


@post("/agents", status_code=201)
async def create_agent(
    request: AnyRequest, session: UnitOfWork, data: CreateAgentBody
) -> CreatedAgent:
    """Create a fleet agent with its ``ak_`` key (shown once)."""
    master = principal_of(request)
    created = await agents.create_for_platform(
        session, runtime_of(request).pepper, _platform_id(master), name=data.name.strip(),
        description=data.description, plan=data.plan,
        daily_limit=data.daily_spending_limit_micros, created_by=master.key_id,
    )
    await record(session, _actor(request, master), "agent.create", "agent", created.agent.id,
                 after=agents.agent_snapshot(created.agent))
    return CreatedAgent(agent=agent_view(created.agent), api_key=created.key.secret,
                        key_id=created.key.key.id)


@get("/agents")
async def list_agents(
    request: AnyRequest,
    session: UnitOfWork,
    limit: int | None = Parameter(default=None),
    cursor: str | None = Parameter(default=None),
    disabled: bool | None = Parameter(default=None),
) -> Page:
    """The fleet, newest first."""
    master = principal_of(request)
    rows, next_cursor = await agents.search(
        session, page_params(limit, cursor), platform_id=_platform_id(master), disabled=disabled
    )
    return Page(data=[agent_view(a) for a in rows], next_cursor=next_cursor)


@get("/agents/{agent_id:str}")
async def get_agent(request: AnyRequest, session: UnitOfWork, agent_id: str) -> AgentView:
    master = principal_of(request)
    return agent_view(await agents.get_in_platform(session, agent_id, _platform_id(master)))


@patch("/agents/{agent_id:str}")
async def update_agent(
    request: AnyRequest, session: UnitOfWork, agent_id: str,
    data: UpdateAgentBody,
) -> AgentView:
    """Rename, disable/enable, change plan or per-agent daily spending limit."""
    master = principal_of(request)
    rt = runtime_of(request)
    agent = await agents.get_in_platform(session, agent_id, _platform_id(master))
    before = agents.agent_snapshot(agent)
    await agents.update(session, agent, data.changes())
    await record(session, _actor(request, master), "agent.update", "agent", agent.id,
                 before=before, after=agents.agent_snapshot(agent))
    # Disabling must bite at once in this process; others follow within the cache lifetime.
    session.after_commit(rt.auth.cache.clear)
    return agent_view(agent)


@post("/agents/{agent_id:str}/rotate-key", status_code=200, errors=(409,))
async def rotate_agent_key(
    request: AnyRequest, session: UnitOfWork, agent_id: str,
    data: RotateBody | None = None,
) -> RotatedKey:
    """New secret for the agent's ``ak_`` key; the old one works for the grace period.

    Always restores access: an agent whose agent key was revoked (or expired) gets a new one
    (``previousKeyExpiresAt`` null)."""
    master = principal_of(request)
    rt = runtime_of(request)
    agent = await agents.get_in_platform(session, agent_id, _platform_id(master))
    grace = data.grace_period_seconds if data else 0
    rotated = await agents.rotate_agent_key(session, rt.pepper, agent, grace, master.key_id)
    key = rotated.key
    await record(session, _actor(request, master), "agent.rotate_key", "key", key.id,
                 after={"gracePeriodSeconds": grace,
                        "reissued": rotated.previous_valid_until is None})
    session.after_commit(lambda: rt.auth.cache.forget_key(key.id))
    return RotatedKey(agent_id=agent.id, key_id=key.id, api_key=rotated.secret,
                      previous_key_expires_at=rfc3339(rotated.previous_valid_until))


@post("/agents/claim", status_code=200, errors=(404,))
async def claim_agent(
    request: AnyRequest, session: UnitOfWork, data: ClaimBody
) -> AgentView:
    """Take a self-registered agent into the fleet with its claim code (works once)."""
    master = principal_of(request)
    rt = runtime_of(request)
    agent = await agents.claim(session, rt.pepper, _platform_id(master), data.claim_code)
    await record(session, _actor(request, master), "agent.claim", "agent", agent.id,
                 before={"platformId": None}, after={"platformId": agent.platform_id})
    session.after_commit(rt.auth.cache.clear)
    return agent_view(agent)


@put("/spending-limit")
async def set_spending_limit(
    request: AnyRequest, session: UnitOfWork, data: SpendingLimitBody
) -> SpendingLimitView:
    """Fleet-wide daily spending limit in micros (``null`` removes it)."""
    master = principal_of(request)
    platform = await platforms.get(session, _platform_id(master))
    before = {"dailyLimitMicros": platform.daily_spending_limit_micros}
    await platforms.set_spending_limit(session, platform, data.daily_limit_micros)
    await record(session, _actor(request, master), "platform.spending_limit", "platform",
                 platform.id, before=before,
                 after={"dailyLimitMicros": platform.daily_spending_limit_micros})
    return SpendingLimitView(platform_id=platform.id,
                             daily_limit_micros=platform.daily_spending_limit_micros)


@post("/master-keys", status_code=201)
async def create_master_key(
    request: AnyRequest, session: UnitOfWork,
    data: MasterKeyBody | None = None,
) -> CreatedMasterKey:
    """Another master key for this platform (shown once), optionally expiring; never later
    than the calling master key."""
    master = principal_of(request)
    issued = await platforms.create_master_key(
        session, runtime_of(request).pepper, _platform_id(master), data.label if data else None,
        master.key_id, data.expires_at if data else None, ceiling=master.key_expires_at,
    )
    await record(session, _actor(request, master), "master_key.create", "key", issued.key.id,
                 after={"label": issued.key.label, "hint": issued.key.hint,
                        "expiresAt": rfc3339(issued.key.expires_at)})
    return CreatedMasterKey(id=issued.key.id, key=issued.secret, label=issued.key.label,
                            created_at=rfc3339(issued.key.created_at) or "",
                            expires_at=rfc3339(issued.key.expires_at))


@get("/master-keys")
async def list_master_keys(
    request: AnyRequest,
    session: UnitOfWork,
    limit: int | None = Parameter(default=None),
    cursor: str | None = Parameter(default=None),
) -> Page:
    master = principal_of(request)
    rows, next_cursor = await platforms.list_master_keys(
        session, _platform_id(master), page_params(limit, cursor)
    )
    settings = runtime_of(request).settings
    return Page(data=[key_view(k, settings) for k in rows], next_cursor=next_cursor)


@delete("/master-keys/{key_id:str}", status_code=200, errors=(409,))
async def revoke_master_key(
    request: AnyRequest, session: UnitOfWork, key_id: str
) -> KeyView:
    """Revoke another master key of this platform (a key cannot revoke itself: CONFLICT)."""
    master = principal_of(request)
    rt = runtime_of(request)
    # Revoking is idempotent; a repeat is audited like the admin's, as the no-op it was.
    previous = await keys.status_of(session, key_id)
    key = await platforms.revoke_master_key(session, _platform_id(master), key_id, master.key_id)
    await record(session, _actor(request, master), "master_key.revoke", "key", key.id,
                 before={"status": previous}, after={"status": key.status})
    session.after_commit(lambda: rt.auth.cache.forget_key(key_id))
    return key_view(key, rt.settings)


router = Router(
    path="/v1/platform",
    route_handlers=[
        get_platform, create_agent, list_agents, get_agent, update_agent, rotate_agent_key,
        claim_agent, set_spending_limit, create_master_key, list_master_keys, revoke_master_key,
    ],
    before_request=MASTER,
    tags=["platform"],
)
