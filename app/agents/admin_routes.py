"""The operator's agent routes under ``/admin/v1`` (admin token). Every mutation is audited."""

from __future__ import annotations

from litestar import Router, get, patch
from litestar.params import Parameter

from app.agents import service as agents
from app.agents.schemas import AdminAgentPatch, AgentView, agent_view
from app.audit.service import Actor
from app.auth.guards import ADMIN
from app.auth.service import Authenticator
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork


@get("/agents")
async def list_agents(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None), cursor: str | None = Parameter(default=None),
    platform_id: str | None = Parameter(query="platformId", default=None),
    disabled: bool | None = Parameter(default=None),
    q: str | None = Parameter(default=None, max_length=200),
) -> Page:
    """Search agents by platform, state, or name/id."""
    rows, next_cursor = await agents.search(
        session, page_params(limit, cursor), platform_id=platform_id, disabled=disabled, query=q
    )
    return Page(data=[agent_view(a) for a in rows], next_cursor=next_cursor)


@get("/agents/{agent_id:str}")
async def get_agent(session: UnitOfWork, agent_id: str) -> AgentView:
    """One agent, claimed or not."""
    return agent_view(await agents.get(session, agent_id))


@patch("/agents/{agent_id:str}")
async def update_agent(
    session: UnitOfWork, actor: Actor, authenticator: Authenticator, agent_id: str,
    data: AdminAgentPatch,
) -> AgentView:
    """Disable/enable an agent, change its plan or daily spending limit."""
    agent = await agents.change_any(session, authenticator.cache, actor, agent_id,
                                    data.changes())
    return agent_view(agent)


router = Router(
    path="/admin/v1",
    route_handlers=[list_agents, get_agent, update_agent],
    before_request=ADMIN,
    tags=["admin"],
)
