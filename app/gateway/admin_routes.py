"""The operator's gateway routes: providers added, changed and removed at run time, and the
credit leases API processes hold."""

from __future__ import annotations

from litestar import Router, delete, get, patch, post
from litestar.params import Parameter

from app.audit.service import Actor
from app.auth.guards import ADMIN
from app.db.paging import Page, page_params
from app.db.uow import UnitOfWork
from app.gateway import leases, provider_admin
from app.gateway.schemas import (
    AdminProviderView,
    CreateProviderBody,
    UpdateProviderBody,
    lease_view,
)
from app.gateway.service import Gateway


@post("/providers", status_code=201, errors=(409,))
async def create_provider(
    gateway: Gateway, session: UnitOfWork, actor: Actor, data: CreateProviderBody
) -> AdminProviderView:
    """Add a provider. Header values are stored sealed and never returned."""
    return await provider_admin.create_provider(session, gateway, actor, data)


@get("/providers")
async def list_providers(
    gateway: Gateway,
    session: UnitOfWork,
    limit: int | None = Parameter(default=None),
    cursor: str | None = Parameter(default=None),
) -> Page:
    """Configured and admin-managed providers, by name (header names only)."""
    return await provider_admin.list_providers(session, gateway.settings, limit, cursor)


@get("/providers/{name:str}")
async def get_provider(gateway: Gateway, session: UnitOfWork, name: str) -> AdminProviderView:
    """One provider, configured or admin-managed (header names only)."""
    return await provider_admin.get_provider(session, gateway.settings, name)


@patch("/providers/{name:str}", errors=(409,))
async def update_provider(
    gateway: Gateway, session: UnitOfWork, actor: Actor, name: str, data: UpdateProviderBody
) -> AdminProviderView:
    """Change an admin-managed provider; configured ones are CONFLICT."""
    return await provider_admin.update_provider(session, gateway, actor, name, data)


@delete("/providers/{name:str}", status_code=200, errors=(409,))
async def delete_provider(
    gateway: Gateway, session: UnitOfWork, actor: Actor, name: str
) -> AdminProviderView:
    """Remove an admin-managed provider; configured ones are CONFLICT."""
    return await provider_admin.delete_provider(session, gateway, actor, name)


@get("/gateway/leases")
async def list_leases(
    session: UnitOfWork,
    limit: int | None = Parameter(default=None),
    cursor: str | None = Parameter(default=None),
    agent_id: str | None = Parameter(query="agentId", default=None, max_length=40),
    lease_state: str | None = Parameter(query="state", default=None, max_length=10),
) -> Page:
    """Credit leases newest first (``PASSGATE_GATEWAY_CREDIT_LEASES``): which process holds
    how much of an agent's credits, what its calls used, and who closed it."""
    rows, next_cursor = await leases.listing(session, page_params(limit, cursor),
                                             agent_id=agent_id, state=lease_state)
    return Page(data=[lease_view(lease) for lease in rows], next_cursor=next_cursor)


admin_router = Router(
    path="/admin/v1",
    route_handlers=[
        create_provider,
        list_providers,
        get_provider,
        update_provider,
        delete_provider,
        list_leases,
    ],
    before_request=ADMIN,
    tags=["admin"],
)
